"""``pilot.record_dead_letter``: write a refused broker message to the ``dead_letters`` table.

Published by the worker's main process (:mod:`worker.broker.consumer`) with a
:class:`~worker.broker.dead_letters.DeadLetterRecord` as kwargs. Recording is idempotent: a message
recorded twice (its acknowledgement was lost, so it was refused again) is one row, keyed by the
message id as given and the body's SHA-256. Database outages are retried through the broker.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from pydantic import ValidationError
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from shared import task_names
from shared.db import make_sessionmaker, transaction
from shared.errors import PayloadInvalid
from shared.models import DeadLetter
from worker.broker.dead_letters import DeadLetterRecord
from worker.broker.message_check import printable
from worker.context import context
from worker.retry import DATABASE_RETRY

logger = logging.getLogger(__name__)


@shared_task(
    name=task_names.RECORD_DEAD_LETTER,
    bind=True,
    **DATABASE_RETRY,
)
def record_dead_letter(self: Any, **fields: Any) -> bool:
    """Store one dead letter; ``False`` if it was stored already."""
    return store_dead_letter(make_sessionmaker(context(self.app).engine), parse_record(fields))


def parse_record(fields: dict[str, Any]) -> DeadLetterRecord:
    """The record in a task's kwargs; :class:`PayloadInvalid` names the wrong fields, not their values."""
    try:
        return DeadLetterRecord.model_validate(fields)
    except ValidationError as exc:
        fields_named = {".".join(str(part) for part in error["loc"]) for error in exc.errors()}
        problems = sorted(printable(name) or "record" for name in fields_named)
        raise PayloadInvalid(f"dead letter record: invalid {', '.join(problems)}") from None


def store_dead_letter(session_factory: sessionmaker[Session], record: DeadLetterRecord) -> bool:
    """Insert ``record`` unless a row with its message id and body digest exists; ``True`` if new."""
    values = record.model_dump(exclude={"body_base64"}) | {"body": record.body}
    with transaction(session_factory) as session:
        inserted = session.execute(
            insert(DeadLetter).values(values).on_conflict_do_nothing().returning(DeadLetter.id)
        ).first()
    if inserted is not None:
        logger.info("dead letter %s recorded (%s)", inserted.id, record.reason.value)
    return inserted is not None
