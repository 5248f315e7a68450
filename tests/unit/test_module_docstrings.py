"""Module docstrings stay short: the why and the what; the design lives in docs/, figures in commits."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "worker", "webhook_receiver", "sandbox", "migrations", "client", "examples")
#: Non-blank lines of prose a module docstring may hold ("about five lines at most").
MAX_PROSE_LINES = 6
#: The header Alembic writes into every revision's docstring: not prose.
ALEMBIC_HEADER = re.compile(r"(Revision ID|Revises|Create Date):")


def prose_lines(source: str) -> int:
    """Non-blank lines of the module docstring of ``source``, Alembic's header lines left out."""
    docstring = ast.get_docstring(ast.parse(source)) or ""
    lines = [line.strip() for line in docstring.splitlines()]
    return sum(1 for line in lines if line and not ALEMBIC_HEADER.match(line))


def test_every_module_docstring_is_short() -> None:
    offenders = {
        str(path.relative_to(ROOT)): count
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if (count := prose_lines(path.read_text(encoding="utf-8"))) > MAX_PROSE_LINES
    }

    assert offenders == {}, f"module docstrings over {MAX_PROSE_LINES} lines; move the design to docs/"


def test_prose_lines_leave_out_blank_lines_and_alembic_headers() -> None:
    source = '"""Add an index.\n\nRevision ID: 0007\nRevises: 0006\nCreate Date: 2026-12-06\n\nWhy.\n"""\n'

    assert prose_lines(source) == 2


def test_prose_lines_of_a_module_without_a_docstring_is_zero() -> None:
    assert prose_lines("import os\n") == 0
