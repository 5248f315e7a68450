"""Stored text the CLI prints (names, errors, sources) never acts on the terminal or on rich:
control characters appear as escapes, rich markup as the text it is."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from shared.db import make_engine, make_sessionmaker, transaction
from shared.models import Connector
from shared.settings import load_settings
from shared.suppression import suppress
from tests.integration.conftest import Pilot
from tests.integration.test_cli import org_id

HOSTILE = "evil\x1b]0;owned\x07\x1b[2J\x9b31m[red]x[/red]"
SHOWN = "evil\\x1b]0;owned\\x07\\x1b[2J\\x9b31m[red]x[/red]"


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables as wide as their text, so no cell is wrapped."""
    monkeypatch.setenv("COLUMNS", "400")


@pytest.fixture
def factory(fresh_database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on the database the `pilot` fixture uses."""
    engine = make_engine(load_settings(database_url=fresh_database_url))
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def hostile_connector(pilot: Pilot, factory: sessionmaker[Session]) -> str:
    """A connector whose name and last error carry escape sequences and rich markup."""
    org = org_id(pilot)
    added = pilot("connector", "add", "--org", org, "--name", HOSTILE, "--api-key", "re_cli_key")
    assert added.exit_code == 0, added.output
    cid = added.output.strip()
    with transaction(factory) as session:
        session.execute(update(Connector).where(Connector.id == uuid.UUID(cid)).values(last_error=HOSTILE))
    return cid


def assert_shown_as_text(output: str, shown: str = SHOWN) -> None:
    assert shown in output
    assert "\x1b" not in output and "\x07" not in output and "\x9b" not in output


@pytest.mark.parametrize("command", [("connector", "list"), ("status",)])
def test_connector_tables_show_stored_names_and_errors_as_text(
    pilot: Pilot, hostile_connector: str, command: tuple[str, ...]
) -> None:
    output = pilot(*command).output

    assert output.count(SHOWN) == 2  # the name and the last error
    assert_shown_as_text(output)


def test_connector_show_shows_stored_names_and_errors_as_text(pilot: Pilot, hostile_connector: str) -> None:
    output = pilot("connector", "show", hostile_connector).output

    assert output.count(SHOWN) == 2
    assert_shown_as_text(output)


def test_suppression_list_shows_stored_sources_as_text(pilot: Pilot, factory: sessionmaker[Session]) -> None:
    org = org_id(pilot)
    with transaction(factory) as session:
        suppress(session, uuid.UUID(org), "ada@example.com", "hard_bounce", source=HOSTILE)

    assert_shown_as_text(pilot("suppression", "list", "--org", org).output)


def test_error_messages_show_echoed_input_as_text(pilot: Pilot) -> None:
    org = org_id(pilot)

    result = pilot("suppression", "remove", "--org", org, HOSTILE)

    assert result.exit_code == 1
    assert_shown_as_text(result.output, SHOWN.lower())  # the address as the list would store it
