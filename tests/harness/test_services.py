"""The harness's private services: a redis-server and a PostgreSQL cluster of our own, gone without a trace."""
from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest
import redis

from tests.conftest import require_binary
from tests.harness import binaries
from tests.harness.postgres_cluster import PostgresCluster
from tests.harness.redis_server import RedisServer
from tests.harness.services import services


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_the_sessions_redis_is_its_own(redis_server: RedisServer) -> None:
    assert redis_server.port != 6379 and redis_server.running
    assert redis_server.process is not None and redis_server.process.pid > 0
    with redis_server.client(0) as c:
        assert c.config_get("save") == {"save": ""} and c.config_get("appendonly") == {"appendonly": "no"}


def test_a_redis_server_stops_restarts_empty_on_its_port_and_leaves_nothing() -> None:
    server = require_binary(RedisServer)
    with server:
        port, pid, home = server.port, server.process.pid if server.process else 0, server.dir
        with server.client(3) as c:
            c.set("queued", "message")
        server.stop()
        assert not server.up() and not _alive(pid)
        server.start()
        assert server.port == port and server.up()
        with server.client(3) as c:
            assert c.get("queued") is None  # nothing on disk: a restart loses everything
        server.kill()
        assert not server.up()
        server.start()
        pid = server.process.pid if server.process else 0
    assert not _alive(pid) and not home.exists()
    with pytest.raises(redis.ConnectionError), redis.Redis(port=port, socket_connect_timeout=1) as gone:
        gone.ping()


def test_a_postgres_cluster_runs_fast_restarts_and_leaves_nothing() -> None:
    cluster = require_binary(PostgresCluster)
    with cluster:
        home, port = cluster.dir, cluster.port
        url = cluster.create_database("harness_check")
        conninfo = f"host=127.0.0.1 port={port} user=postgres dbname=harness_check"
        with psycopg.connect(conninfo) as conn:
            assert conn.execute("SHOW fsync").fetchone() == ("off",)
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)
            assert conn.execute("SHOW full_page_writes").fetchone() == ("off",)
            conn.execute("CREATE TABLE kept (n int)")
            conn.execute("INSERT INTO kept VALUES (1)")
            conn.commit()
            held = psycopg.connect(conninfo)
            cluster.stop("fast")  # every connection cut
            with pytest.raises(psycopg.OperationalError):
                held.execute("SELECT 1")
            held.close()
        cluster.start()
        assert cluster.port == port
        with psycopg.connect(conninfo) as conn:
            assert conn.execute("SELECT n FROM kept").fetchall() == [(1,)]
        cluster.stop("immediate")  # a crash: recovery at the next start
        cluster.start()
        pids = cluster.pids()
        assert len(pids) > 1  # the postmaster and its helpers
        with psycopg.connect(conninfo) as conn:
            assert conn.execute("SELECT n FROM kept").fetchall() == [(1,)]
        cluster.drop_database("harness_check")
        assert url.endswith(f":{port}/harness_check")
    assert not any(_alive(pid) for pid in pids) and not home.exists()


def test_benches_get_durable_private_services_or_the_ones_named() -> None:
    require_binary(binaries.postgres_bindir)
    require_binary(binaries.redis_server)
    with services() as svc:
        assert svc.postgres is not None and svc.redis is not None
        home = (svc.postgres.dir, svc.redis.dir)
        with psycopg.connect(svc.pg_admin_url.replace("postgresql+psycopg", "postgresql")) as conn:
            assert conn.execute("SHOW fsync").fetchone() == ("on",)  # figures as production runs
        assert svc.redis_url(7).endswith(f":{svc.redis.port}/7")
    assert not any(p.exists() for p in home)
    with services("postgresql+psycopg://postgres@db.example:5432/postgres", "redis://cache.example:6380/3") as named:
        assert (named.postgres, named.redis) == (None, None)
        assert named.redis_url(7) == "redis://cache.example:6380/7"
        assert named.pg_admin_url == "postgresql+psycopg://postgres@db.example:5432/postgres"
