"""/v1/customers: customers, live tenant search and the live licence view."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import NO_QUERY, IdemDep, IdPath, PrincipalDep, UowDep, answer, json
from api.problems import responses
from api.schemas import access
from api.schemas import customers as sch
from shared.customers import licences, service, tenant
from shared.tenants import health

router = APIRouter(prefix="/v1/customers", tags=["customers"])
LIVE = responses(409, 502, 503)


@router.post("", status_code=201, response_model=sch.CustomerPublic, responses=responses(403),
             dependencies=[NO_QUERY], summary="Create a customer of a reseller the key can see")
def create_customer(body: sch.CustomerCreate, who: PrincipalDep, uow: UowDep, idem: IdemDep) -> Response:
    return answer(service.create_customer(uow, who, name=body.name, service_provider_id=body.service_provider_id,
                                          idem=idem, present=sch.customer_public))


@router.get("", response_model=sch.CustomerList, summary="Customers the key can see, by name")
def list_customers(who: PrincipalDep, uow: UowDep, query: Annotated[sch.CustomerListQuery, Query()]) -> Response:
    page = service.list_customers(uow, who, service_provider_id=query.service_provider_id, name_prefix=query.name,
                                  cursor=query.cursor, limit=query.limit)
    return json({"items": [sch.customer_public(c) for c in page.items], "next_cursor": page.next_cursor})


@router.get("/{customer_id}", response_model=sch.CustomerDetail, dependencies=[NO_QUERY],
            summary="One customer, its tenant and services")
def get_customer(customer_id: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    return json(sch.customer_public(service.get_customer(uow, who, customer_id)))


@router.get("/{customer_id}/tenant-search", response_model=sch.TenantSearchList, responses=responses(403, 502, 503),
            summary="Live Partner Center search by domain or company name (starts with)")
def search_tenants(customer_id: IdPath, who: PrincipalDep, uow: UowDep,
                   query: Annotated[sch.TenantSearchQuery, Query()]) -> Response:
    found = tenant.search_tenants(uow, who, customer_id, query.q.strip(), query.limit)
    return json({"items": [{"tenant_id": m.tenant_id, "company_name": m.company_name, "domain": m.domain}
                           for m in found]})


@router.get("/{customer_id}/licences", response_model=sch.LicenceList, responses=LIVE, dependencies=[NO_QUERY],
            summary="Live SKUs: total, consumed, free and reserved seats")
def get_licences(customer_id: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    seats = licences.licences(uow, who, customer_id)
    return json(sch.LicenceList(items=[sch.licence_public(s) for s in seats]).model_dump(mode="json"))


@router.get("/{customer_id}/access", response_model=access.TenantAccessPublic, responses=responses(404, 409),
            dependencies=[NO_QUERY],
            summary="Live check of the customer's tenant access (consent, GDAP status, roles, expiry), with fixes")
def get_access(customer_id: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    return json(access.present_access(health.customer_access(uow, who, customer_id)))
