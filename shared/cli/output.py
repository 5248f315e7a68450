"""Stored text on the terminal: shown as it is, never acting on the terminal or on rich.

Names, errors and reasons come from operators, files and remote services. Printed raw, an escape
sequence could clear the screen, retitle the window or hide text, and ``[red]`` would be taken as
rich markup; here each control character is shown as an escape (``\\x1b``) instead.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from decimal import Decimal
from enum import Enum

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

#: C0 controls, DEL, C1 controls, and the Unicode marks that reorder or break displayed lines.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """``text`` with each control character replaced by its visible escape (``\\x1b``, ``\\u202e``)."""
    return _CONTROL.sub(_escape, str(text))


def printable_lines(text: object) -> str:
    """:func:`printable`, line by line: a message of several lines keeps its line breaks."""
    return "\n".join(printable(line) for line in str(text).split("\n"))


def cell(text: object) -> Text:
    """``text`` for a rich table or console line: controls escaped, markup shown literally."""
    return Text(printable(text))


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


#: ``--json`` on every list, show, status and usage command: every field, full ids, for programs.
JSON_FLAG = click.option("--json", "as_json", is_flag=True, help="Print JSON (every field, full ids).")
#: ``--wide`` on table commands: no column is cut, whatever the terminal's width.
WIDE_FLAG = click.option("--wide", is_flag=True, help="Never cut a column (full ids), however wide.")
#: Width given to rich with ``--wide``: tables take their natural width, never this much.
UNBOUNDED_WIDTH = 100_000


def print_json(data: object) -> None:
    """``data`` as indented JSON on standard output: ids, times (ISO 8601) and enums as strings.

    Non-ASCII text is written as ``\\u`` escapes, so no stored name can act on a terminal.
    """
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=_json_value))


def print_table(console: Console, table: Table, *, wide: bool = False) -> None:
    """``table`` on ``console``; with ``wide``, at its natural width (no column cut or folded)."""
    if wide:
        console = Console(file=console.file, width=UNBOUNDED_WIDTH, no_color=console.no_color)
    console.print(table)


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
