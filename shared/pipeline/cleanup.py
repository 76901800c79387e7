"""Hourly housekeeping: forget temporary passwords nobody can still need, drop old sent notifications and
idempotent answers past their 24 h."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from shared.db.models import IdempotentAnswer, OutboxMessage, ProvisioningRequest, UserService
from shared.idempotency import MAX_AGE as IDEMPOTENCY_MAX_AGE
from shared.requests import kinds

# A failed provisioning may be retried (and still need the password to create the user) this long.
FAILED_RETRY_WINDOW = timedelta(days=7)
SENT_OUTBOX_KEPT = timedelta(days=30)


def forget_passwords(session: Session, now: datetime) -> int:
    pr = ProvisioningRequest
    done = select(pr.id).where(pr.kind == kinds.USER_PROVISION, or_(
        pr.state.in_([kinds.SUCCEEDED, kinds.CANCELLED]),
        and_(pr.state == kinds.FAILED, pr.finished_at < now - FAILED_RETRY_WINDOW)))
    result = session.execute(update(UserService).where(UserService.temp_password_enc.is_not(None),
                                                       UserService.request_id.in_(done))
                             .values(temp_password_enc=None).execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def forget_stale_email_secrets(session: Session, now: datetime) -> int:
    """An email nobody can send (no SMTP configured) must not keep a password, even encrypted, for ever."""
    result = session.execute(update(OutboxMessage).where(OutboxMessage.secret_enc.is_not(None),
                                                         OutboxMessage.created_at < now - FAILED_RETRY_WINDOW)
                             .values(secret_enc=None).execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def drop_sent(session: Session, now: datetime) -> int:
    result = session.execute(delete(OutboxMessage).where(OutboxMessage.state == "sent",
                                                         OutboxMessage.sent_at < now - SENT_OUTBOX_KEPT))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def drop_expired_idempotent_answers(session: Session, now: datetime) -> int:
    """Past their 24 h nobody may replay them; they name users and (older releases) held sealed passwords."""
    result = session.execute(delete(IdempotentAnswer).where(IdempotentAnswer.created_at < now - IDEMPOTENCY_MAX_AGE))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def run(session: Session, *, now: datetime) -> None:
    forget_passwords(session, now)
    forget_stale_email_secrets(session, now)
    drop_sent(session, now)
    drop_expired_idempotent_answers(session, now)
