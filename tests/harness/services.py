"""PostgreSQL and Redis for a bench or a drill: the ones named on the command line, or private ones."""
from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import redis

from .postgres_cluster import PostgresCluster
from .redis_server import RedisServer


@dataclass
class Services:
    pg_admin_url: str  # a superuser URL on the server; runs create and drop their own databases there
    redis_server_url: str  # redis://host:port; runs pick their own db numbers on it
    postgres: PostgresCluster | None = None  # set when private (started here)
    redis: RedisServer | None = None

    def redis_url(self, db: int) -> str:
        parts = urlsplit(self.redis_server_url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, ""))

    def flush_redis(self, *dbs: int) -> None:
        for db in dbs:
            with redis.Redis.from_url(self.redis_url(db)) as client:
                client.flushdb()

    def postgres_pids(self) -> list[int]:
        """The private cluster's processes (empty for a server named on the command line)."""
        return self.postgres.pids() if self.postgres else []


def add_service_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pg-url", help="a PostgreSQL superuser URL to use (e.g. postgresql+psycopg://postgres@"
                        "127.0.0.1:5432/postgres) instead of starting a private cluster")
    parser.add_argument("--redis-url", help="a Redis server to use (e.g. redis://127.0.0.1:6379; the run flushes "
                        "the dbs it uses) instead of starting a private redis-server")


@contextmanager
def services(pg_url: str | None = None, redis_url: str | None = None, *, want_postgres: bool = True,
             want_redis: bool = True) -> Iterator[Services]:
    """The servers named, else private ones (initdb in a temp dir, redis-server on a free port), removed after.

    A private cluster here is durable (PostgreSQL's defaults, fsync on): figures are measured as production
    would run, not on the tests' fast settings."""
    with ExitStack() as stack:
        cluster = stack.enter_context(PostgresCluster(durable=True)) if want_postgres and not pg_url else None
        server = stack.enter_context(RedisServer()) if want_redis and not redis_url else None
        yield Services(pg_admin_url=pg_url or (cluster.admin_url if cluster else ""),
                       redis_server_url=redis_url or (server.url(0) if server else ""),
                       postgres=cluster, redis=server)


def from_args(args: argparse.Namespace, *, want_postgres: bool = True, want_redis: bool = True,
              ) -> AbstractContextManager[Services]:
    """`services()` for the bench's `--pg-url` / `--redis-url` (see add_service_options)."""
    return services(args.pg_url, args.redis_url, want_postgres=want_postgres, want_redis=want_redis)
