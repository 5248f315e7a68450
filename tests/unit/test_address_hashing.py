"""Hashed addresses: one hash per address and organization, whatever the case; the audit log keeps
no address, only its hash."""

from __future__ import annotations

import uuid
from typing import Any

from shared import audit
from shared.address_hashing import address_hash, hash_addresses_in, is_hashed

ORG = uuid.UUID("6f1c1b8e-3d2a-4c55-9d3e-0a4f2b7c9e11")
OTHER_ORG = uuid.UUID("0d9a8f3c-1e2b-4a5d-8c7f-6b5a4c3d2e1f")


class Collecting:
    """The one thing :func:`audit.record` asks of a session: ``add``."""

    def __init__(self) -> None:
        self.added: list[Any] = []

    def add(self, entry: Any) -> None:
        self.added.append(entry)


def test_address_hash_ignores_case_and_surrounding_spaces() -> None:
    assert address_hash(ORG, " Ada@Example.TEST ") == address_hash(ORG, "ada@example.test")


def test_address_hash_differs_between_organizations() -> None:
    assert address_hash(ORG, "ada@example.test") != address_hash(OTHER_ORG, "ada@example.test")


def test_address_hash_is_marked_and_never_an_address() -> None:
    hashed = address_hash(ORG, "ada@example.test")

    assert is_hashed(hashed) and "@" not in hashed and len(hashed) == len("sha256:") + 64


def test_hash_addresses_in_replaces_each_address_of_free_text() -> None:
    text = "550 <Ada@Example.test>: no such user (cc grace@example.test)"

    assert hash_addresses_in(text, ORG) == (
        f"550 <{address_hash(ORG, 'ada@example.test')}>: no such user"
        f" (cc {address_hash(ORG, 'grace@example.test')})"
    )


def test_audit_record_stores_addresses_of_target_reason_and_details_hashed() -> None:
    session = Collecting()

    audit.record(
        session,  # type: ignore[arg-type]
        action="suppression.add",
        actor="ops",
        organization_id=ORG,
        target="suppression:ada@example.test",
        reason="asked by ada@example.test",
        details={"to": ["ada@example.test"], "ada@example.test": 1, "topic": "news"},
    )

    [entry] = session.added
    hashed = address_hash(ORG, "ada@example.test")
    assert entry.target == f"suppression:{hashed}"
    assert entry.reason == f"asked by {hashed}"
    assert entry.details == {"to": [hashed], hashed: 1, "topic": "news"}


def test_audit_record_hashes_addresses_of_a_row_without_an_organization() -> None:
    session = Collecting()

    audit.record(session, action="send.payload_invalid", actor="worker", reason="to: ada@example.test")  # type: ignore[arg-type]

    assert session.added[0].reason == f"to: {address_hash(None, 'ada@example.test')}"
