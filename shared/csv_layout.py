"""The layout of an address CSV an operator brings: its separator and which column is which.

Spreadsheets and email service providers write ``,``, ``;`` or a tab, headers in any case, and their
own name for the address column (``Email Address``, ``E-mail``...). :func:`read_layout` says what it
found, so a refusal can name it. Column names compare folded (:func:`fold`).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass

#: Separators a file may use, in order of preference when the header line has as many of each.
SEPARATORS = (",", ";", "\t")
#: Folded names of the address column, by preference: ours first, then common ESP exports
#: (Mailchimp, Campaign Monitor, Constant Contact "Email Address"; Klaviyo, HubSpot "Email";
#: ConvertKit, Sendinblue/Brevo "email_address"/"EMAIL"; Outlook "E-mail Address").
EMAIL_NAMES = ("email", "emailaddress", "mail", "mailaddress", "subscriberemail", "contactemail")
#: How a refusal names the address columns it would have taken.
EMAIL_NAMES_HINT = "email, Email Address, email_address, E-mail"
_FOLD = re.compile(r"[\s_\-]+")


def fold(name: str) -> str:
    """A column name as compared: trimmed, lower case, without spaces, ``_`` or ``-``."""
    return _FOLD.sub("", name.strip().lower())


@dataclass(frozen=True)
class CsvLayout:
    """What the header line says: the ``separator`` and the ``header`` as written."""

    separator: str
    header: tuple[str, ...]

    def index(self, name: str) -> int | None:
        """The position of column ``name`` (compared folded), or None. ``email`` finds the address
        column under any of :data:`EMAIL_NAMES`, the first of them the header has."""
        folded = [fold(cell) for cell in self.header]
        for wanted in EMAIL_NAMES if fold(name) == "email" else (fold(name),):
            if wanted in folded:
                return folded.index(wanted)
        return None

    @property
    def email_header(self) -> str | None:
        """The address column's name as the file writes it, or None without one."""
        index = self.index("email")
        return self.header[index] if index is not None else None

    def describe(self) -> str:
        """The header for a message: each name quoted, and the separator named."""
        names = ", ".join(repr(name) for name in self.header) or "nothing"
        return f"{names} (separated by {_SEPARATOR_NAMES[self.separator]})"


_SEPARATOR_NAMES = {",": "commas", ";": "semicolons", "\t": "tabs"}


def read_layout(text: str) -> tuple[CsvLayout, Iterator[tuple[int, list[str]]]]:
    """The layout of CSV ``text`` (its separator guessed from the header line) and its data rows,
    each with the line it starts on (a quoted cell may span lines)."""
    first_line = text.split("\n", 1)[0]
    separator = max(SEPARATORS, key=lambda candidate: _count_outside_quotes(first_line, candidate))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=separator)
    header = tuple(cell.strip() for cell in next(reader, []))

    def rows() -> Iterator[tuple[int, list[str]]]:
        line = reader.line_num + 1  # where the next record starts
        for row in reader:
            yield line, row
            line = reader.line_num + 1

    return CsvLayout(separator, header), rows()


def _count_outside_quotes(line: str, separator: str) -> int:
    return sum(part.count(separator) for part in line.split('"')[::2])
