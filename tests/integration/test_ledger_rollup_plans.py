"""A day's ledger rollup reads that day's blocks through the block range index on created_at, never the
whole ledger, and ``pilot status`` reads the rollups of its days through their key: a module database
holds 60 days of 2,000 ledger rows each, written in time order, and 60 days of 1,000 rollup rows each,
analyzed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from shared.db import make_engine
from shared.partitions.ledger_rollups import roll_up_ledger, totals
from shared.settings import load_settings
from tests.conftest import create_database, drop_database
from tests.query_plans import access_paths, partitions_folded, plans_of

pytestmark = pytest.mark.integration

DAYS = 60
PER_DAY = 2_000
FIRST = datetime(2026, 9, 1, tzinfo=UTC)
ROLLUPS_PER_DAY = 1_000

_LEDGER = """
WITH o AS (INSERT INTO organizations (name) VALUES ('plans') RETURNING id),
     c AS (INSERT INTO connectors (organization_id, name) SELECT id, 'c' FROM o RETURNING id)
INSERT INTO email_messages (organization_id, connector_id, idempotency_key, recipient, status, created_at)
SELECT o.id, c.id, 'days/' || g, 'reader' || g || '@example.test',
       (ARRAY['delivered', 'bounced', 'sent'])[1 + g % 3],
       :first + make_interval(secs => g * 86400.0 / :per_day)
FROM o, c, generate_series(0, :rows - 1) AS g
"""
# Rollups of many tasks a day, as a busy platform's would be.
_ROLLUPS = """
INSERT INTO ledger_rollups (day, organization_id, connector_id, task_id, status, emails)
SELECT CAST(:first AS date) + d, gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'delivered', 100
FROM generate_series(0, :days - 1) AS d, generate_series(1, :per_day) AS k
"""


@pytest.fixture(scope="module")
def engine(template_database: str) -> Iterator[Engine]:
    name = f"pilot_test_rollup_plans_{uuid.uuid4().hex[:10]}"
    engine = make_engine(load_settings(database_url=create_database(name, template=template_database)))
    with engine.begin() as connection:
        connection.execute(text(_LEDGER), {"first": FIRST, "per_day": PER_DAY, "rows": DAYS * PER_DAY})
        connection.execute(text(_ROLLUPS), {"first": FIRST, "days": DAYS, "per_day": ROLLUPS_PER_DAY})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE email_messages"))
        connection.execute(text("ANALYZE ledger_rollups"))
    yield engine
    engine.dispose()
    drop_database(name)


def test_a_days_rollup_reads_the_ledger_through_its_block_range_index(engine: Engine) -> None:
    day = FIRST + timedelta(days=30)

    with Session(engine) as session:
        [plan] = plans_of(
            session,
            lambda: roll_up_ledger(session.connection(), day, day + timedelta(days=1)),
            matching="FROM email_messages",
        )
        session.rollback()

    with Session(engine) as session:
        paths = partitions_folded(session, access_paths(plan))
    ledger_reads = {path for table, path in paths if table == "email_messages"}
    assert ledger_reads == {"ix_email_messages_created_at_brin"}


def test_pilot_status_sums_a_weeks_rollups_through_their_key_by_day(engine: Engine) -> None:
    last = (FIRST + timedelta(days=DAYS - 1)).date()

    with Session(engine) as session:
        [plan] = plans_of(
            session, lambda: totals(session, last - timedelta(days=6), last), matching="ledger_rollups"
        )

    assert access_paths(plan) == {("ledger_rollups", "uq_ledger_rollups_key")}
