"""`pilot suppression import` and `export`: bad files refused whole with every bad line named, no
traceback; formula-like cells refused on import and escaped on export (OWASP CSV injection)."""

from __future__ import annotations

import codecs
import csv
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from shared.db import make_engine, make_sessionmaker, transaction
from shared.settings import load_settings
from shared.suppression import suppress
from tests.integration.conftest import Pilot
from tests.integration.test_cli import org_id

FORMULA_ADDRESSES = [
    "=cmd|'/Ccalc'!A0@example.com",
    '=HYPERLINK("http://evil.example")@example.com',
    "+1-2@example.com",
    "-2+3@example.com",
]


@pytest.fixture
def factory(fresh_database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the database the `pilot` fixture uses."""
    engine = make_engine(load_settings(database_url=fresh_database_url))
    yield make_sessionmaker(engine)
    engine.dispose()


def import_file(pilot: Pilot, org: str, path: Path, content: bytes) -> tuple[int, str]:
    path.write_bytes(content)
    result = pilot("suppression", "import", "--org", org, str(path))
    return result.exit_code, result.output


def listed(pilot: Pilot, org: str) -> list[str]:
    exported = pilot("suppression", "export", "--org", org).output
    return sorted(row["email"] for row in csv.DictReader(io.StringIO(exported)))


def test_suppression_import_names_the_line_of_a_nul_byte(pilot: Pilot, tmp_path: Path) -> None:
    org = org_id(pilot)

    exit_code, output = import_file(pilot, org, tmp_path / "nul.csv", b"email\nok@x.io\nbad\x00@x.io\n")

    assert exit_code == 1
    assert output.strip().splitlines() == [
        "Error: CSV line 3: email 'bad\\x00@x.io': contains the control character \\x00; nothing was imported"
    ]
    assert listed(pilot, org) == []


def test_suppression_import_names_the_line_of_the_first_byte_that_is_not_utf8(
    pilot: Pilot, tmp_path: Path
) -> None:
    org = org_id(pilot)
    content = "email,reason\nok@x.io,manual\njosé@x.io,manual\n".encode("latin-1")

    exit_code, output = import_file(pilot, org, tmp_path / "latin1.csv", content)

    assert exit_code == 1
    assert len(output.strip().splitlines()) == 1
    assert "CSV line 3: byte 0xe9 is not UTF-8; save the file as UTF-8" in output
    assert listed(pilot, org) == []


def test_suppression_import_accepts_a_utf8_byte_order_mark(pilot: Pilot, tmp_path: Path) -> None:
    org = org_id(pilot)
    content = codecs.BOM_UTF8 + "email,reason\nJosé@x.io,manual\n".encode()

    exit_code, output = import_file(pilot, org, tmp_path / "bom.csv", content)

    assert exit_code == 0, output
    assert listed(pilot, org) == ["josé@x.io"]


def test_suppression_import_refuses_a_cell_with_two_addresses(pilot: Pilot, tmp_path: Path) -> None:
    org = org_id(pilot)
    content = b'email,reason\n"m1@example.com, m2@example.com",manual\n'

    exit_code, output = import_file(pilot, org, tmp_path / "two.csv", content)

    assert exit_code == 1
    assert "CSV line 2: email 'm1@example.com, m2@example.com': holds more than one address" in output
    assert listed(pilot, org) == []


def test_suppression_import_lists_every_bad_line_and_imports_nothing(pilot: Pilot, tmp_path: Path) -> None:
    org = org_id(pilot)
    lines = [f"ok{n}@x.io" if n % 2 else f"bad{n}" for n in range(50)]  # lines 2..51; 25 bad

    exit_code, output = import_file(pilot, org, tmp_path / "many.csv", "\n".join(["email", *lines]).encode())

    shown = output.strip().removeprefix("Error: ").splitlines()
    assert exit_code == 1
    assert [line.split(":")[0] for line in shown[:20]] == [f"CSV line {n}" for n in range(2, 41, 2)]
    assert shown[20:] == ["... and 5 more bad line(s)", "25 bad line(s): nothing was imported"]
    assert listed(pilot, org) == []


@pytest.mark.parametrize("address", FORMULA_ADDRESSES)
def test_suppression_import_refuses_a_formula_like_address(
    pilot: Pilot, tmp_path: Path, address: str
) -> None:
    org = org_id(pilot)
    cell = '"' + address.replace('"', '""') + '"'

    exit_code, output = import_file(pilot, org, tmp_path / "formula.csv", f"email\n{cell}\n".encode())

    assert exit_code == 1
    assert "CSV line 2: " in output and "spreadsheets run as a formula" in output
    assert listed(pilot, org) == []


def test_suppression_export_escapes_cells_a_spreadsheet_would_run(
    pilot: Pilot, factory: sessionmaker[Session]
) -> None:
    org = org_id(pilot)
    with transaction(factory) as session:
        for address in ("+1-2@example.com", "-x@example.com", "=x@example.com", "plain@example.com"):
            suppress(session, uuid.UUID(org), address, "hard_bounce", source="resend_webhook")

    exported = pilot("suppression", "export", "--org", org).output

    emails = sorted(row["email"] for row in csv.DictReader(io.StringIO(exported)))
    assert emails == ["'+1-2@example.com", "'-x@example.com", "'=x@example.com", "plain@example.com"]


def test_suppression_export_then_import_round_trips(
    pilot: Pilot, factory: sessionmaker[Session], tmp_path: Path
) -> None:
    source, target = org_id(pilot), org_id(pilot)
    with transaction(factory) as session:
        for address in ("+1-2@example.com", "-x@example.com", "'quote@example.com", "plain@example.com"):
            suppress(session, uuid.UUID(source), address, "hard_bounce", source="resend_webhook")
    exported = pilot("suppression", "export", "--org", source).output

    exit_code, output = import_file(pilot, target, tmp_path / "exported.csv", exported.encode())

    assert exit_code == 0, output
    assert listed(pilot, target) == listed(pilot, source)
