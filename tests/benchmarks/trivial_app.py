"""The baseline of bench_webhooks.py: a Flask endpoint that only answers 200."""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.post("/api/webhooks/resend")
def ok() -> tuple[str, int]:
    """Answer 200 without reading anything."""
    return "", 200
