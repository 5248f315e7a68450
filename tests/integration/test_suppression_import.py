"""Bulk import of suppressions: set-based (a few statements per batch of addresses), with
`suppress()`'s rule, one audit row per import, and a clear report when it stops part-way."""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from shared import connector_store as store
from shared import suppression_admin
from shared.db import transaction
from shared.errors import ImportInterrupted
from shared.models import AuditLog, Suppression
from shared.suppression import MAX_RECIPIENT_LOCKS, Entry, suppress

pytestmark = pytest.mark.integration

LATER = datetime(2030, 1, 1, tzinfo=UTC)
LATEST = datetime(2031, 1, 1, tzinfo=UTC)


def new_organization(factory: sessionmaker[Session]) -> uuid.UUID:
    with transaction(factory) as session:
        return store.create_organization(session, f"org-{uuid.uuid4().hex[:8]}", actor="test").id


def entries(count: int, *, reason: str = "manual", expires_at: datetime | None = None) -> list[Entry]:
    return [Entry(f"reader{n}@example.com", reason, expires_at) for n in range(count)]


def stored(
    factory: sessionmaker[Session], organization_id: uuid.UUID
) -> dict[str, tuple[str, datetime | None]]:
    with factory() as session:
        rows = session.execute(
            select(Suppression.email, Suppression.reason, Suppression.expires_at).where(
                Suppression.organization_id == organization_id
            )
        )
        return {email: (reason, expires_at) for email, reason, expires_at in rows}


def import_audits(factory: sessionmaker[Session], organization_id: uuid.UUID) -> list[dict[str, Any]]:
    with factory() as session:
        query = select(AuditLog.details).where(
            AuditLog.organization_id == organization_id, AuditLog.action == "suppression.import"
        )
        return list(session.scalars(query))


def stop_after_first_batch(real: Callable[..., int]) -> Callable[..., int]:
    """``suppress_many`` that fails from its second batch on, as if the database went away."""
    calls: list[int] = []

    def wrapped(session: Session, org: uuid.UUID, batch: Sequence[Entry], *, source: str) -> int:
        calls.append(len(batch))
        if len(calls) > 1:
            raise OperationalError("INSERT ...", {}, Exception("server closed the connection"))
        return real(session, org, batch, source=source)

    return wrapped


def test_import_entries_writes_each_batch_of_addresses_in_a_few_statements(
    session_factory: sessionmaker[Session],
) -> None:
    organization_id = new_organization(session_factory)
    engine: Engine = session_factory.kw["bind"]
    statements: list[str] = []
    count = 2 * MAX_RECIPIENT_LOCKS + 500

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        suppression_admin.import_entries(session_factory, organization_id, entries(count), actor="test")
    finally:
        event.remove(engine, "before_cursor_execute", record)

    batches = math.ceil(count / MAX_RECIPIENT_LOCKS)
    assert len(statements) <= 2 * batches + 1  # recipient locks and upsert per batch, one audit row
    assert len(stored(session_factory, organization_id)) == count


def test_import_entries_stores_100000_addresses_with_one_audit_row(
    session_factory: sessionmaker[Session],
) -> None:
    organization_id = new_organization(session_factory)
    lines = ["email,reason,expires_at"]
    lines += [
        f"Reader.{n}@Example{n % 97}.com,unsubscribed,{'2099-01-01' if n % 3 else ''}" for n in range(100_000)
    ]

    report = suppression_admin.import_entries(
        session_factory, organization_id, suppression_admin.read_csv("\n".join(lines).encode()), actor="ops"
    )

    rows = stored(session_factory, organization_id)
    assert (report.lines, report.addresses, report.new, report.updated) == (100_000, 100_000, 100_000, 0)
    assert len(rows) == 100_000
    assert rows["reader.99999@example89.com"] == ("unsubscribed", None)
    assert rows["reader.1@example1.com"] == ("unsubscribed", datetime(2099, 1, 1, tzinfo=UTC))
    assert import_audits(session_factory, organization_id) == [{"lines": 100_000, "addresses": 100_000}]


