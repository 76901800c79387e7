"""Fixtures for the outbox sender: a private Postgres database, a real SMTP server, a real HTTP receiver."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import delete, select

from shared.db.engine import dispose_engine
from shared.db.models import OutboxMessage
from shared.db.uow import UnitOfWork
from shared.notifications import outbox
from shared.settings import reset_settings
from tests.conftest import create_database, drop_database, require_service

WEBHOOK_SECRET = "webhook-test-secret-" + "s" * 12
NOTIFY_TO = "ops@reseller.example"


@pytest.fixture(scope="session")
def outbox_db_url() -> Iterator[str]:
    """A database of its own: send_due takes every due row, so no other test's rows may be there."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    from shared.db.migrate import upgrade

    name = "test_outbox_" + uuid.uuid4().hex[:8]
    url = create_database(name)
    upgrade(url)
    yield url
    drop_database(name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Mailbox:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "data": envelope.content.decode("utf-8", "replace")})
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, _Mailbox]]:
    mailbox = _Mailbox()
    port = _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port, loop=asyncio.new_event_loop())
    controller.start()
    yield port, mailbox
    controller.stop()
    controller.loop.close()


@dataclass
class Receiver:
    """A webhook endpoint answering the scripted statuses in turn (then 200), recording each delivery."""

    statuses: list[int] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.lock:
                status = state.statuses.pop(0) if state.statuses else 200
                state.deliveries.append({"headers": dict(self.headers), "body": body, "status": status})
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status < 300 else b"receiver is having a bad day")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/provisioner"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def outbox_env(settings_env: pytest.MonkeyPatch, outbox_db_url: str) -> Iterator[pytest.MonkeyPatch]:
    """Settings on the private database, no channel configured yet; the outbox emptied before the test."""
    settings_env.setenv("DATABASE_URL", outbox_db_url)
    for name in ("SMTP_HOST", "NOTIFY_EMAIL_TO", "WEBHOOK_URL", "WEBHOOK_SECRET", "SMTP_STARTTLS", "SMTP_SSL",
                 "SMTP_USERNAME", "OUTBOX_MAX_ATTEMPTS"):
        settings_env.delenv(name, raising=False)
    dispose_engine()
    with UnitOfWork() as uow:
        uow.session.execute(delete(OutboxMessage))
        uow.commit()
    reset_settings()  # the test sets its channels next; settings are read again on first use
    yield settings_env
    dispose_engine()


def add_message(channel: str, topic: str, payload: dict[str, Any], secret: str | None = None) -> str:
    with UnitOfWork() as uow:
        row = outbox.enqueue(uow.session, channel, topic, payload, secret=secret)
        uow.session.flush()
        uow.commit()
        return row.id


def message(message_id: str) -> OutboxMessage:
    with UnitOfWork() as uow:
        row = uow.session.scalar(select(OutboxMessage).where(OutboxMessage.id == message_id))
        assert row is not None
        uow.session.expunge(row)
        return row


def event_of(delivery: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(delivery["body"]))
