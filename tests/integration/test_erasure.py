"""Erasure (``shared.erasure``): one person's rows in one organization lose the address, which stays
only hashed, on the suppression list; another organization's rows for the same address are untouched.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from shared.address_hashing import ADDRESS_HASH_SQL, address_hash
from shared.db import transaction
from shared.erasure import ErasureReport, erase
from shared.errors import ErasureBlocked, OrganizationNotFound, PayloadInvalid
from shared.models import AuditLog, DeadLetter, EmailMessage, EmailRequest, Suppression
from shared.sending import pipeline as sending
from shared.sending.context import SendContext
from shared.sending.suppression_check import suppressed_reasons
from shared.suppression_admin import add_entry, parse_entry, remove_entry
from shared.unsubscribe.actions import UnsubscribeSource, unsubscribe
from shared.unsubscribe.tokens import UnsubscribeToken
from shared.unsubscribe.topics import Scope
from tests.fake_resend import FakeResend
from tests.query_plans import access_paths, plans_of
from tests.send_helpers import FakeClock, add_connector, rows, send_payload, sends, stored_request
from tests.webhook_factories import resend_payload, store_event
from worker.events.processing import process_event

pytestmark = pytest.mark.integration

Factory = sessionmaker[Session]
#: Column types that can hold an address, as text.
_TEXT_TYPES = ("text", "character varying", "jsonb", "json", "ARRAY", "bytea")


@pytest.fixture
def resend() -> FakeResend:
    """A fake Resend whose email ids no other test of the module's database gets (events find them)."""
    return FakeResend(id_prefix=f"email-{uuid.uuid4().hex[:8]}-")


@pytest.fixture
def person() -> str:
    """An address no other test of the module's database uses, written in mixed case."""
    return f"Ada.{uuid.uuid4().hex[:8]}@Example.test"


def tables_holding(factory: Factory, address: str) -> dict[str, int]:
    """Every table of the database with rows holding ``address`` (any case) in any text, JSON, array
    or byte column: ``{table: rows}``. Reads the catalog, so a table added later is searched too."""
    with factory() as session:
        columns = session.execute(
            text(
                "SELECT table_name, column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name <> 'alembic_version'"
                " AND data_type = ANY(:types) ORDER BY table_name, column_name"
            ),
            {"types": list(_TEXT_TYPES)},
        ).all()
        by_table: dict[str, list[str]] = {}
        for table, column, data_type in columns:
            as_text = (
                f"encode(\"{column}\", 'escape')" if data_type == "bytea" else f'CAST("{column}" AS text)'
            )
            by_table.setdefault(table, []).append(f"strpos(lower({as_text}), :address) > 0")
        found = {}
        for table, conditions in by_table.items():
            count = session.scalar(
                text(f'SELECT count(*) FROM "{table}" WHERE ' + " OR ".join(conditions)),
                {"address": address.lower()},
            )
            if count:
                found[table] = count
        return found


