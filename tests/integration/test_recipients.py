"""Every address of an email is checked and recorded, and each mailbox receives exactly one copy.

``to``, ``cc`` and ``bcc`` fan out alike: one email, one ledger row and one outcome per mailbox.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from shared.sending import pipeline as sending
from tests.send_helpers import add_suppressions, batch_payload, email, rows, send_payload, sends

pytestmark = pytest.mark.integration


def delivered_to(resend) -> Counter[str]:
    """How many copies each address was sent, over every field that addresses an email."""
    copies: Counter[str] = Counter()
    for call in sends(resend):
        body = json.loads(call.content)
        for item in body if isinstance(body, list) else [body]:
            for field in ("to", "cc", "bcc"):
                copies.update(address.lower() for address in item.get(field) or [])
    return copies


@pytest.mark.parametrize("field", ["cc", "bcc"])
def test_a_suppressed_cc_or_bcc_address_is_not_sent_and_recorded_suppressed(
    ctx, resend, factory, ids, field
) -> None:
    organization_id, connector_id = ids
    add_suppressions(factory, organization_id, ["victim@example.test"])

    outcome = sending.send_email(
        ctx, send_payload(connector_id, "ok@example.test", **{field: ["victim@example.test"]}), task_ref="t1"
    )

    assert "victim@example.test" not in delivered_to(resend)
    by_recipient = {row.recipient: row.status for row in rows(factory, connector_id)}
    assert by_recipient == {"ok@example.test": "sent", "victim@example.test": "suppressed"}
    assert outcome.counts() == {"sent": 1, "suppressed": 1}


def test_a_bcc_address_gets_one_copy_however_many_to_recipients(ctx, resend, factory, connector_id) -> None:
    to = [f"r{n:02d}@example.test" for n in range(50)]

    sending.send_email(ctx, send_payload(connector_id, to, bcc=["archive@example.test"]), task_ref="t1")

    copies = delivered_to(resend)
    assert copies["archive@example.test"] == 1
    assert set(copies.values()) == {1} and len(copies) == 51


def test_every_mailbox_of_to_cc_and_bcc_has_its_own_row_and_outcome(
    ctx, resend, factory, connector_id
) -> None:
    outcome = sending.send_email(
        ctx,
        send_payload(connector_id, "a@example.test", cc=["c@example.test"], bcc=["b@example.test"]),
        task_ref="t1",
    )

    assert sorted(r.recipient for r in outcome.results) == [
        "a@example.test",
        "b@example.test",
        "c@example.test",
    ]
    assert [row.status for row in rows(factory, connector_id)] == ["sent"] * 3
    assert len({row.resend_email_id for row in rows(factory, connector_id)}) == 3


def test_a_mailbox_named_in_to_and_bcc_gets_one_copy(ctx, resend, factory, connector_id) -> None:
    payload = send_payload(connector_id, ["a@example.test", "b@example.test"], bcc=["A@Example.TEST"])

    sending.send_email(ctx, payload, task_ref="t1")

    assert delivered_to(resend) == Counter({"a@example.test": 1, "b@example.test": 1})


def test_the_same_email_to_one_mailbox_in_other_case_in_a_batch_is_sent_once(
    ctx, resend, factory, connector_id
) -> None:
    payload = {
        "connector_id": str(connector_id),
        "emails": [email("Case@Example.TEST"), email("case@example.test")],
    }

    sending.send_batch(ctx, payload, task_ref="b1")

    assert delivered_to(resend) == Counter({"case@example.test": 1})
    assert len(rows(factory, connector_id)) == 1


@pytest.mark.parametrize(
    "to",
    [
        "a@example.test, b@example.test",
        "Ann <a@example.test>, b@example.test",
        "a@example.test (comment)",
        "victim@example.test (x) <ok@example.test>",
    ],
)
def test_a_to_entry_naming_more_than_one_mailbox_is_refused_naming_the_field(
    ctx, resend, factory, connector_id, to
) -> None:
    outcome = sending.send_email(ctx, send_payload(connector_id, to), task_ref="t1")

    assert sends(resend) == []
    assert outcome.counts() == {"failed": 1}
    assert "to.0: " in (outcome.results[0].reason or "")


@pytest.mark.parametrize("header", ["Bcc", "From", "To", "cc", "Reply-To", "Sender"])
def test_address_headers_are_refused_naming_the_field(ctx, resend, factory, connector_id, header) -> None:
    payload = send_payload(connector_id, "ok@example.test", headers={header: "x@evil.example"})

    outcome = sending.send_email(ctx, payload, task_ref="t1")

    assert sends(resend) == []
    assert f"headers: header {header}: addresses go in from, to, cc, bcc" in (outcome.results[0].reason or "")


def test_a_suppressed_address_in_a_batch_email_cc_is_left_out(ctx, resend, factory, ids) -> None:
    organization_id, connector_id = ids
    add_suppressions(factory, organization_id, ["victim@example.test"])
    payload = batch_payload(connector_id, ["a@example.test"])
    payload["emails"][0]["cc"] = ["Victim <VICTIM@example.test>"]

    outcome = sending.send_batch(ctx, payload, task_ref="b1")

    assert "victim@example.test" not in delivered_to(resend)
    assert outcome.counts() == {"sent": 1, "suppressed": 1}
