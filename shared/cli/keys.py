"""``pilot keys``: encryption keys for connector credentials."""

from __future__ import annotations

import click

from shared.crypto import KeyRing, generate_key
from shared.db import make_engine, make_sessionmaker
from shared.key_rotation import rotate_keys
from shared.settings import get_settings
from shared.unsubscribe.tokens import generate_unsubscribe_key


@click.group()
def keys() -> None:
    """Encryption keys for stored connector API keys."""


@keys.command()
@click.option("--unsubscribe", is_flag=True, help="A key for PILOT_UNSUBSCRIBE_KEYS instead.")
def generate(unsubscribe: bool) -> None:
    """Print a new key for PILOT_ENCRYPTION_KEYS, or PILOT_UNSUBSCRIBE_KEYS with --unsubscribe
    (put it first to seal with it)."""
    click.echo(generate_unsubscribe_key() if unsubscribe else generate_key())


@keys.command()
@click.option("--actor", default="cli", show_default=True, help="Who rotates, for the audit log.")
def rotate(actor: str) -> None:
    """Re-encrypt every connector key under the first PILOT_ENCRYPTION_KEYS key (safe to rerun)."""
    settings = get_settings()
    keyring = KeyRing.from_settings(settings)
    engine = make_engine(settings)
    try:
        report = rotate_keys(make_sessionmaker(engine), keyring, actor=actor)
    finally:
        engine.dispose()
    click.echo(f"Rotated {report.rotated} connector key(s); {report.already_current} already current.")