def live_in(ctx: SendContext, factory: Factory, connector: uuid.UUID, address: str, clock: FakeClock) -> None:
    """Everything an organization keeps of a person: sent emails (one written to them, their address
    in its key and content) with their delivery events (one applied bounce, one event still waiting),
    an email scheduled for later, outcome events, an unsubscribe, an operator's suppression entry,
    and a dead letter naming them."""
    with factory() as session:
        organization = session.scalar(
            text("SELECT organization_id FROM connectors WHERE id = :c"), {"c": connector}
        )
    sending.send_email(
        ctx,
        send_payload(
            connector,
            f"Ada Lovelace <{address}>",
            bcc=["grace@example.test"],
            subject="Welcome",
            metadata={"customer": "ada"},
            outcomes_queue="shop.outcomes",
        ),
        task_ref=f"t-{uuid.uuid4().hex[:6]}",
    )
    sending.send_email(
        ctx,
        send_payload(
            connector,
            address.lower(),
            subject=f"Hello {address}",
            html=f"<p>You subscribed as {address}</p>",
            idempotency_key=f"welcome/{address}",
            reply_to=address,
        ),
        task_ref=f"t-{uuid.uuid4().hex[:6]}",
    )
    sending.send_email(
        ctx,
        send_payload(
            connector,
            address.upper(),
            scheduled_at=(clock.now + timedelta(hours=1)).isoformat(),
            topic="news",
        ),
        task_ref=f"t-{uuid.uuid4().hex[:6]}",
    )
    mine = [row for row in rows(factory, connector) if row.recipient.lower() == address.lower()]
    sent = next(row for row in mine if row.resend_email_id)
    with transaction(factory) as session:
        delivered = store_event(session, resend_payload("delivered", sent.resend_email_id, recipient=address))
        bounced = store_event(
            session,
            resend_payload(
                "bounced",
                sent.resend_email_id,
                recipient=address,
                bounce={"type": "Permanent", "subType": "General", "message": f"550 {address}: no such user"},
            ),
        )
        store_event(session, resend_payload("opened", sent.resend_email_id, recipient=address))
    for event in (delivered, bounced):
        process_event(factory, event)
    with transaction(factory) as session:
        token = UnsubscribeToken(organization, sent.id, address.lower(), "news")
        unsubscribe(session, token, Scope.TOPIC, source=UnsubscribeSource.ONE_CLICK, now=datetime.now(UTC))
        add_entry(session, organization, parse_entry(address, "manual", None, topic="offers"), actor="test")
        body = json.dumps({"connector_id": str(connector), "to": address}).encode()
        session.add(
            DeadLetter(
                reason="arguments",
                detail="kwargs: unexpected",
                task_name="pilot.send_email",
                message_id=str(uuid.uuid4()),
                headers={"argsrepr": f"('{address}',)"},
                body=body,
                body_size=len(body),
                body_sha256=uuid.uuid4().hex,
                received_at=datetime.now(UTC),
            )
        )


def erase_in(factory: Factory, organization: uuid.UUID, address: str) -> ErasureReport:
    with transaction(factory) as session:
        return erase(session, organization, address, actor="test", now=datetime.now(UTC))


def test_erase_leaves_no_trace_of_the_address_in_any_table(ctx, factory, clock, person) -> None:
    organization, connector = add_connector(factory)
    live_in(ctx, factory, connector, person, clock)
    before = tables_holding(factory, person)
    assert {
        "email_messages",
        "email_requests",
        "email_metrics",
        "webhook_events",
        "suppression_list",
        "dead_letters",
    } <= set(before)

    erase_in(factory, organization, person)

    assert tables_holding(factory, person) == {}


def test_erase_reports_what_it_changed_in_each_table(ctx, factory, clock, person) -> None:
    organization, connector = add_connector(factory)
    live_in(ctx, factory, connector, person, clock)

    report = erase_in(factory, organization, person)

    assert report == ErasureReport(
        address_hash=address_hash(organization, person),
        messages=3,
        request_bodies=3,
        cancelled=1,
        metrics=3,  # delivered, bounced, unsubscribed
        webhook_events=3,  # the two applied, the one still waiting
        outcome_events=report.outcome_events,
        suppression_entries=3,  # the bounce's, the unsubscribe's, the operator's
        dead_letters=1,
        attachments=0,
    )
    assert report.outcome_events > 0 and report.found


def test_erase_leaves_another_organizations_rows_for_the_same_address(ctx, factory, clock, person) -> None:
    organization, connector = add_connector(factory)
    _, other_connector = add_connector(factory)
    live_in(ctx, factory, connector, person, clock)
    live_in(ctx, factory, other_connector, person, clock)
    with factory() as session:
        other_before = session.execute(
            text(
                "SELECT m.recipient, r.request, m.status FROM email_messages m"
                " LEFT JOIN email_requests r ON r.message_id = m.id WHERE m.connector_id = :c ORDER BY m.id"
            ),
            {"c": other_connector},
        ).all()
    before = tables_holding(factory, person)

    erase_in(factory, organization, person)

    after = tables_holding(factory, person)
    assert set(after) == set(before) - {"audit_logs"}
    assert all(0 < after[table] <= before[table] for table in after)
    with factory() as session:
        other_after = session.execute(
            text(
                "SELECT m.recipient, r.request, m.status FROM email_messages m"
                " LEFT JOIN email_requests r ON r.message_id = m.id WHERE m.connector_id = :c ORDER BY m.id"
            ),
            {"c": other_connector},
        ).all()
    assert other_after == other_before


