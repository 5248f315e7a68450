"""webhook_receiver.body: the whole body or a 413, never a silently truncated body."""

from __future__ import annotations

import io

import pytest
from gunicorn.http.errors import InvalidChunkSize
from werkzeug.exceptions import BadRequest, RequestEntityTooLarge

from webhook_receiver.body import read_body


@pytest.mark.parametrize("size", [0, 1, 99, 100])
def test_read_body_returns_bodies_up_to_the_limit(size: int) -> None:
    assert read_body(io.BytesIO(b"x" * size), 100, chunk_bytes=7) == b"x" * size


@pytest.mark.parametrize("size", [101, 1000])
def test_read_body_refuses_bodies_over_the_limit(size: int) -> None:
    with pytest.raises(RequestEntityTooLarge):
        read_body(io.BytesIO(b"x" * size), 100, chunk_bytes=7)


class BrokenChunks:
    """A WSGI input whose chunked framing the server's parser refuses mid-body."""

    def read(self, size: int = -1, /) -> bytes:
        raise InvalidChunkSize(b"zz")


def test_read_body_turns_the_servers_framing_error_into_a_400() -> None:
    with pytest.raises(BadRequest, match="malformed chunked body"):
        read_body(BrokenChunks(), 100)
