"""Alembic environment: target metadata from shared.models, URL from shared.settings.

A caller may pass a URL with ``config.attributes["database_url"]`` (tests and ``pilot db upgrade`` do).
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine, pool, text

from shared.models import Base
from shared.settings import get_settings

config = context.config
target_metadata = Base.metadata


def database_url() -> str:
    url = config.attributes.get("database_url")
    return str(url) if url else get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        # Partitions are made by shared.partitions, not declared in the models: comparison skips them.
        partitions = set(connection.scalars(text("SELECT relname FROM pg_class WHERE relispartition")))
        connection.commit()

        def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
            return not (type_ == "table" and name in partitions)

        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            compare_type=True,
            include_name=include_name,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
