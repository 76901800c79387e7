"""read_licences and enable_plans: a plan whose SKU the tenant lacks is refused, not enabled to fail later."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from shared.db.models import PlanEnablement
from shared.pipeline.outcomes import StepFailed
from shared.plans.steps import enable_plans, read_licences
from shared.requests import kinds
from tests.builders import Licence


def _request(world, *plans):
    return world.b.request(kinds.CUSTOMER_MICROSOFT_ONLINE, customer=world.customer,
                           params={"plans": [{"user_plan_id": p.id, "hard_limit": None} for p in plans]})


def test_plans_whose_skus_the_tenant_has_are_enabled(world, db):
    req = _request(world, world.plan)
    read_licences(world.ctx(req, "read_licences"))
    enable_plans(world.ctx(req, "enable_plans"))
    row = db.scalar(select(PlanEnablement).where(PlanEnablement.customer_id == world.customer.id,
                                                 PlanEnablement.user_plan_id == world.plan.id))
    assert row is not None and row.enabled


def test_a_plan_whose_sku_the_tenant_lacks_fails_naming_the_sku(world, db):
    e3 = world.b.user_plan([Licence("SPE_E3")], world.provider)
    req = _request(world, world.plan, e3)  # e.g. an onboarding, which chose its plans before the tenant was known
    read_licences(world.ctx(req, "read_licences"))
    with pytest.raises(StepFailed) as failed:
        enable_plans(world.ctx(req, "enable_plans"))
    assert failed.value.code == "sku_not_in_tenant" and "SPE_E3" in failed.value.message
    assert db.scalar(select(PlanEnablement).where(PlanEnablement.user_plan_id == e3.id)) is None