@pytest.mark.parametrize("others", [[], ["grace@example.test"]], ids=["alone", "with another recipient"])
def test_an_erased_address_is_suppressed_at_the_next_send_without_a_request(
    ctx, resend: FakeResend, factory, person, others
) -> None:
    organization, connector = add_connector(factory)
    sending.send_email(ctx, send_payload(connector, person), task_ref="before")
    erase_in(factory, organization, person)
    requests_before = len(sends(resend))

    outcome = sending.send_email(ctx, send_payload(connector, [person.upper(), *others]), task_ref="after")

    statuses = {result.recipient.lower(): result.status for result in outcome.results}
    assert statuses[person.lower()] == "suppressed"
    sent_to = [item["to"] for call in sends(resend)[requests_before:] for item in _items(call)]
    assert all(person.lower() not in json.dumps(to).lower() for to in sent_to)
    assert len(sent_to) == len(others)


def test_erase_keeps_one_hashed_entry_that_stops_every_email(ctx, factory, clock, person) -> None:
    organization, connector = add_connector(factory)
    live_in(ctx, factory, connector, person, clock)

    erase_in(factory, organization, person)

    with factory() as session:
        entries = session.scalars(
            select(Suppression).where(Suppression.organization_id == organization)
        ).all()
    kept = [(entry.email, entry.topic, entry.reason, entry.expires_at) for entry in entries]
    assert (address_hash(organization, person), "", "erased", None) in kept


def test_erase_cancels_the_persons_emails_that_have_not_left(ctx, factory, clock, person) -> None:
    organization, connector = add_connector(factory)
    live_in(ctx, factory, connector, person, clock)

    erase_in(factory, organization, person)

    erased = [row for row in rows(factory, connector) if row.recipient == address_hash(organization, person)]
    assert sorted(row.status for row in erased) == ["bounced", "cancelled", "sent"]
    assert all(row.subject == "" for row in erased)
    with factory() as session:
        bodies = session.scalars(
            select(EmailRequest).where(EmailRequest.message_id.in_([r.id for r in erased]))
        )
        assert bodies.all() == []


def test_erase_keeps_the_other_recipients_emails(ctx, factory, clock, person) -> None:
    organization, connector = add_connector(factory)
    live_in(ctx, factory, connector, person, clock)

    erase_in(factory, organization, person)

    [grace] = [row for row in rows(factory, connector) if row.recipient == "grace@example.test"]
    with factory() as session:
        assert grace.status == "sent" and stored_request(session, grace.id)["to"] == ["grace@example.test"]


def test_erase_is_audited_by_hash_without_the_address(ctx, factory, clock, person) -> None:
    organization, connector = add_connector(factory)
    live_in(ctx, factory, connector, person, clock)

    erase_in(factory, organization, person)

    with factory() as session:
        entry = session.scalars(
            select(AuditLog).where(
                AuditLog.organization_id == organization, AuditLog.action == "address.erase"
            )
        ).one()
    assert entry.target == f"address:{address_hash(organization, person)}"
    assert entry.details["messages"] == 3
    assert person.lower() not in json.dumps([entry.target, entry.reason, entry.details]).lower()


def test_erasing_an_address_the_organization_never_held_answers_so_and_keeps_it_suppressed(
    factory, person
) -> None:
    organization, _ = add_connector(factory)

    report = erase_in(factory, organization, person)

    assert not report.found
    with factory() as session:
        emails = session.scalars(
            select(Suppression.email).where(Suppression.organization_id == organization)
        ).all()
    assert emails == [address_hash(organization, person)]


def test_erase_waits_for_emails_whose_outcome_is_unknown_and_changes_nothing(factory, person) -> None:
    organization, connector = add_connector(factory)
    with transaction(factory) as session:
        session.add(
            EmailMessage(
                organization_id=organization,
                connector_id=connector,
                idempotency_key=f"test/{uuid.uuid4()}",
                recipient=person,
                status="sending",
            )
        )

    with pytest.raises(ErasureBlocked, match="1 email") as raised:
        erase_in(factory, organization, person)

    assert raised.value.in_flight == 1
    assert [row.recipient for row in rows(factory, connector)] == [person]


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("", "must not be empty"),
        ("not-an-address", "email: "),
        ("a@x.test, b@x.test", "more than one address"),
    ],
)
def test_erase_names_a_malformed_address(factory, address, problem) -> None:
    organization, _ = add_connector(factory)

    with pytest.raises(PayloadInvalid, match=problem):
        erase_in(factory, organization, address)


def test_erase_refuses_an_unknown_organization(factory, person) -> None:
    with pytest.raises(OrganizationNotFound):
        erase_in(factory, uuid.uuid4(), person)


