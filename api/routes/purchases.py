"""/v1/customers/{c}/purchase-policy, /v1/service-providers/{sp}/purchase-policy, /v1/customers/{c}/purchases."""
from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import NO_QUERY, IdPath, PrincipalDep, UowDep, json
from api.problems import responses
from api.schemas import purchases as sch
from shared.purchases import service

router = APIRouter(tags=["purchases"], dependencies=[NO_QUERY])


def _change(body: sch.PolicyUpdate) -> service.PolicyChange:
    return service.PolicyChange(body.enabled, body.max_units_per_day, body.max_units_per_order)


@router.get("/v1/customers/{customer_id}/purchase-policy", response_model=sch.PolicyPublic,
            summary="May the engine buy seats for the customer (its own policy, else its reseller's default)")
def get_customer_policy(customer_id: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    return json(sch.present_policy(service.customer_policy(uow, who, customer_id)))


@router.put("/v1/customers/{customer_id}/purchase-policy", response_model=sch.PolicyPublic,
            responses=responses(403, 409),
            summary="Set the customer's purchase policy (direct resellers); blocked requests it allows resume")
def put_customer_policy(customer_id: IdPath, body: sch.PolicyUpdate, who: PrincipalDep, uow: UowDep) -> Response:
    return json(sch.present_policy(service.set_customer_policy(uow, who, customer_id, _change(body))))


@router.get("/v1/service-providers/{sp}/purchase-policy", response_model=sch.PolicyPublic,
            summary="The reseller's default purchase policy, for customers without their own")
def get_provider_policy(sp: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    return json(sch.present_policy(service.provider_policy(uow, who, sp)))


@router.put("/v1/service-providers/{sp}/purchase-policy", response_model=sch.PolicyPublic,
            responses=responses(403, 409), summary="Set the reseller's default purchase policy (direct resellers)")
def put_provider_policy(sp: IdPath, body: sch.PolicyUpdate, who: PrincipalDep, uow: UowDep) -> Response:
    return json(sch.present_policy(service.set_provider_policy(uow, who, sp, _change(body))))


@router.get("/v1/customers/{customer_id}/purchases", response_model=sch.PurchaseList,
            summary="Seats bought for the customer, newest first")
def list_purchases(customer_id: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    return json(sch.present_purchases(service.purchases(uow, who, customer_id)))
