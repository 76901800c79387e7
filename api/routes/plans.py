"""/v1/customer-plans and /v1/user-plans."""
from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import NO_QUERY, IdemDep, PrincipalDep, UowDep, answer, json
from api.problems import responses
from api.schemas import plans as sch
from shared.plans import service
from shared.plans.service import LicenceInput

router = APIRouter(prefix="/v1", tags=["plans"], dependencies=[NO_QUERY])


@router.post("/customer-plans", status_code=201, response_model=sch.CustomerPlanPublic,
             responses=responses(403, 409), summary="Create a customer plan (operator)")
def create_customer_plan(body: sch.CustomerPlanCreate, who: PrincipalDep, uow: UowDep, idem: IdemDep) -> Response:
    return answer(service.create_customer_plan(uow, who, name=body.name, description=body.description, idem=idem,
                                               present=sch.present_customer_plan))


@router.get("/customer-plans", response_model=sch.CustomerPlanList, summary="Customer plans the key can use")
def list_customer_plans(who: PrincipalDep, uow: UowDep) -> Response:
    return json({"items": [sch.present_customer_plan(p) for p in service.list_customer_plans(uow, who)]})


@router.post("/user-plans", status_code=201, response_model=sch.UserPlanPublic, responses=responses(403, 409),
             summary="Create a user plan (operator)")
def create_user_plan(body: sch.UserPlanCreate, who: PrincipalDep, uow: UowDep, idem: IdemDep) -> Response:
    licences = [LicenceInput(lic.sku_part_number, list(lic.disabled_service_plans), lic.offer_id)
                for lic in body.licences]
    return answer(service.create_user_plan(uow, who, name=body.name, description=body.description,
                                           licences=licences, idem=idem, present=sch.present_user_plan))


@router.get("/user-plans", response_model=sch.UserPlanList, summary="User plans the key can use")
def list_user_plans(who: PrincipalDep, uow: UowDep) -> Response:
    return json({"items": [sch.present_user_plan(p) for p in service.list_user_plans(uow, who)]})
