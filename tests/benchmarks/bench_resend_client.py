"""Client-side cost of a Resend call (validation, canonical JSON, httpx, answer parsing), no network.

Run: ``.venv/bin/python tests/benchmarks/bench_resend_client.py`` (``make bench`` runs it).
Prints medians of 3 rounds; figures depend on the machine and its load, nothing is asserted.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import httpx

from shared.resend_client import ResendClient
from shared.resend_schemas import SendEmailRequest, parse_send_request

ROUNDS = 3
EMAIL = {
    "from": "Acme <news@acme.test>",
    "to": ["delivered@resend.dev"],
    "subject": "Spring sale",
    "html": "<p>" + "Hello there. " * 200 + "</p>",
    "headers": {"X-Task-ID": "3f1c2a8e-0000-4000-8000-000000000001"},
    "tags": [
        {"name": "task_id", "value": "3f1c2a8e-0000-4000-8000-000000000001"},
        {"name": "m", "value": "x"},
    ],
}


def rate(label: str, count: int, action: Callable[[], object]) -> None:
    rates = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(count):
            action()
        rates.append(count / (time.perf_counter() - start))
    median = statistics.median(rates)
    print(f"{label:<44} {median:>10,.0f}/s   {1e6 / median:>8.1f} µs each")


def answer(request: httpx.Request) -> httpx.Response:
    """Resend's success answers, without the network."""
    if request.url.path == "/emails/batch":
        count = request.content.count(b'"subject":')
        return httpx.Response(200, json={"data": [{"id": f"e{n}"} for n in range(count)]})
    return httpx.Response(200, json={"id": "e0"}, headers={"ratelimit-limit": "10"})


def main() -> None:
    http = httpx.Client(base_url="https://api.resend.test", transport=httpx.MockTransport(answer))
    client = ResendClient(http=http, api_key="re_bench_key")
    model = SendEmailRequest.model_validate(EMAIL)
    stored = model.to_wire()
    batch = [model] * 100
    rate("parse_send_request (validate a stored body)", 20_000, lambda: parse_send_request(stored))
    rate("send_email(model) via MockTransport", 3_000, lambda: client.send_email(model, idempotency_key="k"))
    rate(
        "send_email(stored mapping) via MockTransport",
        3_000,
        lambda: client.send_email(stored, idempotency_key="k"),
    )
    rate(
        "send_batch(100 models) via MockTransport", 100, lambda: client.send_batch(batch, idempotency_key="k")
    )


if __name__ == "__main__":
    main()
