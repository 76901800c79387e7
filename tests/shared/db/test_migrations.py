"""Migrations go up to head and back down to base on PostgreSQL and SQLite, and match the models."""
from __future__ import annotations

import uuid
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from shared.db.migrate import downgrade, upgrade
from shared.db.models import Base
from tests.conftest import create_database, drop_database, require_service

TABLES = set(Base.metadata.tables)


def _roundtrip(url: str) -> None:
    upgrade(url)
    engine = create_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], f"models and migrations disagree: {diff}"
        downgrade(url, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(url)  # and up again after a full downgrade
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_postgres_upgrade_downgrade() -> None:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    name = "mig_" + uuid.uuid4().hex[:10]
    url = create_database(name)
    try:
        _roundtrip(url)
    finally:
        drop_database(name)


def test_sqlite_upgrade_downgrade(tmp_path: Path) -> None:
    _roundtrip(f"sqlite:///{tmp_path / 'm.db'}")
