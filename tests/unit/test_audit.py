"""Audit details never carry a secret, whatever the caller passes."""

from __future__ import annotations

import pytest

from shared import audit


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "API_KEY",
        "webhook_secret",
        "token",
        "password",
        "credentials",
        "ciphertext",
        "Authorization",
    ],
)
def test_scrub_redacts_secret_looking_names(name: str) -> None:
    assert audit.scrub({name: "re_value"}) == {name: audit.REDACTED}


def test_scrub_keeps_ordinary_fields_and_key_versions() -> None:
    details = {"name": "main", "key_version": "abc", "key_set": True, "rate_limit_per_hour": 5}

    assert audit.scrub(details) == details


def test_scrub_recurses_into_nested_details() -> None:
    assert audit.scrub({"after": {"secret": "x", "name": "y"}}) == {
        "after": {"secret": audit.REDACTED, "name": "y"}
    }


def test_record_refuses_unknown_actions() -> None:
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.record(None, action="connector.teleport", actor="x")  # type: ignore[arg-type]
