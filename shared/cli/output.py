"""Stored text on the terminal: shown as it is, never acting on the terminal or on rich.

Names, errors and reasons come from operators, files and remote services. Printed raw, an escape
sequence could clear the screen, retitle the window or hide text, and ``[red]`` would be taken as
rich markup; here each control character is shown as an escape (``\\x1b``) instead.
"""

from __future__ import annotations

import re

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
