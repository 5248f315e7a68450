"""Record an invalid send payload as failed, with its reason; it is never retried.

With an existing connector and a recipient, as ``failed`` ledger rows (one per mailbox), where the
upstream app finds every other answer; otherwise as one ``send.payload_invalid`` audit row (task,
reason, field names, recipient count; never values). NUL and lone surrogates are made storable first.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from marketing_pilot_client.payloads import OutcomesOptIn
from shared import audit
from shared.addresses import bare_address, mailbox_key
from shared.db import make_sessionmaker, transaction
from shared.models import Connector, Task
from shared.sending import ledger
from shared.sending.context import SendContext
from shared.sending.ledger import Placement
from shared.sending.outcomes import RecipientResult, ResultStatus, SendOutcome
from shared.sending.payloads import storable_text
from shared.sending.rendering import RenderedMessage, message_id_for, recipient_hash, task_reference

logger = logging.getLogger(__name__)

#: Recipients recorded one row each; a payload naming more is recorded as one audit row with the count.
MAX_RECORDED_RECIPIENTS = 100_000
#: The longest address a row records (RFC 5321 allows 254; anything longer is cut, not dropped).
MAX_ADDRESS_LENGTH = 320
#: The longest subject a row records (RFC 5322's line limit).
MAX_SUBJECT_LENGTH = 998
ADDRESS_FIELDS = ("to", "cc", "bcc")
ACTOR = "worker"


def record_invalid(ctx: SendContext, kwargs: Any, reason: str, *, task_ref: str) -> SendOutcome:
    """Write the failure (rows or an audit entry) and return every recipient as ``failed``."""
    outcome = _record_invalid(ctx, kwargs, reason, task_ref=task_ref)
    ctx.metrics.count_results(result.status for result in outcome.results)
    return outcome


def _record_invalid(ctx: SendContext, kwargs: Any, reason: str, *, task_ref: str) -> SendOutcome:
    reason = storable_text(reason)
    logger.warning("send task %s refused: %s", task_ref, reason)
    data = kwargs if isinstance(kwargs, Mapping) else {}
    recipients = payload_recipients(data)
    with transaction(make_sessionmaker(ctx.engine)) as session:
        connector = session.get(Connector, _uuid(data.get("connector_id")) or uuid.uuid4())
        if connector is None or not recipients or len(recipients) > MAX_RECORDED_RECIPIENTS:
            _audit(session, data, reason, task_ref=task_ref, connector=connector, recipients=len(recipients))
            if len(recipients) > MAX_RECORDED_RECIPIENTS:
                return SendOutcome(
                    [RecipientResult("", ResultStatus.FAILED, f"{reason} ({len(recipients)} recipients)")]
                )
            return SendOutcome([RecipientResult(r, ResultStatus.FAILED, reason) for r in recipients or [""]])
        task_id = _uuid(data.get("task_id"))
        if task_id is not None and session.scalar(select(Task.organization_id).where(Task.id == task_id)) != (
            connector.organization_id
        ):
            task_id = None
        messages = refused_messages(connector.id, task_ref, data, reason)
        ledger.insert_messages(
            session,
            messages,
            organization_id=connector.organization_id,
            connector_id=connector.id,
            task_id=task_id,
            placement=Placement(None),
            outcomes_queue=_outcomes_queue(data.get("outcomes_queue")),
        )
        rows = ledger.load_messages(session, [message.id for message in messages], connector_id=connector.id)
        return SendOutcome([RecipientResult.of(row) for row in rows])


def refused_messages(
    connector_id: uuid.UUID, task_ref: str, email: Mapping[str, Any], reason: str, *, index: int | None = None
) -> list[RenderedMessage]:
    """One ``failed`` message per mailbox named in ``email`` (``index``: its place in a batch)."""
    ref = task_reference(task_ref)
    where = "" if index is None else f"{index}/"
    subject = email.get("subject")
    subject = storable_text(subject)[:MAX_SUBJECT_LENGTH] if isinstance(subject, str) else ""
    messages = []
    for address in payload_recipients(email):
        key = f"pilot-invalid/{connector_id}/{ref}/{where}{recipient_hash(address)}"
        messages.append(RenderedMessage(message_id_for(key), key, address, subject, {}, refusal=reason))
    return messages


def payload_recipients(data: Mapping[str, Any]) -> list[str]:
    """Every mailbox named in ``to``, ``cc`` and ``bcc`` (or in those of each of ``emails``), bare and
    storable, without repeats (case-insensitive), in order."""
    found: dict[str, str] = {}
    for value in _address_values(data):
        if value.strip():
            address = storable_text(bare_address(value))[:MAX_ADDRESS_LENGTH]
            found.setdefault(mailbox_key(address), address)
    return list(found.values())


def _address_values(data: Mapping[str, Any]) -> Iterator[str]:
    emails = data.get("emails")
    sources = [data, *(emails if isinstance(emails, list) else [])]
    for source in sources:
        if not isinstance(source, Mapping):
            continue
        for name in ADDRESS_FIELDS:
            field = source.get(name)
            for value in [field] if isinstance(field, str) else field if isinstance(field, list) else []:
                if isinstance(value, str):
                    yield value


def _audit(
    session: Any,
    data: Mapping[str, Any],
    reason: str,
    *,
    task_ref: str,
    connector: Connector | None,
    recipients: int,
) -> None:
    audit.record(
        session,
        action="send.payload_invalid",
        actor=ACTOR,
        result="failure",
        organization_id=connector.organization_id if connector else None,
        connector_id=connector.id if connector else None,
        target=f"celery-task:{storable_text(task_ref)}",
        reason=reason,
        details={"fields": sorted(storable_text(str(name)) for name in data)[:50], "recipients": recipients},
    )


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value is not None else None
    except ValueError:
        return None


__all__ = ["payload_recipients", "record_invalid", "refused_messages"]


def _outcomes_queue(value: Any) -> str | None:
    """The refused payload's ``outcomes_queue`` if it is a valid one (its failures are reported there)."""
    try:
        return OutcomesOptIn(outcomes_queue=value).outcomes_queue if isinstance(value, str) else None
    except ValidationError:
        return None
