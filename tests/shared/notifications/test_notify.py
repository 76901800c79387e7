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
