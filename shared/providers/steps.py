"""Reseller-level steps: the Partner Center connection, then Azure AD (customer plans), then Microsoft Online."""
from __future__ import annotations

from sqlalchemy import select

from shared.db.models import ProviderCustomerPlan, ProviderService, ProviderUserPlan
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import Done, StepFailed
from shared.providers.credentials import partner_credential

AZURE_AD, PROVISIONED = "azure_ad", "provisioned"


def check_partner_center(ctx: StepContext) -> Done:
    """Sign in to Partner Center with the reseller's app: a wrong secret fails here, not at the first customer."""
    ctx.microsoft.partner_center(partner_credential(ctx.session, ctx.request.service_provider_id)).check_connection()
    return Done(note="Partner Center connection works")


def enable_customer_plans(ctx: StepContext) -> Done:
    ids = list(ctx.params.get("customer_plans") or [])
    provider_id = ctx.request.service_provider_id
    have = set(ctx.session.scalars(select(ProviderCustomerPlan.customer_plan_id).where(
        ProviderCustomerPlan.service_provider_id == provider_id)))
    for plan_id in ids:
        if plan_id not in have:  # the API links them at accept time; this keeps a retry complete
            ctx.session.add(ProviderCustomerPlan(service_provider_id=provider_id, customer_plan_id=plan_id))
    return Done(note=f"{len(ids)} customer plan(s) enabled")


def enable_user_plans(ctx: StepContext) -> Done:
    """Microsoft Online depends on Azure AD: never enabled before the reseller's Azure AD is provisioned."""
    provider_id = ctx.request.service_provider_id
    azure = ctx.session.scalar(select(ProviderService.state).where(
        ProviderService.service_provider_id == provider_id, ProviderService.service == AZURE_AD))
    if azure != PROVISIONED:
        raise StepFailed("service_dependency", "the reseller's Azure AD service is not provisioned")
    ids = list(ctx.params.get("user_plans") or [])
    have = set(ctx.session.scalars(select(ProviderUserPlan.user_plan_id).where(
        ProviderUserPlan.service_provider_id == provider_id)))
    for plan_id in ids:
        if plan_id not in have:
            ctx.session.add(ProviderUserPlan(service_provider_id=provider_id, user_plan_id=plan_id))
    return Done(note=f"{len(ids)} user plan(s) enabled")
