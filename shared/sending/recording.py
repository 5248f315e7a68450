"""From a validated send payload to ledger rows: render, refuse what cannot go, detect key conflicts.

What a task asks for becomes :class:`Prepared`: the rows to send, in order, and the answers known
without sending. An invalid email of a batch is refused alone; an ``idempotency_key`` that names
another email of the connector is a conflict (``failed``, audited, nothing sent); the rest is written
``queued``, and a row whose key exists already is left as it is.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import audit
from shared.errors import PayloadInvalid
from shared.models import EmailMessage, EmailRequest
from shared.sending import ledger
from shared.sending.connectors import ConnectorView
from shared.sending.ledger import Placement
from shared.sending.outcomes import RecipientResult, ResultStatus
from shared.sending.payloads import (
    EmailFields,
    RefusedEmail,
    SendBatchPayload,
    SendEmailPayload,
    parse_emails,
)
from shared.sending.refusals import refused_messages
from shared.sending.rendering import LinkOptions, RenderedMessage, render_email, stored_content_hash
from shared.unsubscribe.links import UnsubscribeLinks

logger = logging.getLogger(__name__)

ACTOR = "worker"


@dataclass
class Prepared:
    """The rows a task sends, in order, and the answers known without a row to send."""

    connector: ConnectorView
    #: Messages rendered by this task (none for a resume), each checked against Resend's model.
    messages: list[RenderedMessage] = field(default_factory=list)
    ids: list[uuid.UUID] = field(default_factory=list)
    answered: list[RecipientResult] = field(default_factory=list)
    #: Recipients refused here (written ``failed``, or answered without a row).
    refused: int = 0

    def results(self, from_rows: Sequence[RecipientResult]) -> list[RecipientResult]:
        """The rows' results followed by the answers given without a row."""
        return [*from_rows, *self.answered]


def prepare_rows(
    session: Session,
    payload: SendEmailPayload | SendBatchPayload,
    connector: ConnectorView,
    *,
    task_ref: str,
    placement: Placement,
    rendered: list[RenderedMessage] | None = None,
    links: UnsubscribeLinks | None = None,
) -> Prepared:
    """Render ``payload`` (unless ``rendered`` holds its messages already), write its rows where
    ``placement`` says and answer its conflicts (nothing is committed here). ``links`` makes the
    unsubscribe links (none without it).

    Raises :class:`PayloadInvalid` if a single email (``pilot.send_email``) cannot be rendered.
    """
    prepared = Prepared(connector)
    if rendered is None:
        rendered = render(payload, connector, task_ref=task_ref, prepared=prepared, links=links)
    messages = _without_repeats(session, connector, rendered, prepared)
    ledger.insert_messages(
        session,
        messages,
        organization_id=connector.organization_id,
        connector_id=connector.id,
        task_id=payload.task_id,
        placement=placement,
        outcomes_queue=payload.outcomes_queue,
    )
    taken = _taken_keys(session, connector, messages)
    for message in messages:
        if message.id in taken:
            _answer_conflict(session, connector, message, prepared)
    prepared.messages = [message for message in messages if message.id not in taken]
    prepared.ids = [message.id for message in prepared.messages]
    prepared.refused = len(prepared.answered) + sum(
        message.refusal is not None for message in prepared.messages
    )
    return prepared


def render(
    payload: SendEmailPayload | SendBatchPayload,
    connector: ConnectorView,
    *,
    task_ref: str,
    prepared: Prepared,
    links: UnsubscribeLinks | None = None,
) -> list[RenderedMessage]:
    """Every mailbox's message, fanned out, in order; a batch's invalid emails as refused messages.

    Every email of a batch is bulk: it gets unsubscribe headers unless it opts out.
    """
    default_from = connector.default_from
    ref = str(payload.task_id) if payload.task_id is not None else task_ref
    options = LinkOptions(links, connector.organization_id, bulk=isinstance(payload, SendBatchPayload))

    def one(email: EmailFields) -> list[RenderedMessage]:
        return render_email(
            email,
            connector_id=connector.id,
            task_ref=ref,
            default_from=default_from,
            task_id=payload.task_id,
            links=options,
        )

    if isinstance(payload, SendEmailPayload):
        return one(payload)
    rendered: list[RenderedMessage] = []
    for index, item in enumerate(parse_emails(payload.emails)):
        if isinstance(item, EmailFields):
            try:
                rendered += one(item)
                continue
            except PayloadInvalid as exc:
                item = RefusedEmail(index, f"invalid send_batch payload: emails.{index}: {exc}", item)
        rendered += _refused(connector, ref, payload.emails[index], item, prepared)
    return rendered


def _refused(
    connector: ConnectorView, ref: str, raw: object, refusal: RefusedEmail, prepared: Prepared
) -> list[RenderedMessage]:
    """The ``failed`` messages of a batch email refused alone; an answer if it names no mailbox."""
    data = raw if isinstance(raw, Mapping) else {}
    messages = refused_messages(connector.id, ref, data, refusal.reason, index=refusal.index)
    if not messages:
        logger.warning("send_batch email %d refused: %s", refusal.index, refusal.reason)
        prepared.answered.append(RecipientResult("", ResultStatus.FAILED, refusal.reason))
    return messages


def _without_repeats(
    session: Session, connector: ConnectorView, rendered: list[RenderedMessage], prepared: Prepared
) -> list[RenderedMessage]:
    """``rendered`` with each key once: a repeat of the same content is the same email (sent once);
    a repeat with other content is a conflict, answered and audited."""
    first: dict[str, RenderedMessage] = {}
    for message in rendered:
        earlier = first.setdefault(message.idempotency_key, message)
        if earlier is not message and earlier.content_hash != message.content_hash:
            _answer_conflict(session, connector, message, prepared)
    return list(first.values())


def _taken_keys(
    session: Session, connector: ConnectorView, messages: Sequence[RenderedMessage]
) -> set[uuid.UUID]:
    """The caller-keyed messages whose key an earlier email of other content holds already."""
    keyed = {message.id: message for message in messages if message.caller_keyed and message.refusal is None}
    if not keyed:
        return set()
    # A row whose body retention dropped (final, past its retry window) is taken for the same email.
    stored = session.execute(
        select(EmailMessage.id, EmailRequest.request, EmailMessage.topic)
        .outerjoin(EmailRequest, EmailRequest.of_message())
        .where(EmailMessage.id.in_(keyed), EmailMessage.connector_id == connector.id)
    )
    return {
        message_id
        for message_id, request, topic in stored
        if request
        and (stored_content_hash(request), topic)
        != (stored_content_hash(keyed[message_id].request), keyed[message_id].topic)
    }


def _answer_conflict(
    session: Session, connector: ConnectorView, message: RenderedMessage, prepared: Prepared
) -> None:
    reason = (
        f"idempotency_key: already used for an email with other content (message {message.id}); "
        "use a new key for new content"
    )
    logger.warning("send refused: idempotency key of message %s reused with other content", message.id)
    audit.record(
        session,
        action="send.idempotency_conflict",
        actor=ACTOR,
        result="failure",
        organization_id=connector.organization_id,
        connector_id=connector.id,
        target=f"email_message:{message.id}",
        reason=reason,
    )
    prepared.answered.append(RecipientResult(message.recipient, ResultStatus.FAILED, reason))
