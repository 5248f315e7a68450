"""Group commit: the events of concurrent requests stored by one INSERT and one commit.

Under load the receiver is bound by PostgreSQL commits, not by Python: each request waiting for its
own round trip and WAL flush. A writer thread per process takes every row waiting when it is free,
stores them in one multi-row ``INSERT … ON CONFLICT DO NOTHING`` (autocommit: committed when the
statement returns) and wakes each request with its result. A request still answers only after its
row is committed; a lone request is written at once (no linger).
"""

from __future__ import annotations

import os
import threading
import uuid
from concurrent.futures import Future
from dataclasses import dataclass

from sqlalchemy import Engine

from shared.errors import PayloadInvalid
from webhook_receiver.storage import EventStore, StorageUnavailable

#: Rows per statement; more waiting rows go in the next statement.
MAX_BATCH = 64
#: A request gives up (503) if its row is not written within this many seconds.
WRITE_TIMEOUT_S = 30.0
#: The writer keeps its connection while busy and closes it after this many seconds idle.
IDLE_RELEASE_S = 1.0


@dataclass(frozen=True)
class PendingRow:
    """An event waiting to be written, and where its request waits for the outcome."""

    svix_id: str
    event_type: str
    payload: str
    result: Future[uuid.UUID | None]


class GroupWriter:
    """Stores webhook events for many threads at once; :meth:`store` blocks until committed."""

    def __init__(self, engine: Engine, *, max_batch: int = MAX_BATCH) -> None:
        self._store = EventStore(engine)
        self._max_batch = max_batch
        self._pending: list[PendingRow] = []
        self._cond = threading.Condition()
        self._owner_pid: int | None = None

    def store(self, *, svix_id: str, event_type: str, payload: str) -> uuid.UUID | None:
        """The new row's id, or ``None`` for a ``svix_id`` stored before; ``payload`` is JSON text.

        Raises :class:`StorageUnavailable` (503) or :class:`PayloadInvalid` (400).
        """
        row = PendingRow(svix_id, event_type, payload, Future())
        with self._cond:
            self._start_in_this_process()
            self._pending.append(row)
            self._cond.notify()
        try:
            return row.result.result(timeout=WRITE_TIMEOUT_S)
        except TimeoutError:
            raise StorageUnavailable("database write timed out") from None

    def _start_in_this_process(self) -> None:
        # gunicorn forks workers: each process needs a writer thread of its own.
        if self._owner_pid == os.getpid():
            return
        self._owner_pid = os.getpid()
        self._pending = []
        # A connection inherited through fork is the parent's: never use it, open our own.
        self._store = EventStore(self._store.engine)
        threading.Thread(target=self._run, name="webhook-writer", daemon=True).start()

    def close(self) -> None:
        """Close the writer's connection now (tests; only while no :meth:`store` is in flight).

        The next write opens another."""
        with self._cond:
            self._store.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending and not self._cond.wait(IDLE_RELEASE_S):
                    self._store.close()
                while not self._pending:
                    self._cond.wait()
                batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
            write_batch(self._store, batch)


def write_batch(store: EventStore, batch: list[PendingRow]) -> None:
    """Store ``batch`` in one statement and resolve every row's future (never raises)."""
    try:
        stored = store.insert([(row.svix_id, row.event_type, row.payload) for row in batch])
    except PayloadInvalid as exc:
        if len(batch) == 1:
            batch[0].result.set_exception(exc)
        else:
            # One unstorable payload fails the statement: write the rows one by one to find it.
            for row in batch:
                write_batch(store, [row])
        return
    except Exception as exc:
        for row in batch:
            row.result.set_exception(exc)
        return
    for row in batch:
        # The first request carrying an svix_id gets the new id; its copies are duplicates.
        row.result.set_result(stored.pop(row.svix_id, None))
