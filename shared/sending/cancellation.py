"""Cancel sends that have not left: scheduled, queued or deferred rows become ``cancelled``.

Rows are named by the caller's ``idempotency_key`` (with its connector), by ``task_id`` (a ``tasks``
row) or by ledger ids. A row a dispatcher has claimed is waited for, then judged as it stands: one in
flight or sent is not cancelled, and the answer says so per recipient.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg

from shared.errors import PayloadInvalid
from shared.models import CANCELLABLE_STATUSES, MessageStatus
from shared.sending.outcomes import ACCEPTED_STATUSES
from shared.sending.payloads import CancelPayload

#: Rows one cancel may name (a task's whole campaign included).
MAX_ROWS = 100_000
#: ``idempotency_key`` rows: the caller's key, ``/``, then 16 hex characters (rendering.message_key).
_KEY_SUFFIX_LENGTH = 17
#: How the worker's own keys begin (rendering.message_key): the caller-key index leaves them out.
_DERIVED_PREFIX = "pilot/"


@dataclass(frozen=True)
class CancelAnswer:
    """What became of one row: ``cancelled``, or why not (``already_sent``, ``in_flight`` or its
    final status)."""

    message_id: str
    recipient: str
    answer: str
    status: str

    def as_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return dict(self.__dict__)


@dataclass
class CancelOutcome:
    """Every named row's answer."""

    answers: list[CancelAnswer] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Rows by answer."""
        counts: dict[str, int] = {}
        for item in self.answers:
            counts[item.answer] = counts.get(item.answer, 0) + 1
        return counts

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``pilot.cancel`` returns)."""
        return {"counts": self.counts(), "results": [item.as_dict() for item in self.answers]}


@dataclass(frozen=True)
class Selection:
    """Which rows a cancel names: exactly one of ``idempotency_key`` (with ``connector_id``),
    ``task_id`` or ``message_ids``; ``connector_id`` also scopes the other two."""

    connector_id: uuid.UUID | None = None
    idempotency_key: str | None = None
    task_id: uuid.UUID | None = None
    message_ids: tuple[uuid.UUID, ...] = ()
    organization_id: uuid.UUID | None = None

    def __post_init__(self) -> None:
        given = [
            name
            for name, value in (
                ("idempotency_key", self.idempotency_key),
                ("task_id", self.task_id),
                ("message_ids", self.message_ids),
            )
            if value
        ]
        if len(given) != 1:
            raise PayloadInvalid("give exactly one of idempotency_key, task_id or message_ids")
        if self.idempotency_key is not None and self.connector_id is None:
            raise PayloadInvalid("connector_id: required with idempotency_key (keys are per connector)")
        if len(self.message_ids) > MAX_ROWS:
            raise PayloadInvalid(f"message_ids: at most {MAX_ROWS}")

    def where(self) -> tuple[str, dict[str, Any]]:
        """The SQL condition on ``email_messages m`` and its parameters."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if self.connector_id is not None:
            clauses.append("m.connector_id = %(connector)s")
            params["connector"] = self.connector_id
        if self.organization_id is not None:
            clauses.append("m.organization_id = %(organization)s")
            params["organization"] = self.organization_id
        if self.idempotency_key is not None:
            clauses.append(
                "starts_with(m.idempotency_key, %(prefix)s) AND length(m.idempotency_key) = %(length)s"
            )
            params["prefix"] = self.idempotency_key + "/"
            params["length"] = len(self.idempotency_key) + _KEY_SUFFIX_LENGTH
            if not self.idempotency_key.startswith(_DERIVED_PREFIX):
                # Stated for the planner: the caller-key index (migration 0012) holds only such rows.
                clauses.append(f"m.idempotency_key NOT LIKE '{_DERIVED_PREFIX}%%'")
        if self.task_id is not None:
            clauses.append("m.task_id = %(task)s")
            params["task"] = self.task_id
        if self.message_ids:
            clauses.append("m.id = ANY(%(ids)s)")
            params["ids"] = list(self.message_ids)
        return " AND ".join(clauses), params


def selection_of(payload: CancelPayload) -> Selection:
    """The rows a ``pilot.cancel`` payload names (raises :class:`PayloadInvalid` if not exactly one way)."""
    return Selection(
        connector_id=payload.connector_id,
        idempotency_key=payload.idempotency_key,
        task_id=payload.task_id,
        message_ids=tuple(payload.message_ids or ()),
        organization_id=payload.organization_id,
    )


def cancel(conn: psycopg.Connection[Any], selection: Selection, *, actor: str) -> CancelOutcome:
    """Cancel the named rows that have not left, in one transaction; every named row's answer.

    A row a dispatcher holds is waited for (its row lock), then judged as it stands.
    """
    condition, params = selection.where()
    params |= {
        "cancellable": sorted(str(status) for status in CANCELLABLE_STATUSES),
        "reason": f"cancelled by {actor}"[:200],
        "limit": MAX_ROWS,
    }
    with conn.transaction():
        cancelled = {
            row[0]
            for row in conn.execute(
                f"""
                UPDATE email_messages m SET status = 'cancelled', next_attempt_at = NULL,
                    last_error = %(reason)s, updated_at = now()
                WHERE {condition} AND m.status = ANY(%(cancellable)s)
                RETURNING m.id
                """,
                params,
            )
        }
        rows = conn.execute(
            f"SELECT m.id, m.recipient, m.status, m.task_id FROM email_messages m WHERE {condition} "
            "ORDER BY m.created_at, m.id LIMIT %(limit)s",
            params,
        ).fetchall()
    return CancelOutcome(
        [_answer(row_id, recipient, status, row_id in cancelled) for row_id, recipient, status, _ in rows]
    )


def _answer(message_id: uuid.UUID, recipient: str, status: str, cancelled_now: bool) -> CancelAnswer:
    if cancelled_now:
        answer = "cancelled"
    elif status == MessageStatus.CANCELLED:
        answer = "already_cancelled"
    elif status in ACCEPTED_STATUSES:
        answer = "already_sent"
    elif status == MessageStatus.SENDING:
        answer = "in_flight"
    else:
        answer = f"not_cancellable: {status}"
    return CancelAnswer(str(message_id), recipient, answer, status)
