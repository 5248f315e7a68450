"""Test helpers for the reputation guard: ledger rows with outcomes, applied as webhook events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from shared.db import transaction
from shared.models import AuditLog, EmailMessage, ReputationStatus
from tests.webhook_factories import make_message, resend_payload, store_event
from worker.events.processing import BatchOutcome, process_events

HARD_BOUNCE = {"type": "Permanent", "subType": "General", "message": "The address does not exist."}
SOFT_BOUNCE = {"type": "Transient", "subType": "MailboxFull", "message": "The mailbox is full."}


def sent_messages(
    factory: sessionmaker[Session],
    organization_id: uuid.UUID,
    connector_id: uuid.UUID,
    n: int,
    *,
    task_id: uuid.UUID | None = None,
    outcomes_queue: str | None = None,
) -> tuple[uuid.UUID, list[str]]:
    """``n`` sent ledger rows of one campaign (a new task unless ``task_id``), naming ``outcomes_queue``
    if given; their Resend ids."""
    with transaction(factory) as session:
        first = make_message(
            session, organization_id, connector_id, task_id=task_id, recipient="r0@example.test"
        )
        email_ids = [first.resend_email_id]
        for i in range(1, n):
            row = make_message(
                session, organization_id, connector_id, task_id=first.task_id, recipient=f"r{i}@example.test"
            )
            email_ids.append(row.resend_email_id)
        if outcomes_queue is not None:
            session.execute(
                update(EmailMessage)
                .where(EmailMessage.resend_email_id.in_(email_ids))
                .values(outcomes_queue=outcomes_queue)
            )
    return first.task_id, email_ids


def outcome_payloads(email_ids: Sequence[str], *, hard: int = 0, complained: int = 0) -> list[dict[str, Any]]:
    """One event per email: the first ``hard`` hard-bounce, the next ``complained`` complain, the rest
    are delivered."""
    payloads = []
    for i, email_id in enumerate(email_ids):
        if i < hard:
            payloads.append(resend_payload("bounced", email_id, bounce=HARD_BOUNCE))
        elif i < hard + complained:
            payloads.append(resend_payload("complained", email_id))
        else:
            payloads.append(resend_payload("delivered", email_id))
    return payloads


def apply(
    factory: sessionmaker[Session], payloads: Sequence[dict[str, Any]], *, batch: int = 100
) -> BatchOutcome:
    """Store ``payloads`` as webhook events and process them in batches, as the worker does; the
    outcome of the last batch."""
    with transaction(factory) as session:
        ids = [store_event(session, payload) for payload in payloads]
    outcome = BatchOutcome()
    for start in range(0, len(ids), batch):
        outcome = process_events(factory, ids[start : start + batch])
    return outcome


def state_of(factory: sessionmaker[Session], scope_id: uuid.UUID) -> str:
    """The guard's state of a scope (``ok`` when never judged)."""
    with factory() as session:
        status = session.get(ReputationStatus, scope_id)
        return status.state if status is not None else "ok"


def rates_of(factory: sessionmaker[Session], scope_id: uuid.UUID) -> dict[str, Any]:
    with factory() as session:
        status = session.get(ReputationStatus, scope_id)
        return dict(status.rates) if status is not None else {}


def guard_audit(factory: sessionmaker[Session], organization_id: uuid.UUID) -> list[str]:
    """The organization's reputation audit actions, oldest first."""
    with factory() as session:
        query = (
            select(AuditLog.action)
            .where(AuditLog.organization_id == organization_id, AuditLog.action.startswith("reputation."))
            .order_by(AuditLog.created_at, AuditLog.action)
        )
        return list(session.scalars(query))
