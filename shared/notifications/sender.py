"""send_due: claim due outbox messages, send each by its channel, record sent / retry / dead / skipped.

States of an outbox row:

    pending ──sent──► sent        delivered; the email's password (secret_enc) wiped
       │ ╰─failed──► pending      attempts + 1, last_error, next_attempt_at = now + backoff with jitter
       ├─failed N times─► dead    kept for operators (the event is never deleted); secret wiped
       ╰─channel not configured─► skipped   SMTP/recipient or webhook URL/secret unset at send time:
                                            marked instead of piling up; secret wiped

Claiming moves next_attempt_at a lease ahead (outbox_claim_s) in its own short transaction
(SKIP LOCKED on PostgreSQL), so two senders never take the same row, no lock is held while
talking to SMTP or a webhook, and a sender that dies mid-way leaves its rows due again after the
lease. A crash between sending and recording means the message goes again: delivery is at least
once (webhook receivers deduplicate on X-Provisioner-Delivery).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import httpx
from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session, sessionmaker

from shared.backoff import backoff
from shared.db.models import OutboxMessage, UserService
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.notifications import email, webhook
from shared.notifications.outbox import EMAIL, WEBHOOK
from shared.security import decrypt
from shared.settings import Settings, get_settings

log = logging.getLogger(__name__)
OUTBOX = cast(Table, OutboxMessage.__table__)
PENDING, SENT, DEAD, SKIPPED = "pending", "sent", "dead", "skipped"
_MAX_ERROR = 500


@dataclass
class SendReport:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    skipped: int = 0


class _NotConfigured(Exception):
    pass


def send_due(now: datetime | None = None, batch: int = 100, *,
             session_factory: sessionmaker[Session] | None = None,
             http: httpx.Client | None = None) -> SendReport:
    """Send up to `batch` due messages; a failure schedules a retry, never loses the message."""
    settings = get_settings()
    now = now or utcnow()
    lease_until = now + timedelta(seconds=settings.outbox_claim_s)
    report = SendReport()
    ids = _claim(session_factory, now, lease_until, batch)
    report.claimed = len(ids)
    if not ids:
        return report
    client = http or webhook.http_client(settings)
    try:
        for message_id in ids:
            outcome = _send_one(session_factory, settings, client, message_id, now, lease_until)
            setattr(report, outcome, getattr(report, outcome) + 1)
    finally:
        if http is None:
            client.close()
    return report


def _claim(factory: sessionmaker[Session] | None, now: datetime, lease_until: datetime, batch: int) -> list[str]:
    with UnitOfWork(factory) as uow:
        s = uow.session
        due = (select(OUTBOX.c.id).where(OUTBOX.c.state == PENDING, OUTBOX.c.next_attempt_at <= now)
               .order_by(OUTBOX.c.next_attempt_at).limit(batch))
        if s.get_bind().dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        claimed = s.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id.in_(due.scalar_subquery()), OUTBOX.c.state == PENDING,
                   OUTBOX.c.next_attempt_at <= now)
            .values(next_attempt_at=lease_until, attempts=OUTBOX.c.attempts + 1)
            .returning(OUTBOX.c.id)).scalars().all()
        uow.commit()
        return list(claimed)


def _send_one(factory: sessionmaker[Session] | None, settings: Settings, client: httpx.Client,
              message_id: str, now: datetime, lease_until: datetime) -> str:
    with UnitOfWork(factory) as uow:
        row = uow.session.get(OutboxMessage, message_id)
        if row is None:
            return "skipped"
        channel, topic, payload = row.channel, row.topic, dict(row.payload or {})
        attempts, created_at, secret_enc = row.attempts, row.created_at, row.secret_enc
    error: str | None = None
    try:
        _deliver(settings, client, channel, topic, payload, secret_enc, message_id, created_at, now)
        outcome = SENT
    except _NotConfigured as exc:
        outcome, error = SKIPPED, str(exc)
    except Exception as exc:  # any failure is retried: the message must outlive it
        error = _reason(exc)
        outcome = DEAD if attempts >= settings.outbox_max_attempts else PENDING
        log.warning("outbox message %s (%s %s) failed, attempt %d: %s", message_id, channel, topic, attempts, error)
    with UnitOfWork(factory) as uow:
        _record(uow.session, settings, message_id, lease_until, outcome, error, attempts, payload, now)
        uow.commit()
    return {SENT: "sent", SKIPPED: "skipped", DEAD: "dead"}.get(outcome, "retried")


def _deliver(settings: Settings, client: httpx.Client, channel: str, topic: str, payload: dict[str, Any],
             secret_enc: bytes | None, message_id: str, created_at: datetime, now: datetime) -> None:
    if channel == EMAIL:
        if not settings.smtp_host or not email.recipient(payload, settings):
            raise _NotConfigured("email not configured (SMTP_HOST and NOTIFY_EMAIL_TO) when it was due")
        # Decrypted only here, for the message body; the plaintext never reaches a row or a log.
        password = decrypt(secret_enc) if secret_enc else None
        try:
            email.send_email(email.build_message(topic, payload, settings, password=password), settings)
        except Exception as exc:
            if password and password in str(exc):  # never let a server's echo carry it into last_error
                raise RuntimeError(f"{type(exc).__name__} (details withheld)") from None
            raise
    elif channel == WEBHOOK:
        if not settings.webhook_url or not settings.webhook_secret:
            raise _NotConfigured("webhook not configured (WEBHOOK_URL and WEBHOOK_SECRET) when it was due")
        webhook.deliver(client, settings, message_id=message_id, topic=topic, created_at=created_at,
                        payload=payload, now=now)
    else:
        raise _NotConfigured(f"unknown channel {channel!r}")


def _record(s: Session, settings: Settings, message_id: str, lease_until: datetime, outcome: str,
            error: str | None, attempts: int, payload: dict[str, Any], now: datetime) -> None:
    values: dict[str, Any] = {"state": outcome, "last_error": error}
    if outcome == SENT:
        values["sent_at"] = now
    if outcome == PENDING:
        values["next_attempt_at"] = now + timedelta(seconds=backoff_s(attempts, settings))
    else:
        values["secret_enc"] = None  # final: nobody will ever need the password again
    # Only while our claim holds: a sender that took the row over after our lease decides instead.
    done = s.execute(update(OUTBOX).where(OUTBOX.c.id == message_id, OUTBOX.c.state == PENDING,
                                          OUTBOX.c.next_attempt_at == lease_until).values(**values))
    if outcome != PENDING and getattr(done, "rowcount", 0) == 1 and payload.get("user_id"):
        _wipe_user_password(s, payload)


def _wipe_user_password(s: Session, payload: dict[str, Any]) -> None:
    """The password may also sit on the user's service until the notification went out."""
    match = (UserService.id == payload["user_service_id"]) if payload.get("user_service_id") else (
        UserService.user_id == payload["user_id"])
    s.execute(update(UserService).where(match, UserService.temp_password_enc.is_not(None))
              .values(temp_password_enc=None).execution_options(synchronize_session=False))


def backoff_s(attempts: int, settings: Settings) -> float:
    """shared.backoff's rule from outbox_retry_base_s, capped at outbox_retry_max_s."""
    return backoff(attempts, base=settings.outbox_retry_base_s, cap=settings.outbox_retry_max_s)


def _reason(exc: BaseException) -> str:
    # smtplib and httpx texts carry server answers and exception names, never our secret or password.
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:_MAX_ERROR]
