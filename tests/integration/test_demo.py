"""`pilot demo` (what `make demo` runs) end to end: every email accounted for, nothing left running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import ADMIN_DATABASE_URL, drop_database

ROOT = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT_S = 240


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the demo once for the module (it takes about a minute); return its JSON report and output."""
    import redis

    from tests.conftest import REDIS_URL, TEST_REDIS_DATABASES

    work = tmp_path_factory.mktemp("demo")
    database = f"pilot_demo_test_{uuid.uuid4().hex[:8]}"
    lock = redis.Redis.from_url(REDIS_URL)
    number = next(
        n for n in TEST_REDIS_DATABASES if lock.set(f"pilot-test-redis-db-lock:{n}", "demo", nx=True, ex=900)
    )
    redis_url = f"{REDIS_URL.rsplit('/', 1)[0]}/{number}"
    before = set(psutil.pids())
    try:
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "shared.cli",
                "demo",
                "--database",
                database,
                "--redis-url",
                redis_url,
                "--json-report",
                str(work / "report.json"),
            ],
            cwd=work,
            env={**os.environ, "PILOT_DEMO_ADMIN_DATABASE_URL": ADMIN_DATABASE_URL, "COLUMNS": "120"},
            capture_output=True,
            text=True,
            timeout=DEMO_TIMEOUT_S,
            check=False,
        )
        leftovers = [p for p in set(psutil.pids()) - before if _is_demo_child(p, database)]
    finally:
        drop_database(database)
        redis.Redis.from_url(redis_url).flushdb()
        lock.delete(f"pilot-test-redis-db-lock:{number}")
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    report: dict[str, Any] = json.loads((work / "report.json").read_text())
    return {"report": report, "output": completed.stdout, "leftovers": leftovers}


def _is_demo_child(pid: int, database: str) -> bool:
    """Whether ``pid`` is one of this demo run's processes (they all carry its database URL)."""
    try:
        return psutil.Process(pid).environ().get("DATABASE_URL", "").endswith(f"/{database}")
    except psutil.Error:
        return False


def test_demo_accounts_for_every_email(demo_run: dict[str, Any]) -> None:
    report = demo_run["report"]

    assert report["accounted"] == report["recipients"] == 300


def test_demo_leaves_nothing_in_flight(demo_run: dict[str, Any]) -> None:
    ledger = demo_run["report"]["ledger"]

    assert ledger.get("queued", 0) == ledger.get("sending", 0) == 0


def test_demo_defers_what_the_hourly_budget_cannot_take(demo_run: dict[str, Any]) -> None:
    report = demo_run["report"]

    assert report["ledger"].get("deferred", 0) > 0
    assert report["usage"]["hour"]["limit"] == 250


def test_demo_suppresses_bounced_and_complained_addresses(demo_run: dict[str, Any]) -> None:
    suppressed = demo_run["report"]["suppression_list"]

    assert len(suppressed.get("hard_bounce", [])) == 15
    assert len(suppressed.get("spam_complaint", [])) == 10
    assert all(address.startswith("bounced+") for address in suppressed["hard_bounce"])


def test_demo_follow_up_to_suppressed_addresses_sends_nothing(demo_run: dict[str, Any]) -> None:
    follow_up = demo_run["report"]["follow_up"]

    assert follow_up == {"sent_to": 25, "suppressed": 25}


def test_demo_skips_addresses_suppressed_before_the_campaign(demo_run: dict[str, Any]) -> None:
    assert demo_run["report"]["ledger"].get("suppressed", 0) >= 10


def test_demo_receives_delivery_and_engagement_events(demo_run: dict[str, Any]) -> None:
    delivery = demo_run["report"]["delivery"]

    assert delivery["delivered"] > 100
    assert delivery["opened_unique"] > 0 and delivery["clicked_unique"] > 0
    assert demo_run["report"]["webhook_events"]["waiting"] == 0


def test_demo_prints_the_report(demo_run: dict[str, Any]) -> None:
    output = demo_run["output"]

    assert "Campaign report" in output and "Suppression list" in output and "Connector budget" in output
    assert "every email accounted for" in output


def test_demo_stops_every_process_it_started(demo_run: dict[str, Any]) -> None:
    assert demo_run["leftovers"] == []


def test_demo_shows_the_reputation_guard_pausing_the_organization(demo_run: dict[str, Any]) -> None:
    guard = demo_run["report"]["reputation"]

    assert guard["state"] == "paused"
    assert guard["rates"]["complaints"] == 10 and guard["rates"]["hard_bounces"] == 15
    assert guard["held_rows"] >= 20
    assert "Reputation guard" in demo_run["output"]


def test_demo_newsletter_waits_for_the_guard_and_the_receipt_still_goes(demo_run: dict[str, Any]) -> None:
    after = demo_run["report"]["reputation"]["after_the_guard"]

    assert after["newsletter"] == {"deferred": 20}
    assert after["newsletter_held_by_guard"] == {"deferred": 20}
    assert sum(after["receipt"].values()) == 1 and not after["receipt"].keys() & {
        "deferred",
        "queued",
        "failed",
    }


def test_demo_campaign_has_a_topic_and_readers_unsubscribe_in_one_click(demo_run: dict[str, Any]) -> None:
    found = demo_run["report"]["unsubscribe"]

    assert found["topic"] == "spring-offers"
    assert found["header"]["List-Unsubscribe"].startswith("<http://127.0.0.1:")
    assert found["header"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [post["status"] for post in found["posts"]] == [200] * len(found["posts"])
    assert found["left_topic"] == 5  # the first one posted twice: still one entry
    assert demo_run["report"]["delivery"]["unsubscribed_by_topic"] == {"spring-offers": 5}


def test_demo_shop_receives_the_reputation_pause_on_its_outcomes_queue(demo_run: dict[str, Any]) -> None:
    outcomes = demo_run["report"]["outcomes"]
    paused = {event["scope"] for event in outcomes["reputation"] if event["kind"] == "reputation_paused"}

    assert outcomes["queue"] == "demo-shop.outcomes"
    assert paused == {"organization", "connector", "campaign"}  # one window of rows: they pause together
    assert outcomes["counts"]["reputation_paused"] == 3
    assert "Reputation events on demo-shop.outcomes" in demo_run["output"]
    assert "reputation_paused" in demo_run["output"]
