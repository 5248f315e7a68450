"""Record an invalid send payload as failed, with its reason; it is never retried.

Where it is recorded: when the payload names an existing connector and at least one recipient, as
``failed`` ledger rows (one per recipient, ``last_error`` = the reason), so the upstream app finds
the answer where it finds every other; otherwise (no usable connector or recipient) as an audit row
``send.payload_invalid`` naming the Celery task and the payload's field names (never their values).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from shared import audit
from shared.db import make_sessionmaker, transaction
from shared.models import Connector, Task
from worker import ledger
from worker.context import SendContext
from worker.rendering import RenderedMessage, bare_address, message_id_for, recipient_hash, task_reference
from worker.results import RecipientResult, SendOutcome

logger = logging.getLogger(__name__)

#: Recipients recorded from one invalid payload at most.
MAX_RECORDED_RECIPIENTS = 1000
ACTOR = "worker"


def record_invalid(ctx: SendContext, kwargs: Mapping[str, Any], reason: str, *, task_ref: str) -> SendOutcome:
    """Write the failure (rows or an audit entry) and return every recipient as ``failed``."""
    logger.warning("send task %s refused: %s", task_ref, reason)
    data = kwargs if isinstance(kwargs, Mapping) else {}
    recipients = payload_recipients(data)
    with transaction(make_sessionmaker(ctx.engine)) as session:
        connector = session.get(Connector, _uuid(data.get("connector_id")) or uuid.uuid4())
        if connector is None or not recipients:
            _audit(session, data, reason, task_ref=task_ref, connector=connector)
            return SendOutcome([RecipientResult(r, "failed", reason) for r in recipients or [""]])
        task_id = _uuid(data.get("task_id"))
        if task_id is not None and session.scalar(select(Task.organization_id).where(Task.id == task_id)) != (
            connector.organization_id
        ):
            task_id = None
        messages = [_failed_message(connector.id, task_ref, address, data) for address in recipients]
        ledger.insert_messages(
            session,
            messages,
            organization_id=connector.organization_id,
            connector_id=connector.id,
            task_id=task_id,
            status="failed",
            last_error=reason,
        )
        if task_id is not None:
            ledger.refresh_task_counts(session, task_id)
        rows = ledger.load_messages(session, [message.id for message in messages])
        return SendOutcome([RecipientResult.of(row) for row in rows])


def payload_recipients(data: Mapping[str, Any]) -> list[str]:
    """The string addresses found in ``to`` (or in each of ``emails[].to``), bare, without repeats."""
    sources: list[Any] = [data.get("to")]
    emails = data.get("emails")
    if isinstance(emails, list):
        sources += [email.get("to") for email in emails if isinstance(email, Mapping)]
    found: dict[str, str] = {}
    for source in sources:
        for value in [source] if isinstance(source, str) else source if isinstance(source, list) else []:
            if isinstance(value, str) and value.strip():
                address = bare_address(value)[:320]
                found.setdefault(address.lower(), address)
    return list(found.values())[:MAX_RECORDED_RECIPIENTS]


def _failed_message(
    connector_id: uuid.UUID, task_ref: str, address: str, data: Mapping[str, Any]
) -> RenderedMessage:
    key = f"pilot-invalid/{connector_id}/{task_reference(task_ref)}/{recipient_hash(address)}"
    subject = data.get("subject")
    return RenderedMessage(
        id=message_id_for(key),
        idempotency_key=key,
        recipient=address,
        subject=subject[:998] if isinstance(subject, str) else "",
        request={},
    )


def _audit(
    session: Any, data: Mapping[str, Any], reason: str, *, task_ref: str, connector: Connector | None
) -> None:
    audit.record(
        session,
        action="send.payload_invalid",
        actor=ACTOR,
        result="failure",
        organization_id=connector.organization_id if connector else None,
        connector_id=connector.id if connector else None,
        target=f"celery-task:{task_ref}",
        reason=reason,
        details={"fields": sorted(str(name) for name in data)[:50]},
    )


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None


__all__ = ["payload_recipients", "record_invalid"]
