"""Creating and dropping databases on a PostgreSQL server, migrated to head on request."""
from __future__ import annotations

from sqlalchemy import create_engine, text


def create_database(admin_url: str, name: str, *, migrate: bool = False) -> str:
    """CREATE DATABASE `name` on the server of `admin_url`; its URL (migrated to head if asked)."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    if migrate:
        from shared.db.migrate import upgrade

        upgrade(url)
    return url


def drop_database(admin_url: str, name: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()
