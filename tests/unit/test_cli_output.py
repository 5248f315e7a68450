"""Stored text printed by the CLI: control characters shown as escapes, rich markup shown as text."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from shared.cli.output import cell, printable, printable_lines


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b[2Jname", "\\x1b[2Jname"),
        ("a\x00b", "a\\x00b"),
        ("bell\x07", "bell\\x07"),
        ("del\x7f", "del\\x7f"),
        ("csi\x9b31m", "csi\\x9b31m"),
        ("line\nbreak\r", "line\\x0abreak\\x0d"),
        ("abc\u202edcba", "abc\\u202edcba"),
    ],
)
def test_printable_escapes_control_characters_visibly(text: str, shown: str) -> None:
    assert printable(text) == shown


@pytest.mark.parametrize("text", ["Acme Newsletter", "Café Zürich", "ニュース", "🚀 launch", "[red]x[/red]"])
def test_printable_leaves_ordinary_text_as_it_is(text: str) -> None:
    assert printable(text) == text


def test_printable_lines_keeps_line_breaks_between_lines() -> None:
    assert printable_lines("line 1: \x1b[2J\nline 2") == "line 1: \\x1b[2J\nline 2"


def test_cell_shows_rich_markup_literally() -> None:
    out = io.StringIO()

    Console(file=out, width=200).print(cell("[red]x[/red] [link=http://evil.example]y[/link]"))

    assert out.getvalue().strip() == "[red]x[/red] [link=http://evil.example]y[/link]"
