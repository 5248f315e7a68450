"""``pilot erase --org ID --email ADDR``: one line saying what was erased (or that nothing was held),
``--json`` for programs, one-line errors naming the bad option."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from shared.address_hashing import address_hash
from shared.db import transaction
from shared.models import Suppression
from tests.integration.conftest import Pilot
from tests.webhook_factories import make_message, make_organization

pytestmark = pytest.mark.integration


def organization_holding(factory: sessionmaker[Session], address: str) -> uuid.UUID:
    with transaction(factory) as session:
        organization, connector = make_organization(session)
        make_message(session, organization, connector, recipient=address)
    return organization


def test_erase_says_what_it_erased_without_the_address(pilot: Pilot, session_factory) -> None:
    organization = organization_holding(session_factory, "ada@example.test")

    result = pilot("erase", "--org", str(organization), "--email", "Ada@Example.test")

    assert result.exit_code == 0, result.output
    assert f"erased from organization {organization}: 1 emails" in result.output
    assert address_hash(organization, "ada@example.test") in result.output
    assert "ada@example.test" not in result.output.lower()


def test_erase_json_gives_every_count_and_the_hash(pilot: Pilot, session_factory) -> None:
    organization = organization_holding(session_factory, "ada@example.test")

    result = pilot("erase", "--org", str(organization), "--email", "ada@example.test", "--json")

    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["organization_id"] == str(organization)
    assert answer["address_hash"] == address_hash(organization, "ada@example.test")
    assert (answer["found"], answer["messages"], answer["cancelled"]) == (True, 1, 0)


def test_erase_of_an_address_never_held_answers_so_and_succeeds(pilot: Pilot, session_factory) -> None:
    organization = organization_holding(session_factory, "ada@example.test")

    result = pilot("erase", "--org", str(organization), "--email", "nobody@example.test")

    assert result.exit_code == 0, result.output
    assert f"organization {organization} held nothing of this address" in result.output
    with session_factory() as session:
        kept = session.scalars(
            select(Suppression.email).where(Suppression.organization_id == organization)
        ).all()
    assert kept == [address_hash(organization, "nobody@example.test")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--org", "not-a-uuid", "--email", "a@example.test"], "--org: expected an organization id (a UUID)"),
        (["--email", "not an address"], "--email: "),
        (["--email", "a@example.test; b@example.test"], "--email: holds more than one address"),
    ],
)
def test_erase_names_the_bad_option_in_one_line(pilot: Pilot, session_factory, args, message) -> None:
    organization = organization_holding(session_factory, "ada@example.test")
    given = args if args[0] == "--org" else ["--org", str(organization), *args]

    result = pilot("erase", *given)

    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_erase_names_an_unknown_organization(pilot: Pilot, session_factory) -> None:
    unknown = uuid.uuid4()

    result = pilot("erase", "--org", str(unknown), "--email", "a@example.test")

    assert result.exit_code == 1
    assert f"organization {unknown} does not exist" in result.output
