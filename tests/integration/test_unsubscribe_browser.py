"""The unsubscribe endpoints served by the real receiver (gunicorn), and the page in a real headless
Chromium (Debian's ``chromium``, driven by Playwright).

An email is sent through the send path; its ``List-Unsubscribe`` header is opened in the browser,
served by the real receiver (gunicorn, as in production); "Unsubscribe from newsletter" is clicked;
the confirmation shows and the suppression row exists. Screenshots go to the test's tmp path. The
page is checked at a 375 px wide viewport too.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import httpx
import pytest
from sqlalchemy import select

from shared.db import make_engine, make_sessionmaker
from shared.models import Suppression
from shared.rate_limit import RateLimiter
from shared.sending import pipeline
from shared.sending.context import SendContext
from shared.settings import load_settings
from shared.unsubscribe.tokens import generate_unsubscribe_key
from tests.conftest import REDIS_URL
from tests.fake_resend import BASE_URL, FakeResend
from tests.raw_http import chunked, raw_connection, read_response, request_head
from tests.receiver_process import ReceiverHandle, running_receiver
from tests.sandbox_process import free_port
from tests.send_helpers import add_connector, email, sends
from tests.unsubscribe_helpers import make_links
from tests.webhook_requests import SECRET_A

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CHROMIUM = "/usr/bin/chromium"
PHONE_WIDTH = 375


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if shutil.which("chromium") is None:
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def key() -> str:
    return generate_unsubscribe_key()


@pytest.fixture
def receiver(fresh_database_url: str, isolated_redis_url: str, key: str) -> Iterator[ReceiverHandle]:
    port = free_port()
    environment = {
        "PILOT_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PILOT_UNSUBSCRIBE_KEYS": key,
        "REDIS_URL": REDIS_URL,
        "PILOT_REDIS_PREFIX": f"pilot-test-{uuid.uuid4().hex[:8]}:",
    }
    with running_receiver(
        database_url=fresh_database_url,
        broker_url=isolated_redis_url,
        secret=SECRET_A,
        workers=1,
        port=port,
        environment=environment,
    ) as handle:
        yield handle


def send_newsletter(database_url: str, public_url: str, key: str) -> tuple[uuid.UUID, str]:
    """Send one newsletter email through the send path; its organization and List-Unsubscribe URL."""
    engine = make_engine(load_settings(database_url=database_url))
    resend = FakeResend()
    settings = load_settings(
        database_url=database_url, resend_api_key="re_browser_test", resend_base_url=BASE_URL
    )
    ctx = SendContext(
        settings=settings,
        engine=engine,
        limiter=RateLimiter(fakeredis.FakeRedis(), key_prefix="browser:"),
        http=resend.client(),
        unsubscribe=make_links(public_url, key),
    )
    try:
        organization_id, connector_id = add_connector(make_sessionmaker(engine))
        payload = {
            "connector_id": str(connector_id),
            "emails": [email("ada@example.test", topic="newsletter")],
        }
        pipeline.send_batch(ctx, payload, task_ref="browser-test")
        [call] = sends(resend)
        body = json.loads(call.content)  # one email: POST /emails
        header: str = body["headers"]["List-Unsubscribe"]
    finally:
        ctx.close()
    return organization_id, header.strip("<>")


def suppression_rows(database_url: str, organization_id: uuid.UUID) -> list[tuple[str, str, str, str | None]]:
    engine = make_engine(load_settings(database_url=database_url))
    try:
        with make_sessionmaker(engine)() as session:
            query = select(
                Suppression.email, Suppression.topic, Suppression.reason, Suppression.source
            ).where(Suppression.organization_id == organization_id)
            return [tuple(row) for row in session.execute(query)]  # type: ignore[misc]
    finally:
        engine.dispose()


def test_unsubscribing_from_a_topic_in_a_real_browser(
    browser, receiver, fresh_database_url: str, key: str, tmp_path: Path
) -> None:
    organization_id, url = send_newsletter(fresh_database_url, receiver.url, key)
    page = browser.new_page()  # type: ignore[attr-defined]

    page.goto(url)
    page.screenshot(path=tmp_path / "unsubscribe-page.png", full_page=True)
    assert page.title() == "Unsubscribe"
    assert suppression_rows(fresh_database_url, organization_id) == []  # opening it changed nothing

    page.get_by_role("button", name="Unsubscribe from newsletter").click()
    page.wait_for_load_state()
    page.screenshot(path=tmp_path / "confirmation.png", full_page=True)

    assert page.get_by_role("heading", name="You are unsubscribed").is_visible()
    assert page.get_by_role("link", name="Undo: subscribe me again").is_visible()
    assert suppression_rows(fresh_database_url, organization_id) == [
        ("ada@example.test", "newsletter", "unsubscribed", "unsubscribe_page")
    ]
    assert (tmp_path / "unsubscribe-page.png").stat().st_size > 0
    page.close()


def test_the_page_fits_a_375_px_wide_screen_and_works_from_the_keyboard(
    browser, receiver, fresh_database_url: str, key: str, tmp_path: Path
) -> None:
    organization_id, url = send_newsletter(fresh_database_url, receiver.url, key)
    context = browser.new_context(viewport={"width": PHONE_WIDTH, "height": 740})  # type: ignore[attr-defined]
    page = context.new_page()

    page.goto(url)
    page.screenshot(path=tmp_path / "unsubscribe-375.png", full_page=True)

    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE_WIDTH
    for name in ("Unsubscribe from newsletter", "Unsubscribe from everything"):
        box = page.get_by_role("button", name=name).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE_WIDTH
        assert box["height"] >= 44  # a touch target
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Unsubscribe from newsletter"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_load_state()
    page.screenshot(path=tmp_path / "confirmation-375.png", full_page=True)

    assert page.get_by_role("heading", name="You are unsubscribed").is_visible()
    assert suppression_rows(fresh_database_url, organization_id) == [
        ("ada@example.test", "", "unsubscribed", "unsubscribe_page")
    ]
    context.close()


# --- bad input through gunicorn, as a client sends it --------------------------------------------

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_a_chunked_body_over_the_form_limit_is_a_413_through_gunicorn(
    receiver, fresh_database_url: str, key: str
) -> None:
    organization_id, url = send_newsletter(fresh_database_url, receiver.url, key)
    path = url.removeprefix(receiver.url)

    with raw_connection(receiver.url) as sock:
        sock.sendall(request_head(FORM, path=path, chunked=True) + chunked(b"x" * 20_000) + b"0\r\n\r\n")
        status, _ = read_response(sock)

    assert status == 413
    assert suppression_rows(fresh_database_url, organization_id) == []
    assert "Traceback" not in receiver.output()


def test_broken_chunked_framing_is_a_400_through_gunicorn(
    receiver, fresh_database_url: str, key: str
) -> None:
    organization_id, url = send_newsletter(fresh_database_url, receiver.url, key)
    path = url.removeprefix(receiver.url)

    with raw_connection(receiver.url) as sock:
        sock.sendall(
            request_head(FORM, path=path, chunked=True) + b"zz\r\nList-Unsubscribe=One-Click\r\n0\r\n\r\n"
        )
        status, _ = read_response(sock)

    assert status == 400
    assert suppression_rows(fresh_database_url, organization_id) == []
    assert "Traceback" not in receiver.output()


def test_a_one_click_post_through_gunicorn_answers_200_without_redirect(
    receiver, fresh_database_url: str, key: str
) -> None:
    organization_id, url = send_newsletter(fresh_database_url, receiver.url, key)

    answer = httpx.post(url, content=b"List-Unsubscribe=One-Click", headers=FORM, follow_redirects=False)

    assert answer.status_code == 200
    assert suppression_rows(fresh_database_url, organization_id) == [
        ("ada@example.test", "newsletter", "unsubscribed", "one_click")
    ]
