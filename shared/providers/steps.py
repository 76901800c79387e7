"""Reseller-level steps: the Partner Center connection, then Azure AD (customer plans), then Microsoft Online.

The plans a request names replace the service's links only here, once Partner Center answered: until
then (and if the request fails) the service keeps its last good plans.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

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
    ids = _plan_ids(ctx, "customer_plans")
    _link(ctx, ProviderCustomerPlan, ProviderCustomerPlan.customer_plan_id, "customer_plan_id", ids)
    return Done(note=f"{len(ids)} customer plan(s) enabled")


def enable_user_plans(ctx: StepContext) -> Done:
    """Microsoft Online depends on Azure AD: never enabled before the reseller's Azure AD is provisioned."""
    provider_id = ctx.request.service_provider_id
    azure = ctx.session.scalar(select(ProviderService.state).where(
        ProviderService.service_provider_id == provider_id, ProviderService.service == AZURE_AD))
    if azure != PROVISIONED:
        raise StepFailed("service_dependency", "the reseller's Azure AD service is not provisioned")
    ids = _plan_ids(ctx, "user_plans")
    _link(ctx, ProviderUserPlan, ProviderUserPlan.user_plan_id, "user_plan_id", ids)
    return Done(note=f"{len(ids)} user plan(s) enabled")


def _plan_ids(ctx: StepContext, field: str) -> list[str]:
    ids = list(dict.fromkeys(ctx.params.get(field) or []))
    if not ids:  # the API refuses an empty list; an older request must not unlink every plan either
        raise StepFailed("validation_error", f"the request names no {field.replace('_', ' ')[:-1]}")
    return ids


def _link(ctx: StepContext, model: Any, column: Any, attribute: str, ids: list[str]) -> None:
    """Exactly `ids` linked to the reseller afterwards; running it again changes nothing."""
    provider_id = ctx.request.service_provider_id
    ctx.session.execute(delete(model).where(model.service_provider_id == provider_id, column.not_in(ids)))
    have = set(ctx.session.scalars(select(column).where(model.service_provider_id == provider_id)))
    for plan_id in ids:
        if plan_id not in have:
            ctx.session.add(model(service_provider_id=provider_id, **{attribute: plan_id}))
