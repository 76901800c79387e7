"""connect_tenant's CPV consent and its wait, check_gdap's roles and expiry (steps called directly)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from shared.db.models import TenantConnection
from shared.microsoft.errors import ConsentMissing
from shared.pipeline.outcomes import Blocked, Done, Wait
from shared.requests import kinds
from shared.tenants.steps import check_gdap, connect_tenant
from tests.shared.fakes import ENGINE_ROLES

USER_ADMIN, LICENSE_ADMIN, EXCHANGE_ADMIN = ENGINE_ROLES
GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"


def _connect_request(world, kind=kinds.CUSTOMER_AZURE_AD):
    customer = world.b.customer(world.provider, connected=False)
    return world.b.request(kind, customer=customer, params={"tenant_id": world.tenant.tenant_id})


def _not_yet() -> ConsentMissing:
    return ConsentMissing("sign-in refused (unauthorized_client): AADSTS700016", code="AADSTS700016",
                          tenant_id="t")


def test_connecting_grants_the_apps_consent_once_and_a_second_connect_goes_on(world, db):
    first = _connect_request(world)
    assert isinstance(connect_tenant(world.ctx(first, "connect_tenant")), Done)
    assert world.tenant.consents == {"partner-app"} and world.ms.calls["grant_application_consent"] == 1
    conn = db.scalar(select(TenantConnection).where(TenantConnection.customer_id == first.customer_id))
    assert conn.consented_at is not None
    second = world.b.request(kinds.CUSTOMER_AZURE_AD, customer=db.get(type(world.customer), first.customer_id),
                             params={"tenant_id": world.tenant.tenant_id})
    assert isinstance(connect_tenant(world.ctx(second, "connect_tenant")), Done)  # Partner Center said 409
    assert world.ms.calls["grant_application_consent"] == 2 and world.tenant.consents == {"partner-app"}


def test_while_the_consent_propagates_the_step_waits_on_a_growing_interval(world):
    req = _connect_request(world)
    world.ms.fail["domains"] = [_not_yet(), _not_yet()]
    started = datetime.now(UTC)
    first = connect_tenant(world.ctx(req, "connect_tenant", now=started))
    assert isinstance(first, Wait) and "AADSTS700016" in first.reason
    second = connect_tenant(world.ctx(req, "connect_tenant", now=started + timedelta(seconds=10)))
    assert isinstance(second, Wait)
    assert second.until - (started + timedelta(seconds=10)) >= first.until - started  # the interval grows
    assert isinstance(connect_tenant(world.ctx(req, "connect_tenant", now=started + timedelta(seconds=40))), Done)
    assert world.ms.calls["grant_application_consent"] == 1  # asked once for the whole wait


def test_past_the_deadline_the_request_is_blocked_consent_pending_and_asks_again_when_resumed(world, settings):
    req = _connect_request(world)
    world.ms.fail["domains"] = [_not_yet(), _not_yet()]
    started = datetime.now(UTC)
    assert isinstance(connect_tenant(world.ctx(req, "connect_tenant", now=started)), Wait)
    late = started + timedelta(seconds=settings.consent_deadline_s + 1)
    blocked = connect_tenant(world.ctx(req, "connect_tenant", now=late))
    assert isinstance(blocked, Blocked) and blocked.reason == "consent_pending"
    assert "reseller" in blocked.message and world.provider.name in blocked.message
    assert "tenant t " in blocked.message and "Fix:" in blocked.message
    assert isinstance(connect_tenant(world.ctx(req, "connect_tenant", now=late)), Done)  # the resume
    assert world.ms.calls["grant_application_consent"] == 2


def test_gdap_roles_missing_names_each_role_and_its_template_id(world, db):
    world.tenant.gdap_roles = (LICENSE_ADMIN, EXCHANGE_ADMIN)
    req = _connect_request(world)
    connect_tenant(world.ctx(req, "connect_tenant"))
    outcome = check_gdap(world.ctx(req, "check_gdap"))
    assert isinstance(outcome, Blocked) and outcome.reason == "gdap_roles_missing"
    assert f"User Administrator ({USER_ADMIN}) for users" in outcome.message
    assert "for licences" not in outcome.message and "Fix:" in outcome.message
    conn = db.scalar(select(TenantConnection).where(TenantConnection.customer_id == req.customer_id))
    assert conn.gdap_roles == sorted([LICENSE_ADMIN, EXCHANGE_ADMIN]) and conn.state != "connected"

    world.tenant.gdap_roles = ()
    both = check_gdap(world.ctx(req, "check_gdap"))
    assert isinstance(both, Blocked) and f"License Administrator ({LICENSE_ADMIN}) for licences" in both.message

    world.tenant.gdap_roles = (GLOBAL_ADMIN,)  # covers everything
    assert isinstance(check_gdap(world.ctx(req, "check_gdap")), Done)
    world.tenant.gdap_roles = (USER_ADMIN,)  # which also covers licences (Graph's assignLicense page)
    assert isinstance(check_gdap(world.ctx(req, "check_gdap")), Done)


def test_an_onboarding_with_aliases_needs_exchange_administrator(world, db):
    world.tenant.gdap_roles = (USER_ADMIN, LICENSE_ADMIN)
    req = _connect_request(world, kinds.CUSTOMER_ONBOARD)
    customer = db.get(type(world.customer), req.customer_id)
    child = world.b.user(customer, "ada@contoso.com", plan=world.plan, aliases=["countess@contoso.com"])
    world.b.provision(child, world.plan, reserve=False, parent_id=req.id)
    connect_tenant(world.ctx(req, "connect_tenant"))
    outcome = check_gdap(world.ctx(req, "check_gdap"))
    assert isinstance(outcome, Blocked) and f"Exchange Administrator ({EXCHANGE_ADMIN}) for aliases" in outcome.message

    plain = _connect_request(world)  # no aliases asked: connected, with a warning
    connect_tenant(world.ctx(plain, "connect_tenant"))
    done = check_gdap(world.ctx(plain, "check_gdap"))
    assert isinstance(done, Done) and f"Exchange Administrator ({EXCHANGE_ADMIN}) is not granted" in done.note


def test_a_relationship_ending_within_two_weeks_is_reported(world, db):
    ends = datetime.now(UTC) + timedelta(days=5)
    world.tenant.gdap_ends = ends.strftime("%Y-%m-%dT%H:%M:%SZ")
    req = _connect_request(world)
    connect_tenant(world.ctx(req, "connect_tenant"))
    done = check_gdap(world.ctx(req, "check_gdap"))
    assert isinstance(done, Done) and f"ends {ends:%Y-%m-%d}" in done.note and "extend it" in done.note
    conn = db.scalar(select(TenantConnection).where(TenantConnection.customer_id == req.customer_id))
    assert conn.gdap_ends_at == ends.replace(microsecond=0) and conn.state == "connected"

    world.tenant.gdap_ends = "2030-01-01T00:00:00Z"
    later = _connect_request(world)
    connect_tenant(world.ctx(later, "connect_tenant"))
    assert "extend" not in check_gdap(world.ctx(later, "check_gdap")).note
