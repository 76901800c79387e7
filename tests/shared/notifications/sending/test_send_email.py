"""send_due over a real SMTP server: the password reaches the email, then is gone from the database."""
from __future__ import annotations

from datetime import timedelta
from email import message_from_string
from email.message import Message

from sqlalchemy import select

from shared.db.models import UserService
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.notifications.sender import send_due
from tests.builders import Builder
from tests.shared.notifications.sending.outbox_env import (
    NOTIFY_TO,
    add_message,
    message,
)

PASSWORD = "Tq7!vX2#mL9@pR4$wZ6k"


def _configure_smtp(env, port: int) -> None:
    env.setenv("SMTP_HOST", "127.0.0.1")
    env.setenv("SMTP_PORT", str(port))
    env.setenv("NOTIFY_EMAIL_TO", NOTIFY_TO)
    env.setenv("SMTP_FROM", "provisioner@reseller.example")


def _user_with_password() -> tuple[str, str]:
    with UnitOfWork() as uow:
        b = Builder(uow.session)
        customer = b.customer(b.provider())
        user = b.user(customer, "nina@contoso.com", password=PASSWORD)
        uow.commit()
        return user.id, customer.id


def _parsed(data: str) -> Message:
    return message_from_string(data)


def test_user_provisioned_email_carries_the_password_which_is_then_wiped(outbox_env, smtp_server):
    port, mailbox = smtp_server
    _configure_smtp(outbox_env, port)
    user_id, _ = _user_with_password()
    mid = add_message("email", "user.provisioned",
                      {"request_id": "req-1", "user_id": user_id, "to": NOTIFY_TO, "upn": "nina@contoso.com",
                       "display_name": "Nina Tester", "password_included": True}, secret=PASSWORD)

    report = send_due()

    assert (report.claimed, report.sent) == (1, 1)
    [mail] = mailbox.messages
    assert mail["to"] == [NOTIFY_TO]
    parsed = _parsed(mail["data"])
    assert parsed["Subject"] == "User provisioned: nina@contoso.com"
    assert f"Temporary password: {PASSWORD}" in parsed.get_payload(decode=True).decode()
    row = message(mid)
    assert (row.state, row.secret_enc, row.last_error, row.attempts) == ("sent", None, None, 1)
    assert row.sent_at is not None
    with UnitOfWork() as uow:
        assert uow.session.scalar(select(UserService.temp_password_enc).where(UserService.user_id == user_id)) is None


def test_request_failed_email_names_the_request_and_the_reason(outbox_env, smtp_server):
    port, mailbox = smtp_server
    _configure_smtp(outbox_env, port)
    add_message("email", "request.failed", {"request_id": "req-9", "kind": "user.provision", "state": "failed",
                                            "step": "assign_licences", "error_code": "no_free_licences",
                                            "error_message": "no free seat of O365_BUSINESS_PREMIUM"})
    assert send_due().sent == 1
    parsed = _parsed(mailbox.messages[0]["data"])
    assert parsed["Subject"] == "Request failed: user.provision req-9"
    body = parsed.get_payload(decode=True).decode()
    assert "error_code: no_free_licences" in body and "step: assign_licences" in body


def test_an_unreachable_smtp_server_keeps_the_message_and_its_password_for_a_retry(outbox_env):
    outbox_env.setenv("SMTP_HOST", "127.0.0.1")
    outbox_env.setenv("SMTP_PORT", "1")  # nothing listens there
    outbox_env.setenv("NOTIFY_EMAIL_TO", NOTIFY_TO)
    mid = add_message("email", "user.provisioned", {"upn": "omar@contoso.com"}, secret=PASSWORD)
    now = utcnow()

    report = send_due(now)

    assert (report.sent, report.retried) == (0, 1)
    row = message(mid)
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.secret_enc is not None and row.last_error and PASSWORD not in row.last_error
    assert now + timedelta(seconds=15) <= row.next_attempt_at <= now + timedelta(seconds=30)


def test_email_without_smtp_settings_is_skipped_and_its_password_wiped(outbox_env):
    mid = add_message("email", "user.provisioned", {"upn": "pia@contoso.com"}, secret=PASSWORD)
    assert send_due().skipped == 1
    row = message(mid)
    assert (row.state, row.secret_enc) == ("skipped", None)
    assert "SMTP_HOST" in (row.last_error or "")
