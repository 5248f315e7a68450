"""Revision 0004 builds its indexes CONCURRENTLY: a rerun after an interrupted build must succeed."""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy as sa

from shared import migrations

INDEX = "ix_email_messages_task_id_lower_recipient"


def _psycopg_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _index_validity(url: str, name: str) -> bool | None:
    """``indisvalid`` of index ``name``; ``None`` when there is no such index."""
    with psycopg.connect(_psycopg_url(url)) as connection:
        row = connection.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass(%s)", (name,)
        ).fetchone()
    return None if row is None else bool(row[0])


def _leave_an_invalid_index(url: str) -> None:
    """A concurrent build of ``INDEX`` that fails half-way, as an interrupted migration would."""
    with psycopg.connect(_psycopg_url(url), autocommit=True) as connection:
        organization = connection.execute(
            "INSERT INTO organizations (name) VALUES ('o') RETURNING id"
        ).fetchone()
        assert organization is not None
        connector = connection.execute(
            "INSERT INTO connectors (organization_id, name) VALUES (%s, 'c') RETURNING id", organization
        ).fetchone()
        task = connection.execute(
            "INSERT INTO tasks (organization_id) VALUES (%s) RETURNING id", organization
        ).fetchone()
        assert connector is not None and task is not None
        for key, recipient in (("k1", "ada@example.test"), ("k2", "Ada@Example.test")):
            connection.execute(
                "INSERT INTO email_messages (organization_id, connector_id, task_id, idempotency_key,"
                " recipient) VALUES (%s, %s, %s, %s, %s)",
                (organization[0], connector[0], task[0], key, recipient),
            )
        with pytest.raises(psycopg.errors.UniqueViolation):
            connection.execute(
                f"CREATE UNIQUE INDEX CONCURRENTLY {INDEX} ON email_messages (task_id, lower(recipient))"
            )


def test_upgrade_to_0004_rebuilds_an_index_an_interrupted_concurrent_build_left_invalid(
    database_url: str,
) -> None:
    migrations.upgrade(database_url, "0003")
    _leave_an_invalid_index(database_url)
    assert _index_validity(database_url, INDEX) is False

    migrations.upgrade(database_url, "0004")

    assert _index_validity(database_url, INDEX) is True
    engine = sa.create_engine(database_url)
    try:
        rebuilt = {index["name"]: index for index in sa.inspect(engine).get_indexes("email_messages")}
    finally:
        engine.dispose()
    assert not rebuilt[INDEX]["unique"]  # rebuilt as 0004 declares it


def test_downgrade_from_0004_restores_the_single_column_indexes(database_url: str) -> None:
    migrations.upgrade(database_url)

    migrations.downgrade(database_url, "0003")

    engine = sa.create_engine(database_url)
    try:
        indexes = {index["name"] for index in sa.inspect(engine).get_indexes("email_messages")}
    finally:
        engine.dispose()
    assert {"ix_email_messages_organization_id", "ix_email_messages_task_id"} <= indexes
    assert not {INDEX, "ix_email_messages_organization_id_lower_recipient"} & indexes
