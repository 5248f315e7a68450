"""Revision 0014 converts the audit rows written before it: every address in them is stored hashed,
as new rows are, and the log stays append-only."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from shared import migrations
from shared.address_hashing import address_hash
from tests.raw_connections import connect

BEFORE = "0013"


def _audit_row(
    connection: psycopg.Connection, organization: uuid.UUID | None, **columns: object
) -> uuid.UUID:
    values = {"actor": "ops", "action": "suppression.add", "result": "success", **columns}
    if "details" in values:
        values["details"] = json.dumps(values["details"])
    names = ", ".join(["organization_id", *values])
    marks = ", ".join(["%s"] * (len(values) + 1))
    row = connection.execute(
        f"INSERT INTO audit_logs ({names}) VALUES ({marks}) RETURNING id", [organization, *values.values()]
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


def _stored(connection: psycopg.Connection, row_id: uuid.UUID) -> tuple[object, ...]:
    row = connection.execute(
        "SELECT target, reason, details FROM audit_logs WHERE id = %s", (row_id,)
    ).fetchone()
    assert row is not None
    return tuple(row)


def test_upgrade_hashes_every_address_already_in_the_audit_log(database_url: str) -> None:
    migrations.upgrade(database_url, BEFORE)
    organization = uuid.uuid4()
    with connect(database_url) as connection:
        named = _audit_row(
            connection,
            organization,
            target="suppression:Ada@Example.test",
            reason="asked by ada@example.test",
            details={"to": ["grace@example.test"], "topic": "news"},
        )
        anonymous = _audit_row(connection, None, action="send.payload_invalid", reason="to: bob@example.test")
        plain = _audit_row(
            connection, organization, action="connector.pause", target="connector:x", reason="ops"
        )

    migrations.upgrade(database_url)

    ada, grace = (
        address_hash(organization, "ada@example.test"),
        address_hash(organization, "grace@example.test"),
    )
    with connect(database_url) as connection:
        assert _stored(connection, named) == (
            f"suppression:{ada}",
            f"asked by {ada}",
            {"to": [grace], "topic": "news"},
        )
        assert _stored(connection, anonymous)[1] == f"to: {address_hash(None, 'bob@example.test')}"
        assert _stored(connection, plain) == ("connector:x", "ops", {})


def test_the_audit_log_stays_append_only_after_the_upgrade(database_url: str) -> None:
    migrations.upgrade(database_url, BEFORE)
    with connect(database_url) as connection:
        row = _audit_row(connection, uuid.uuid4(), target="suppression:ada@example.test")

    migrations.upgrade(database_url)

    with (
        connect(database_url) as connection,
        pytest.raises(psycopg.errors.RaiseException, match="append-only"),
    ):
        connection.execute("UPDATE audit_logs SET reason = 'x' WHERE id = %s", (row,))


def test_downgrade_keeps_an_erased_persons_entry_as_a_manual_one(database_url: str) -> None:
    migrations.upgrade(database_url)
    with connect(database_url) as connection:
        org = connection.execute("INSERT INTO organizations (name) VALUES ('o') RETURNING id").fetchone()
        assert org is not None
        hashed = address_hash(org[0], "ada@example.test")
        connection.execute(
            "INSERT INTO suppression_list (organization_id, email, reason) VALUES (%s, %s, 'erased')",
            (org[0], hashed),
        )

    migrations.downgrade(database_url, BEFORE)

    with connect(database_url) as connection:
        assert connection.execute("SELECT email, reason FROM suppression_list").fetchall() == [
            (hashed, "manual")
        ]
