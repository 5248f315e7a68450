"""The layout of an address CSV: separator, header in any case, the address column under an ESP's name."""

from __future__ import annotations

import pytest

from shared.csv_layout import read_layout


@pytest.mark.parametrize(
    "header",
    ["email", "Email", "EMAIL", "Email Address", "email_address", "E-mail", "E-mail Address", " Email "],
)
def test_the_address_column_is_found_under_common_names(header: str) -> None:
    layout, _ = read_layout(f"First Name,{header},Last Name\nAda,ada@example.com,Lovelace\n")

    assert layout.index("email") == 1
    assert layout.email_header == header.strip()


def test_our_own_email_column_wins_over_another_address_column() -> None:
    layout, _ = read_layout("Email Address,email\nold@example.com,new@example.com\n")

    assert layout.email_header == "email"


@pytest.mark.parametrize("separator", [",", ";", "\t"])
def test_the_separator_is_read_from_the_header_line(separator: str) -> None:
    layout, rows = read_layout(f"email{separator}reason\na@example.com{separator}manual\n")

    assert layout.separator == separator
    assert list(rows) == [(2, ["a@example.com", "manual"])]


def test_a_separator_inside_a_quoted_header_cell_is_not_counted() -> None:
    layout, _ = read_layout('"Email; primary",reason\n')

    assert layout.separator == ","


def test_other_columns_are_found_in_any_case_and_spelling() -> None:
    layout, _ = read_layout("EMAIL;Reason;Expires At\n")

    assert (layout.index("reason"), layout.index("expires_at")) == (1, 2)


def test_rows_carry_the_line_they_start_on() -> None:
    _, rows = read_layout('email,reason\na@example.com,"two\nlines"\nb@example.com,manual\n')

    assert [line for line, _ in rows] == [2, 4]


def test_a_header_without_an_address_column_is_described_as_found() -> None:
    layout, _ = read_layout("Name;Phone\n")

    assert layout.email_header is None
    assert layout.describe() == "'Name', 'Phone' (separated by semicolons)"
