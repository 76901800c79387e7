"""/v1/customers/{c}/services and /onboard: connecting the tenant, enabling plans, the whole chain."""
from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool

from api import bodies
from api.deps import NO_QUERY, IdemDep, IdPath, PrincipalDep, UowDep, answer, json
from api.problems import responses
from api.schemas import customers as sch
from api.schemas import requests as rq
from shared.customers import microsoft_online as enabled
from shared.customers import onboard, plans, tenant
from shared.users.bulk import BulkUser

router = APIRouter(prefix="/v1/customers/{customer_id}", tags=["customer services"], dependencies=[NO_QUERY])


@router.put("/services/azure-ad", status_code=202, response_model=rq.RequestPublic, responses=responses(403, 409),
            summary="Connect an existing tenant or create one (409 service_dependency, plan_not_enabled)")
def connect_tenant(customer_id: IdPath, body: sch.AzureAdCustomerUpdate, who: PrincipalDep, uow: UowDep,
                   idem: IdemDep) -> Response:
    return answer(tenant.connect_tenant(
        uow, who, customer_id, customer_plan_id=body.customer_plan_id, tenant_id=body.tenant_id,
        new_tenant=body.new_tenant.to_new_tenant() if body.new_tenant else None, idem=idem, present=rq.present))


@router.get("/services/microsoft-online", response_model=sch.MicrosoftOnlineCustomerPublic,
            summary="The customer's Microsoft Online service: its state and enabled plans with hard limits, users "
                    "in use and free seats")
def microsoft_online(customer_id: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    return json(sch.microsoft_online_public(enabled.microsoft_online(uow, who, customer_id)))


@router.put("/services/microsoft-online", status_code=202, response_model=rq.RequestPublic,
            responses=responses(403, 409, 502, 503),
            summary="Enable user plans (409 tenant_not_connected, service_dependency, plan_not_enabled, "
                    "mca_not_signed, sku_not_in_tenant)")
def enable_plans(customer_id: IdPath, body: sch.MicrosoftOnlineCustomerUpdate, who: PrincipalDep, uow: UowDep,
                 idem: IdemDep) -> Response:
    return answer(plans.enable_plans(uow, who, customer_id, body.choices(), idem=idem, present=rq.present))


@router.post("/onboard", status_code=202, response_model=sch.OnboardAccepted, responses=responses(403, 409),
             openapi_extra=bodies.documented(sch.OnboardCreate),
             summary="Connect, check GDAP and MCA, enable plans, then provision the users (at most BULK_MAX_USERS)")
async def onboard_customer(customer_id: IdPath, request: Request, who: PrincipalDep, uow: UowDep,
                           idem: IdemDep) -> Response:
    body = await bodies.parsed(request, sch.OnboardCreate)  # up to thousands of users: not on the event loop
    bodies.check_bulk_size(len(body.users))

    def accept() -> Response:
        users = [BulkUser(u.to_input(), u.user_plan_id or "") for u in body.users]
        return answer(onboard.onboard(
            uow, who, customer_id, customer_plan_id=body.customer_plan_id, tenant_id=body.tenant_id,
            new_tenant=body.new_tenant.to_new_tenant() if body.new_tenant else None, plans=body.choices(),
            users=users, idem=idem, present=sch.present_onboarding))
    return await run_in_threadpool(accept)
