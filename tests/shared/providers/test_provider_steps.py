"""The reseller's steps against the emulator: Partner Center sign-in, then the plans each service links."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from shared.db.models import ProviderCustomerPlan, ProviderService, ProviderUserPlan
from shared.db.types import utcnow
from shared.microsoft.errors import AuthFailed
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import Done, StepFailed
from shared.pipeline.rows import StepRow
from shared.providers.steps import check_partner_center, enable_customer_plans, enable_user_plans
from shared.requests import kinds
from shared.settings import Settings
from tests.builders import Builder, Licence


def _ctx(db, microsoft, req, step: str) -> StepContext:
    return StepContext(db, req, StepRow(req.id, step, 1), Settings(environment="test"), microsoft, utcnow())


def _provider(db, partner, *, secret: str | None = None, services: bool = True):
    return Builder(db).provider(pc_tenant_id=partner.tenant_id, client_id=partner.client_id,
                                client_secret=secret or partner.client_secret, services=services)


def test_check_partner_center_signs_in_with_the_resellers_app(db, microsoft, partner, emulator):
    provider = _provider(db, partner, services=False)
    req = Builder(db).request(kinds.PROVIDER_AZURE_AD, provider=provider, params={"customer_plans": ["x"]})
    before = emulator.stats()["tokens_issued"]
    outcome = check_partner_center(_ctx(db, microsoft, req, "check_partner_center"))
    assert isinstance(outcome, Done) and outcome.note == "Partner Center connection works"
    assert emulator.stats()["tokens_issued"] == before + 1  # a real client-credentials sign-in
    assert emulator.stats()["by_tenant"][partner.tenant_id]["requests"] >= 1


def test_a_wrong_secret_fails_at_check_partner_center_not_at_the_first_customer(db, microsoft, partner):
    provider = _provider(db, partner, secret="rotated-but-wrong", services=False)
    req = Builder(db).request(kinds.PROVIDER_AZURE_AD, provider=provider, params={"customer_plans": ["x"]})
    with pytest.raises(AuthFailed):
        check_partner_center(_ctx(db, microsoft, req, "check_partner_center"))


def test_enable_customer_plans_links_exactly_the_requested_plans(db, microsoft, partner):
    b = Builder(db)
    provider = _provider(db, partner)
    old, kept, new = b.customer_plan(provider), b.customer_plan(provider), b.customer_plan()
    req = b.request(kinds.PROVIDER_AZURE_AD, provider=provider, params={"customer_plans": [kept.id, new.id]})
    ctx = _ctx(db, microsoft, req, "enable_customer_plans")
    for _ in range(2):  # idempotent: a redelivery changes nothing
        assert enable_customer_plans(ctx).note == "2 customer plan(s) enabled"
        db.flush()
        linked = set(db.scalars(select(ProviderCustomerPlan.customer_plan_id).where(
            ProviderCustomerPlan.service_provider_id == provider.id)))
        assert linked == {kept.id, new.id} and old.id not in linked


def test_enable_user_plans_waits_for_azure_ad_then_links_exactly_the_requested_plans(db, microsoft, partner):
    b = Builder(db)
    provider = _provider(db, partner)
    old = b.user_plan([Licence("O365_BUSINESS_ESSENTIALS")], provider)
    new = b.user_plan([Licence("O365_BUSINESS_PREMIUM")])
    req = b.request(kinds.PROVIDER_MICROSOFT_ONLINE, provider=provider, params={"user_plans": [new.id]})
    azure = db.scalar(select(ProviderService).where(ProviderService.service_provider_id == provider.id,
                                                    ProviderService.service == "azure_ad"))
    azure.state = "failed"
    db.flush()
    with pytest.raises(StepFailed) as refused:
        enable_user_plans(_ctx(db, microsoft, req, "enable_user_plans"))
    assert refused.value.code == "service_dependency"
    azure.state = "provisioned"
    db.flush()
    assert enable_user_plans(_ctx(db, microsoft, req, "enable_user_plans")).note == "1 user plan(s) enabled"
    db.flush()
    assert set(db.scalars(select(ProviderUserPlan.user_plan_id).where(
        ProviderUserPlan.service_provider_id == provider.id))) == {new.id}
    assert old.id != new.id


def test_a_request_naming_no_plan_never_unlinks_them_all(db, microsoft, partner):
    b = Builder(db)
    provider = _provider(db, partner)
    kept = b.customer_plan(provider)
    req = b.request(kinds.PROVIDER_AZURE_AD, provider=provider, params={"customer_plans": []})
    with pytest.raises(StepFailed) as refused:
        enable_customer_plans(_ctx(db, microsoft, req, "enable_customer_plans"))
    assert refused.value.code == "validation_error"
    assert list(db.scalars(select(ProviderCustomerPlan.customer_plan_id).where(
        ProviderCustomerPlan.service_provider_id == provider.id))) == [kept.id]
