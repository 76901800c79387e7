"""Alembic environment: the URL comes from settings (or the caller's config), metadata from the models."""
from __future__ import annotations

from alembic import context

from shared.db.engine import build_engine
from shared.db.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from shared.settings import get_settings

    return get_settings().database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = build_engine(_url(), pooled=False)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            # Several pods may run `provisioner migrate` at once (init containers): one at a time.
            connection.exec_driver_sql("SELECT pg_advisory_lock(7365021)")
            connection.commit()
        # Batch mode lets ALTERs work on SQLite (the embedded default) too.
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                          compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
