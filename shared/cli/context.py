"""What CLI commands share: settings, a session factory and the key ring, built on first use."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager

import click
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from shared.crypto import KeyRing
from shared.db import make_engine, make_sessionmaker, transaction
from shared.errors import ConfigError
from shared.settings import Settings, get_settings


class CliContext:
    """Collaborators of one CLI invocation; nothing connects until a command needs it."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self.console = Console()

    @functools.cached_property
    def settings(self) -> Settings:
        return self._settings or get_settings()

    @property
    def database_url(self) -> str | None:
        """``DATABASE_URL``, or None when the settings cannot be read (to describe a failure)."""
        try:
            return self.settings.database_url
        except ConfigError:
            return None

    @functools.cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings, pool_size=1)

    @functools.cached_property
    def session_factory(self) -> sessionmaker[Session]:
        return make_sessionmaker(self.engine)

    @functools.cached_property
    def keyring(self) -> KeyRing:
        return KeyRing.from_settings(self.settings)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One committed transaction."""
        with transaction(self.session_factory) as session:
            yield session

    def close(self) -> None:
        """Release the database pool if one was opened."""
        if "engine" in self.__dict__:
            self.engine.dispose()


pass_cli = click.make_pass_decorator(CliContext, ensure=True)
