"""Transactional outbox for upstream Python apps: ledger rows in your transaction, publish after commit.

:func:`enqueue_send` writes the rows in the caller's session; ``pilot.send_email {connector_id,
message_ids}`` is published after the commit. A rollback leaves nothing to send; a publish lost after
the commit leaves the rows ``queued`` for ``pilot.sweep``. Example: docs/architecture.md, "The outbox".
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from shared import task_names
from shared.errors import PayloadInvalid
from shared.models import Priority
from shared.sending.payloads import SendEmailPayload, parse_send_email
from shared.sending.pipeline import prepare
from shared.settings import get_settings
from shared.task_producer import TaskSender, publish
from shared.unsubscribe.links import UnsubscribeLinks

logger = logging.getLogger(__name__)

_PENDING = "pilot_outbox_pending"


def enqueue_send(session: Session, celery_app: TaskSender, **payload: Any) -> list[uuid.UUID]:
    """Write one ``queued`` ledger row per recipient in ``session``'s transaction; publish on commit.

    ``payload`` is a ``pilot.send_email`` payload (validated the same way; :class:`PayloadInvalid`
    is raised here, before anything is written). Returns the rows' ids (``message_id`` tags).
    """
    parsed = parse_send_email(payload)
    if not isinstance(parsed, SendEmailPayload):
        raise PayloadInvalid("message_ids: the outbox writes rows itself; give the email's content")
    # A stable reference for the derived keys: the caller's task, else a new one per call.
    reference = str(parsed.task_id or uuid.uuid4())
    links = UnsubscribeLinks.from_settings(get_settings())
    connector_id, ids = prepare(session, parsed, task_ref=reference, links=links)
    resume = {"connector_id": str(connector_id), "message_ids": ids}
    _publish_after_commit(session, celery_app, resume, parsed.resolved_priority)
    return ids


def _publish_after_commit(
    session: Session, celery_app: TaskSender, kwargs: dict[str, Any], priority: Priority
) -> None:
    pending: list[tuple[TaskSender, dict[str, Any], Priority]] = session.info.setdefault(_PENDING, [])
    if not pending and not event.contains(session, "after_commit", _after_commit):
        event.listen(session, "after_commit", _after_commit)
        event.listen(session, "after_rollback", _after_rollback)
    pending.append((celery_app, kwargs, priority))


def _after_commit(session: Session) -> None:
    for celery_app, kwargs, priority in session.info.pop(_PENDING, []):
        message = {**kwargs, "message_ids": [str(i) for i in kwargs["message_ids"]]}
        try:
            publish(celery_app, task_names.SEND_EMAIL, kwargs=message, priority=priority)
        except Exception:  # the rows are committed: the sweep publishes them later
            logger.exception("outbox publish failed; pilot.sweep will pick the rows up")


def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


__all__ = ["TaskSender", "enqueue_send"]
