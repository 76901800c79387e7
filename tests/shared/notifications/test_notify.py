"""notify: outbox rows with the request's news; the password only in an email row, encrypted."""
from __future__ import annotations

from sqlalchemy import select

from shared.db.models import OutboxMessage, UserService
from shared.notifications.steps import notify
from shared.security import decrypt


def test_webhook_row_and_password_wiped_when_no_email_is_configured(world, db):
    user = world.user("pat@contoso.com")
    req = world.b.provision(user, world.plan)
    req.context = {"user_created": True}
    notify(world.ctx(req, "notify"))
    rows = db.scalars(select(OutboxMessage).where(OutboxMessage.payload["request_id"].as_string() == req.id)).all()
    assert [(r.channel, r.topic, r.secret_enc) for r in rows] == [("webhook", "request.state_changed", None)]
    assert db.scalar(select(UserService.temp_password_enc).where(UserService.user_id == user.id)) is None


def test_the_email_carries_the_password_encrypted_only_for_users_we_created(world, db):
    world.settings.notify_email_to = "ops@reseller.example"
    user = world.user("quin@contoso.com", password="Bb2@" + "y" * 16)
    req = world.b.provision(user, world.plan)
    req.context = {"user_created": True}
    notify(world.ctx(req, "notify"))
    email = db.scalar(select(OutboxMessage).where(OutboxMessage.channel == "email",
                                                  OutboxMessage.payload["request_id"].as_string() == req.id))
    assert decrypt(email.secret_enc) == "Bb2@" + "y" * 16
    assert "Bb2@" not in str(email.payload) and email.payload["password_included"] is True


def test_a_linked_account_keeps_its_password_and_the_email_never_shows_one(world, db):
    from shared.notifications.email import build_message

    world.settings.notify_email_to = "ops@reseller.example"
    world.settings.smtp_from = "provisioner@reseller.example"
    user = world.user("ria@contoso.com", password="Dd4$" + "w" * 16)
    req = world.b.provision(user, world.plan)
    req.context = {"result": {"user": "linked", "password": "kept"}}
    notify(world.ctx(req, "notify"))
    email = db.scalar(select(OutboxMessage).where(OutboxMessage.channel == "email",
                                                  OutboxMessage.payload["request_id"].as_string() == req.id))
    assert email.secret_enc is None and email.payload["password_included"] is False
    assert (email.payload["user"], email.payload["password"]) == ("linked", "kept")
    body = build_message("user.provisioned", email.payload, world.settings, password=None).get_content()
    assert "existing Microsoft 365 account was linked" in body and "password was not changed" in body
    assert "Temporary password" not in body
    assert db.scalar(select(UserService.temp_password_enc).where(UserService.user_id == user.id)) is None


def test_a_reset_password_on_a_linked_account_is_emailed(world, db):
    from shared.notifications.email import build_message

    world.settings.notify_email_to = "ops@reseller.example"
    world.settings.smtp_from = "provisioner@reseller.example"
    user = world.user("sid@contoso.com", password="Ee5%" + "v" * 16)
    req = world.b.provision(user, world.plan, params={"reset_password": True})
    req.context = {"result": {"user": "linked", "password": "set"}}
    notify(world.ctx(req, "notify"))
    email = db.scalar(select(OutboxMessage).where(OutboxMessage.channel == "email",
                                                  OutboxMessage.payload["request_id"].as_string() == req.id))
    password = decrypt(email.secret_enc)
    assert password == "Ee5%" + "v" * 16
    body = build_message("user.provisioned", email.payload, world.settings, password=password).get_content()
    assert "existing Microsoft 365 account was linked" in body and f"Temporary password: {password}" in body


def test_a_password_that_was_not_set_is_never_written_into_the_email():
    from shared.notifications.email import build_message
    from shared.settings import Settings

    settings = Settings(environment="test", secret_key="k" * 32, notify_email_to="ops@x.example",
                        smtp_from="p@x.example")
    payload = {"request_id": "r", "upn": "a@b.example", "user": "linked", "password": "kept"}
    body = build_message("user.provisioned", payload, settings, password="Ff6^" + "u" * 16).get_content()
    assert "Ff6^" not in body
