"""A crowd of slow HTTP clients (slowloris): sockets that send a request a little at a time, forever.

    with slow_crowd(receiver.url, sockets=200) as crowd:
        ...  # meanwhile, real deliveries
    crowd.cut_off  # how many the server hung up on

Half the sockets trickle their header block (one more header line per ``interval``, never the blank
line that ends it); the other half send a complete POST head announcing a JSON body and then trickle
that body (one byte per ``interval``). A socket the server closes, or answers, is counted as cut off
and replaced at once by a new one, as an attacker would: the crowd keeps ``sockets`` open. One
thread drives every socket (non-blocking sends, a selector to see the server's hang-ups).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from tests.raw_http import address_of, request_head
from tests.webhook_requests import PATH

#: The body length the body tricklers announce (within the receiver's cap, so it waits for it).
BODY_LENGTH = 100_000


@dataclass(eq=False)
class SlowSocket:
    """One trickling connection: ``kind`` is ``"headers"`` or ``"body"``."""

    sock: socket.socket
    kind: str
    opened: float
    sent: int = 0


@dataclass
class SlowCrowd:
    """What the crowd saw: sockets opened, sockets the server hung up on, and how long those lived."""

    opened: int = 0
    cut_off: int = 0
    lifetimes: list[float] = field(default_factory=list)
    #: Replacement connections the server did not accept in time (its backlog was full).
    refused: int = 0

    def summary(self) -> str:
        """One line of figures."""
        if not self.lifetimes:
            return f"{self.opened} slow sockets opened, none cut off"
        ordered = sorted(self.lifetimes)
        return (
            f"{self.opened} slow sockets opened, {self.cut_off} cut off by the server after "
            f"{ordered[0]:.1f}-{ordered[-1]:.1f} s (median {ordered[len(ordered) // 2]:.1f} s)"
            + (f", {self.refused} connections not accepted" if self.refused else "")
        )


def _first_bytes(kind: str) -> bytes:
    if kind == "headers":
        return f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
    return request_head({"Content-Type": "application/json"}, length=BODY_LENGTH)


def _next_bytes(slow: SlowSocket) -> bytes:
    slow.sent += 1
    return f"X-Slow-{slow.sent}: {slow.sent}\r\n".encode() if slow.kind == "headers" else b" "


class _Driver:
    def __init__(self, url: str, sockets: int, interval: float) -> None:
        self.address = address_of(url)
        self.interval = interval
        self.crowd = SlowCrowd()
        self.selector = selectors.DefaultSelector()
        self.stopping = threading.Event()
        for index in range(sockets):
            self._open("headers" if index % 2 == 0 else "body")

    def _open(self, kind: str) -> None:
        try:
            sock = socket.create_connection(self.address, timeout=5)
        except OSError:
            self.crowd.refused += 1
            return
        sock.setblocking(False)
        slow = SlowSocket(sock, kind, time.monotonic())
        self.crowd.opened += 1
        self.selector.register(sock, selectors.EVENT_READ, slow)
        self._send(slow, _first_bytes(kind))

    def _send(self, slow: SlowSocket, data: bytes) -> None:
        try:
            slow.sock.send(data)
        except (BlockingIOError, InterruptedError):
            pass  # the server reads no more of it for now: that is the point
        except OSError:
            self._cut_off(slow)

    def _cut_off(self, slow: SlowSocket) -> None:
        """The server closed or answered ``slow``: count it and open a replacement."""
        if slow.sock.fileno() < 0:
            return
        self.crowd.cut_off += 1
        self.crowd.lifetimes.append(time.monotonic() - slow.opened)
        self.selector.unregister(slow.sock)
        slow.sock.close()
        if not self.stopping.is_set():
            self._open(slow.kind)

    def run(self) -> None:
        while not self.stopping.is_set():
            deadline = time.monotonic() + self.interval
            while (left := deadline - time.monotonic()) > 0 and not self.stopping.is_set():
                for key, _ in self.selector.select(timeout=min(left, 0.2)):
                    # Readable: the server answered (a 4xx) or hung up; either way it is done with us.
                    self._cut_off(key.data)
            for key in list(self.selector.get_map().values()):
                self._send(key.data, _next_bytes(key.data))

    def close(self) -> None:
        for key in list(self.selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self.selector.close()


@contextlib.contextmanager
def slow_crowd(url: str, *, sockets: int, interval: float = 1.0) -> Iterator[SlowCrowd]:
    """Keep ``sockets`` slow clients connected to the server of ``url`` until the block ends."""
    driver = _Driver(url, sockets, interval)
    thread = threading.Thread(target=driver.run, name="slow-crowd", daemon=True)
    thread.start()
    try:
        yield driver.crowd
    finally:
        driver.stopping.set()
        thread.join()
        driver.close()
