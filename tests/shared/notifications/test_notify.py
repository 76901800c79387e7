"""notify and the pipeline's notices: outbox rows per audience; the password only to the customer's own
recipients, encrypted, and only when the engine set it."""
from __future__ import annotations

from sqlalchemy import select

from shared.db.models import NotificationRecipients, OutboxMessage, UserService
from shared.db.types import utcnow
from shared.notifications.email import build_message
from shared.notifications.steps import notify
from shared.pipeline.finish import fail_request
from shared.requests import kinds
from shared.security import decrypt

PASSWORD = "Bb2@" + "y" * 16


def _rows(db, req, channel="email"):
    return db.scalars(select(OutboxMessage).where(OutboxMessage.channel == channel,
                                                  OutboxMessage.payload["request_id"].as_string() == req.id)
                      .order_by(OutboxMessage.payload["to"].as_string())).all()


def _recipients(world, db, emails, events=("provisioned", "failed", "blocked"), *, customer=True):
    db.add(NotificationRecipients(customer_id=world.customer.id if customer else None,
                                  service_provider_id=None if customer else world.provider.id,
                                  emails=list(emails), events=list(events)))
    db.flush()


def test_webhook_row_and_password_wiped_when_no_email_is_configured(world, db):
    user = world.user("pat@contoso.com")
    req = world.b.provision(user, world.plan)
    req.context = {"user_created": True}
    notify(world.ctx(req, "notify"))
    rows = db.scalars(select(OutboxMessage).where(OutboxMessage.payload["request_id"].as_string() == req.id)).all()
    assert [(r.channel, r.topic, r.secret_enc) for r in rows] == [("webhook", "request.state_changed", None)]
    assert db.scalar(select(UserService.temp_password_enc).where(UserService.user_id == user.id)) is None


def test_the_password_goes_only_to_the_customers_own_recipients(world, db):
    world.settings.notify_email_to = "ops@operator.example"
    _recipients(world, db, ["it@contoso.com", "boss@contoso.com"])
    user = world.user("quin@contoso.com", password=PASSWORD)
    req = world.b.provision(user, world.plan)
    req.context = {"user_created": True}
    notify(world.ctx(req, "notify"))
    customer, operator = _rows(db, req)
    assert customer.payload["to"] == "it@contoso.com, boss@contoso.com" and customer.topic == "user.provisioned"
    assert decrypt(customer.secret_enc) == PASSWORD and customer.payload["password_included"] is True
    assert operator.payload["to"] == "ops@operator.example" and operator.secret_enc is None
    assert operator.payload["password_included"] is False and operator.payload["upn"] == "quin@contoso.com"
    assert PASSWORD not in str(customer.payload) + str(operator.payload)
    assert db.scalar(select(UserService.temp_password_enc).where(UserService.user_id == user.id)) is None


def test_the_resellers_default_never_gets_the_password(world, db):
    _recipients(world, db, ["desk@reseller.example"], customer=False)
    req = world.b.provision(world.user("rae@contoso.com", password=PASSWORD), world.plan)
    req.context = {"user_created": True}
    notify(world.ctx(req, "notify"))
    [row] = _rows(db, req)
    assert row.payload["to"] == "desk@reseller.example" and row.secret_enc is None


def test_a_password_the_engine_did_not_set_is_never_emailed(world, db):
    _recipients(world, db, ["it@contoso.com"])
    req = world.b.provision(world.user("sam@contoso.com", password=PASSWORD), world.plan)
    req.context = {"user_created": False}  # linked to an existing Entra account: its own password stands
    notify(world.ctx(req, "notify"))
    [row] = _rows(db, req)
    assert row.secret_enc is None and row.payload["password_included"] is False
    assert PASSWORD not in build_message(row.topic, row.payload, world.settings).get_content()


def test_events_the_recipients_did_not_choose_are_not_sent(world, db):
    _recipients(world, db, ["it@contoso.com"], events=["failed"])
    req = world.b.provision(world.user("tia@contoso.com"), world.plan)
    notify(world.ctx(req, "notify"))
    assert _rows(db, req) == []


def test_a_customer_service_provisioned_is_news_a_sync_is_not(world, db):
    _recipients(world, db, ["it@contoso.com"])
    enabled = world.b.request(kinds.CUSTOMER_MICROSOFT_ONLINE, customer=world.customer)
    notify(world.ctx(enabled, "notify"))
    [row] = _rows(db, enabled)
    assert row.topic == "request.provisioned"
    assert build_message(row.topic, row.payload, world.settings)["Subject"].startswith("Provisioned:")
    synced = world.b.request(kinds.CUSTOMER_SYNC, customer=world.customer)
    notify(world.ctx(synced, "notify"))
    assert _rows(db, synced) == []


def test_a_failed_request_is_emailed_but_not_once_per_child_of_a_failed_onboarding(world, db):
    _recipients(world, db, ["it@contoso.com"])
    parent = world.b.request(kinds.CUSTOMER_ONBOARD, customer=world.customer)
    child = world.b.provision(world.user("uma@contoso.com"), world.plan, parent_id=parent.id)
    fail_request(db, parent, "gdap_roles_missing", "the partner lacks the roles", now=utcnow())
    db.flush()
    [row] = _rows(db, parent)
    assert row.topic == "request.failed" and row.payload["error_code"] == "gdap_roles_missing"
    assert db.get(type(child), child.id).state == kinds.FAILED and _rows(db, child) == []


def test_a_blocked_request_tells_the_recipients_what_to_do(world, db, engine, maker):
    _recipients(world, db, ["it@contoso.com"])
    world.tenant.mca.clear()
    req = world.b.request(kinds.CUSTOMER_MICROSOFT_ONLINE, customer=world.customer,
                          params={"plans": [{"user_plan_id": world.plan.id, "hard_limit": None}]})
    verdict = engine.run(req.id, "check_mca")
    assert verdict.action == "halt"
    db.expire_all()
    assert db.get(type(req), req.id).state == kinds.BLOCKED
    [row] = _rows(db, req)
    assert row.topic == "request.blocked" and row.payload["blocked_reason"] == "mca_not_signed"
    message = build_message(row.topic, row.payload, world.settings)
    assert message["To"] == "it@contoso.com" and "(mca_not_signed)" in message["Subject"]
    assert f"/v1/customers/{world.customer.id}/agreement" in message.get_content()
