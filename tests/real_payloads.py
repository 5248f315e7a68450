"""The real Resend webhook bodies in ``tests/fixtures/resend_webhooks`` (sources in its README)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

DIRECTORY = Path(__file__).parent / "fixtures" / "resend_webhooks"


def payload_names() -> list[str]:
    """Every body's file name, sorted."""
    return sorted(path.name for path in DIRECTORY.glob("*.json"))


@cache
def _text(name: str) -> str:
    return (DIRECTORY / name).read_text(encoding="utf-8")


def real_payload(name: str) -> dict[str, Any]:
    """The body in file ``name`` (a fresh copy each call)."""
    payload: dict[str, Any] = json.loads(_text(name))
    return payload
