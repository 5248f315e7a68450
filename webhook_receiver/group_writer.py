"""Group commit: the events of concurrent requests stored by one INSERT and one commit.

The request threads write themselves: the one that finds no write in progress leads, stores every
waiting row in one ``INSERT … ON CONFLICT DO NOTHING`` and wakes each request with its result. A lone
request writes at once, and every request answers only after its row is committed. Why this shape:
docs/architecture.md, "Webhooks".
"""

from __future__ import annotations

import os
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from shared.errors import PayloadInvalid
from shared.models import UNDATED_EVENT
from webhook_receiver.storage import EventStore, StorageUnavailable

#: Rows per statement; more waiting rows go in the next statement.
MAX_BATCH = 64
#: A request gives up (503) if its row is not written within this many seconds.
WRITE_TIMEOUT_S = 30.0
#: A connection idle this long is closed before the next write opens another (a database restart
#: while idle then costs no failed request).
IDLE_RELEASE_S = 1.0


@dataclass(eq=False)
class PendingRow:
    """An event waiting to be written, and where its request waits for the outcome."""

    svix_id: str
    event_type: str
    payload: str
    occurred_at: datetime = UNDATED_EVENT
    event_id: uuid.UUID | None = None
    error: BaseException | None = None
    #: Set instead of an outcome when this row's request is to write the next batch.
    lead: bool = False
    _done: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._done.acquire()

    def resolve(self, event_id: uuid.UUID | None = None, error: BaseException | None = None) -> None:
        """Give the request its outcome and wake it."""
        self.event_id, self.error = event_id, error
        self._done.release()

    def wake(self) -> None:
        """Wake the request to lead the next batch."""
        self.lead = True
        self._done.release()

    def wait(self, timeout: float) -> bool:
        """Whether the request was woken (resolved or made leader) within ``timeout`` seconds."""
        return self._done.acquire(timeout=timeout)

    def outcome(self) -> uuid.UUID | None:
        """The new row's id, ``None`` for a duplicate; raises the write's error."""
        if self.error is not None:
            raise self.error
        return self.event_id


class GroupWriter:
    """Stores webhook events for many threads at once; :meth:`store` blocks until committed."""

    _store: EventStore
    _lock: threading.Lock
    #: Rows not yet taken by a write, in arrival order.
    _pending: list[PendingRow]
    #: Whether a thread is leading (writing, or woken to write): the others only wait.
    _writing: bool
    _last_write: float

    def __init__(self, engine: Engine, *, max_batch: int = MAX_BATCH) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._reset()
        # A forked child (gunicorn --preload) must not share its parent's connection or lock state.
        reset = weakref.WeakMethod(self._reset)
        os.register_at_fork(after_in_child=lambda: (method := reset()) is not None and method())

    def store(
        self, *, svix_id: str, event_type: str, payload: str, occurred_at: datetime = UNDATED_EVENT
    ) -> uuid.UUID | None:
        """The new row's id, or ``None`` for a ``svix_id`` stored before; ``payload`` is JSON text,
        ``occurred_at`` its ``created_at``.

        Raises :class:`StorageUnavailable` (503) or :class:`PayloadInvalid` (400).
        """
        row = PendingRow(svix_id, event_type, payload, occurred_at)
        with self._lock:
            self._pending.append(row)
            lead = not self._writing
            self._writing = True
        if not lead and not self._wait(row):
            raise StorageUnavailable("database write timed out")
        if lead or row.lead:
            self._lead()
        return row.outcome()

    @property
    def waiting(self) -> int:
        """Rows waiting for a write to start (tests)."""
        return len(self._pending)

    def close(self) -> None:
        """Close the connection now (tests; only while no :meth:`store` is in flight).

        The next write opens another."""
        self._store.close()

    def _reset(self) -> None:
        self._store = EventStore(self._engine)
        self._lock = threading.Lock()
        self._pending = []
        self._writing = False
        self._last_write = 0.0

    def _wait(self, row: PendingRow) -> bool:
        """Whether ``row`` was resolved or made leader in time; if not, it will never lead."""
        if row.wait(WRITE_TIMEOUT_S):
            return True
        with self._lock:
            if row.lead:
                # Made leader as the wait ended (wake() runs under the lock): it must lead.
                return True
            if row in self._pending:
                self._pending.remove(row)
        return False

    def _lead(self) -> None:
        """Write the waiting rows (this thread's first), then hand any newer ones on."""
        try:
            with self._lock:
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            if time.monotonic() - self._last_write > IDLE_RELEASE_S:
                self._store.close()
            write_batch(self._store, batch)
            self._last_write = time.monotonic()
        finally:
            with self._lock:
                if self._pending:
                    self._pending[0].wake()
                else:
                    self._writing = False


def write_batch(store: EventStore, batch: list[PendingRow]) -> None:
    """Store ``batch`` in one statement and resolve every row (never raises)."""
    try:
        stored = store.insert([(row.svix_id, row.event_type, row.payload, row.occurred_at) for row in batch])
    except PayloadInvalid as exc:
        if len(batch) == 1:
            batch[0].resolve(error=exc)
        else:
            # One unstorable payload fails the statement: write the rows one by one to find it.
            for row in batch:
                write_batch(store, [row])
        return
    except Exception as exc:
        for row in batch:
            row.resolve(error=exc)
        return
    for row in batch:
        # The first request carrying an svix_id gets the new id; its copies are duplicates.
        row.resolve(stored.pop(row.svix_id, None))
