"""`pilot suppression import` takes files as spreadsheets and email service providers write them."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from tests.integration.conftest import Pilot
from tests.integration.test_cli import org_id

pytestmark = pytest.mark.integration


def imported(pilot: Pilot, tmp_path: Path, content: bytes) -> list[str]:
    org = org_id(pilot)
    path = tmp_path / "list.csv"
    path.write_bytes(content)
    result = pilot("suppression", "import", "--org", org, str(path))
    assert result.exit_code == 0, result.output
    exported = pilot("suppression", "export", "--org", org).output.splitlines()[1:]
    return sorted(line.split(",")[0] for line in exported)


def test_a_mailchimp_export_is_imported_by_its_email_address_column(pilot: Pilot, tmp_path: Path) -> None:
    content = (
        '"Email Address","First Name","Last Name","MEMBER_RATING","OPTIN_TIME"\n'
        '"ada@example.com","Ada","Lovelace",2,"2026-01-01 10:00:00"\n'
        '"grace@example.com","Grace","Hopper",5,"2026-01-02 11:00:00"\n'
    )

    assert imported(pilot, tmp_path, content.encode()) == ["ada@example.com", "grace@example.com"]


def test_an_excel_file_with_a_bom_semicolons_and_a_capitalised_header_is_imported(
    pilot: Pilot, tmp_path: Path
) -> None:
    content = codecs.BOM_UTF8 + b"Email;Reason\r\nada@example.com;hard_bounce\r\n"

    assert imported(pilot, tmp_path, content) == ["ada@example.com"]


def test_a_file_without_an_address_column_is_refused_naming_the_header_it_found(
    pilot: Pilot, tmp_path: Path
) -> None:
    path = tmp_path / "contacts.csv"
    path.write_text("Name;Phone\nAda;555\n")

    result = pilot("suppression", "import", "--org", org_id(pilot), str(path))

    assert result.exit_code == 1
    assert "no address column in the header 'Name', 'Phone' (separated by semicolons)" in result.output
    assert "Email Address" in result.output