def test_erase_removes_attachment_bytes_only_the_persons_emails_named(ctx, factory, person) -> None:
    organization, connector = add_connector(factory)
    invoice = {
        "filename": "invoice.txt",
        "content": base64.b64encode(f"Invoice for {person}".encode()).decode(),
    }
    sending.send_email(ctx, send_payload(connector, person, attachments=[invoice]), task_ref="invoice")
    with transaction(factory) as session:
        session.execute(text("UPDATE email_attachments SET last_used_at = now() - interval '2 hours'"))

    report = erase_in(factory, organization, person)

    assert report.attachments == 1
    assert "email_attachments" not in tables_holding(factory, person)


def test_a_late_webhook_event_for_an_erased_person_is_kept_without_the_address(
    ctx, factory, clock, person
) -> None:
    organization, connector = add_connector(factory)
    live_in(ctx, factory, connector, person, clock)
    erase_in(factory, organization, person)
    [sent] = [
        row
        for row in rows(factory, connector)
        if row.status == "sent" and row.recipient.startswith("sha256:")
    ]

    with transaction(factory) as session:
        late = store_event(
            session,
            resend_payload(
                "complained",
                sent.resend_email_id,
                recipient=person,
                subject=f"Hello {person}",
                tags={"x": "y"},
            ),
        )
    outcome = process_event(factory, late)

    assert (outcome.kind, outcome.suppression) == ("applied", None)
    assert tables_holding(factory, person) == {}
    with factory() as session:
        emails = session.scalars(
            select(Suppression.email).where(Suppression.organization_id == organization)
        ).all()
    assert emails == [address_hash(organization, person)]


def test_an_unsubscribe_link_of_an_erased_persons_email_writes_nothing(ctx, factory, clock, person) -> None:
    organization, connector = add_connector(factory)
    live_in(ctx, factory, connector, person, clock)
    [sent] = [
        row for row in rows(factory, connector) if row.status == "sent" and row.recipient == person.lower()
    ]
    erase_in(factory, organization, person)

    with transaction(factory) as session:
        token = UnsubscribeToken(organization, sent.id, person.lower(), None)
        answer = unsubscribe(
            session, token, Scope.EVERYTHING, source=UnsubscribeSource.ONE_CLICK, now=clock.now
        )

    assert not answer.new
    assert tables_holding(factory, person) == {}


def test_removing_an_erased_persons_entry_by_address_lets_them_be_mailed_again(
    ctx, resend: FakeResend, factory, person
) -> None:
    organization, connector = add_connector(factory)
    erase_in(factory, organization, person)

    with transaction(factory) as session:
        remove_entry(session, organization, person, actor="test")
    outcome = sending.send_email(ctx, send_payload(connector, person), task_ref="consented")

    assert [result.status for result in outcome.results] == ["sent"]


def test_the_address_hash_sql_computes_is_the_one_python_computes(factory, person) -> None:
    organization = uuid.uuid4()
    with factory() as session:
        in_sql = session.scalar(
            text("SELECT " + ADDRESS_HASH_SQL.format(org=":org", email=":email")),
            {"org": organization, "email": f"  {person}"},
        )

    assert in_sql == address_hash(organization, person)


def test_the_suppression_check_of_a_batch_reads_only_the_lists_unique_index(factory, person) -> None:
    organization, _ = add_connector(factory)
    erase_in(factory, organization, person)
    with transaction(factory) as session:
        session.execute(
            text(
                "INSERT INTO suppression_list (organization_id, email, reason)"
                " SELECT :org, 'sha256:' || md5(n::text) || md5(n::text), 'erased'"
                " FROM generate_series(1, 20000) AS n"
            ),
            {"org": organization},
        )
        session.execute(text("ANALYZE suppression_list"))

    with factory() as session:
        found: dict[tuple[str, str | None], str] = {}
        batch = [(person, None), *((f"reader{n}@example.test", None) for n in range(999))]
        [plan] = plans_of(
            session,
            lambda: found.update(suppressed_reasons(session, organization, batch)),
            matching="suppression_list",
        )

    assert list(found) == [(person.lower(), None)]
    assert found[(person.lower(), None)].startswith("suppressed: erased since")
    assert access_paths(plan) == {("suppression_list", "uq_suppression_list_organization_id_email_topic")}


def _items(call) -> list[dict]:
    body = json.loads(call.content)
    return body if isinstance(body, list) else [body]
