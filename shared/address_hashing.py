"""Addresses kept only as hashes: an erased person's suppression entry and late webhook bodies, and
every address in the audit log.

The hash is salted per organization (with its id), so one person's hashes differ between tenants,
and needs no key: any process reading the database, SQL included, can compute it. Why no secret key:
docs/architecture.md, "Erasure".
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from shared.addresses import ADDRESS_IN_TEXT

#: How a hashed address starts (where an address would stand): it holds no ``@``, so never an address.
HASH_PREFIX = "sha256:"

#: SQL computing :func:`address_hash` of ``{email}`` in organization ``{org}`` (both SQL expressions).
ADDRESS_HASH_SQL = (
    "'" + HASH_PREFIX + "' || encode(sha256(convert_to("
    "COALESCE(CAST({org} AS text), '') || '/' || lower(btrim({email})), 'UTF8')), 'hex')"
)


def address_hash(organization_id: uuid.UUID | None, address: str) -> str:
    """``sha256:<hex>`` of the trimmed, lower-cased address, salted with the organization's id."""
    salt = str(organization_id) if organization_id is not None else ""
    normalized = address.strip(" ").lower()
    return HASH_PREFIX + hashlib.sha256(f"{salt}/{normalized}".encode()).hexdigest()


def is_hashed(value: str) -> bool:
    """Whether ``value`` is a hash this module made rather than an address."""
    return value.startswith(HASH_PREFIX)


def hash_addresses_in(text: str, organization_id: uuid.UUID | None) -> str:
    """``text`` with every address in it replaced by its :func:`address_hash`."""
    if "@" not in text:
        return text
    return ADDRESS_IN_TEXT.sub(lambda match: address_hash(organization_id, match.group()), text)


def hash_addresses_within(value: Any, organization_id: uuid.UUID | None) -> Any:
    """``value`` (JSON-like) with :func:`hash_addresses_in` applied to every string, keys included."""
    if isinstance(value, str):
        return hash_addresses_in(value, organization_id)
    if isinstance(value, dict):
        return {
            hash_addresses_in(str(key), organization_id): hash_addresses_within(item, organization_id)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [hash_addresses_within(item, organization_id) for item in value]
    return value


def anonymised_event(payload: dict[str, Any], organization_id: uuid.UUID) -> dict[str, Any]:
    """A webhook body about an erased person as it is kept: every address hashed, the subject empty."""
    hashed: dict[str, Any] = hash_addresses_within(payload, organization_id)
    data = hashed.get("data")
    if isinstance(data, dict) and "subject" in data:
        hashed["data"] = {**data, "subject": ""}
    return hashed
