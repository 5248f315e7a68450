"""webhook_receiver.body: the whole body or a 413, never a silently truncated body."""

from __future__ import annotations

import io

import pytest
from werkzeug.exceptions import RequestEntityTooLarge

from webhook_receiver.body import read_body


@pytest.mark.parametrize("size", [0, 1, 99, 100])
def test_read_body_returns_bodies_up_to_the_limit(size: int) -> None:
    assert read_body(io.BytesIO(b"x" * size), 100, chunk_bytes=7) == b"x" * size


@pytest.mark.parametrize("size", [101, 1000])
def test_read_body_refuses_bodies_over_the_limit(size: int) -> None:
    with pytest.raises(RequestEntityTooLarge):
        read_body(io.BytesIO(b"x" * size), 100, chunk_bytes=7)
