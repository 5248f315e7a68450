"""The webhook pipeline without HTTP: verify → parse → store → enqueue.

Nothing is stored unless the signature verifies, and nothing is acknowledged unless it is stored.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from shared.errors import PayloadInvalid, WebhookVerificationError
from shared.models import UNDATED_EVENT
from shared.resend_events import parse_time
from shared.webhook_signature import verify
from webhook_receiver.dispatch import Dispatcher
from webhook_receiver.group_writer import GroupWriter

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Receipt:
    """A verified event: ``stored`` (new) or a replay of one stored before."""

    svix_id: str
    event_id: uuid.UUID | None
    event_type: str
    enqueued: bool

    @property
    def outcome(self) -> str:
        """``stored`` or ``duplicate``."""
        return "stored" if self.event_id is not None else "duplicate"

    def answer(self) -> bytes:
        """The 200 body: ``{"status": outcome, "svix_id": ...}``, written by hand (``jsonify`` and its
        app JSON provider cost more than the rest of the answer)."""
        return f'{{"status":"{self.outcome}","svix_id":{json.dumps(self.svix_id)}}}'.encode()


@dataclass(frozen=True)
class WebhookReceiver:
    """Holds the decoded secrets, the engine and its group writer, the dispatcher and the clock."""

    keys: Sequence[bytes]
    engine: Engine
    writer: GroupWriter
    dispatcher: Dispatcher
    clock: Callable[[], float] = time.time
    tolerance: int = 300

    def receive(self, body: bytes, headers: Mapping[str, str]) -> Receipt:
        """Verify, store and enqueue one delivery.

        Raises ``WebhookVerificationError`` or ``PayloadInvalid`` (400) and
        ``StorageUnavailable`` (503). A broker failure is logged only: the event is stored.
        """
        svix_id = self._verified_id(body, headers)
        text, payload = parse_payload(body)
        raw_type = payload.get("type")
        event_type = raw_type if isinstance(raw_type, str) else ""
        occurred_at = parse_time(payload.get("created_at")) or UNDATED_EVENT
        # The body's own text is stored (PostgreSQL parses it as jsonb): nothing serialized twice.
        event_id = self.writer.store(
            svix_id=svix_id, event_type=event_type, payload=text, occurred_at=occurred_at
        )
        enqueued = event_id is not None and self._enqueue(event_id, svix_id)
        return Receipt(svix_id, event_id, event_type, enqueued)

    def _verified_id(self, body: bytes, headers: Mapping[str, str]) -> str:
        try:
            return verify(body, headers, self.keys, now=self.clock(), tolerance=self.tolerance)
        except WebhookVerificationError:
            raise
        except Exception as exc:
            # Defence in depth: no malformed request may become a 500.
            raise WebhookVerificationError(f"unverifiable request ({type(exc).__name__})") from None

    def _enqueue(self, event_id: uuid.UUID, svix_id: str) -> bool:
        try:
            self.dispatcher.enqueue(str(event_id))
        except Exception as exc:
            # Stored is safe: the sweep enqueues unprocessed events, so this is not worth a 503.
            logger.warning(
                "webhook %s stored, not enqueued (%s); the sweep will process it", svix_id, type(exc).__name__
            )
            return False
        return True


def parse_payload(body: bytes) -> tuple[str, dict[str, Any]]:
    """The text and JSON object of a verified body; raises ``PayloadInvalid`` for anything else.

    The body must be UTF-8 (RFC 8259 §8.1; ``json.loads`` of bytes would also take UTF-16 and -32,
    which PostgreSQL could not be handed as text).
    """
    try:
        text = body.decode("utf-8")
        payload = _DECODER.decode(text)
    except (ValueError, RecursionError):
        # ValueError covers JSONDecodeError and UnicodeDecodeError; RecursionError, absurd nesting.
        raise PayloadInvalid("webhook body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise PayloadInvalid("webhook body is not a JSON object")
    return text, payload


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON, and PostgreSQL's jsonb refuses them.
    raise ValueError(f"{name} is not JSON")


#: Built once: ``json.loads`` with an argument builds a decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