def test_import_entries_never_shortens_a_permanent_entry(session_factory: sessionmaker[Session]) -> None:
    organization_id = new_organization(session_factory)
    with transaction(session_factory) as session:
        suppress(session, organization_id, "permanent@example.com", "hard_bounce", source="resend_webhook")
        suppress(session, organization_id, "expiring@example.com", "soft_bounce", expires_at=LATER)
    imported = [
        Entry("permanent@example.com", "manual", LATEST),
        Entry("expiring@example.com", "manual", LATEST),
    ]

    report = suppression_admin.import_entries(session_factory, organization_id, imported, actor="test")

    assert (report.new, report.updated) == (0, 2)
    assert stored(session_factory, organization_id) == {
        "permanent@example.com": ("manual", None),
        "expiring@example.com": ("manual", LATEST),
    }


def test_import_entries_folds_an_address_given_twice_by_the_same_rule(
    session_factory: sessionmaker[Session],
) -> None:
    organization_id = new_organization(session_factory)
    imported = [
        Entry("twice@example.com", "manual", LATER),
        Entry("twice@example.com", "unsubscribed", None),
        Entry("twice@example.com", "hard_bounce", LATEST),
        Entry("later@example.com", "manual", LATER),
        Entry("later@example.com", "manual", LATEST),
    ]

    report = suppression_admin.import_entries(session_factory, organization_id, imported, actor="test")

    assert (report.lines, report.addresses, report.new) == (5, 2, 2)
    assert stored(session_factory, organization_id) == {
        "twice@example.com": ("hard_bounce", None),
        "later@example.com": ("manual", LATEST),
    }


def test_import_entries_stopped_part_way_says_how_many_are_stored(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    organization_id = new_organization(session_factory)
    monkeypatch.setattr(suppression_admin, "MAX_RECIPIENT_LOCKS", 3)
    monkeypatch.setattr(
        suppression_admin, "suppress_many", stop_after_first_batch(suppression_admin.suppress_many)
    )

    with pytest.raises(ImportInterrupted, match="after 3 of 7 addresses") as caught:
        suppression_admin.import_entries(session_factory, organization_id, entries(7), actor="test")

    assert caught.value.stored == 3
    assert len(stored(session_factory, organization_id)) == 3
    assert len(import_audits(session_factory, organization_id)) == 1


def test_import_entries_run_again_after_a_stop_finishes_the_import(
    session_factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    organization_id = new_organization(session_factory)
    with monkeypatch.context() as patched:
        patched.setattr(suppression_admin, "MAX_RECIPIENT_LOCKS", 3)
        patched.setattr(
            suppression_admin, "suppress_many", stop_after_first_batch(suppression_admin.suppress_many)
        )
        with pytest.raises(ImportInterrupted):
            suppression_admin.import_entries(session_factory, organization_id, entries(7), actor="test")

    report = suppression_admin.import_entries(session_factory, organization_id, entries(7), actor="test")

    assert (report.new, report.updated) == (4, 3)
    assert len(stored(session_factory, organization_id)) == 7


def test_concurrent_imports_of_the_same_addresses_in_opposite_orders_both_finish(
    session_factory: sessionmaker[Session],
) -> None:
    organization_id = new_organization(session_factory)
    forward = entries(MAX_RECIPIENT_LOCKS)
    errors: list[BaseException] = []

    def run(batch: list[Entry]) -> None:
        try:
            for _ in range(3):
                suppression_admin.import_entries(session_factory, organization_id, batch, actor="test")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(order,)) for order in (forward, forward[::-1])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    with session_factory() as session:
        count = session.scalar(
            select(func.count())
            .select_from(Suppression)
            .where(Suppression.organization_id == organization_id)
        )
    assert count == MAX_RECIPIENT_LOCKS
