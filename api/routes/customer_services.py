"""/v1/customers/{c}/services and /onboard: connecting the tenant, enabling plans, the whole chain."""
from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import NO_QUERY, IdemDep, IdPath, PrincipalDep, UowDep, answer
from api.problems import responses
from api.schemas import customers as sch
from api.schemas import requests as rq
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


@router.put("/services/microsoft-online", status_code=202, response_model=rq.RequestPublic,
            responses=responses(403, 409),
            summary="Enable user plans (409 tenant_not_connected, service_dependency, plan_not_enabled, "
                    "mca_not_signed)")
def enable_plans(customer_id: IdPath, body: sch.MicrosoftOnlineCustomerUpdate, who: PrincipalDep, uow: UowDep,
                 idem: IdemDep) -> Response:
    return answer(plans.enable_plans(uow, who, customer_id, body.choices(), idem=idem, present=rq.present))


@router.post("/onboard", status_code=202, response_model=sch.OnboardAccepted, responses=responses(403, 409),
             summary="Connect, check GDAP and MCA, enable plans, then provision the users")
def onboard_customer(customer_id: IdPath, body: sch.OnboardCreate, who: PrincipalDep, uow: UowDep,
                     idem: IdemDep) -> Response:
    users = [BulkUser(u.to_input(), u.user_plan_id or "") for u in body.users]
    return answer(onboard.onboard(
        uow, who, customer_id, customer_plan_id=body.customer_plan_id, tenant_id=body.tenant_id,
        new_tenant=body.new_tenant.to_new_tenant() if body.new_tenant else None, plans=body.choices(),
        users=users, idem=idem, present=sch.present_onboarding))
