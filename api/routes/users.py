"""Users: /v1/customers/{c}/users (create, list, bulk) and /v1/users/{u} (read, provision, deprovision)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from api import bodies
from api.deps import NO_QUERY, IdemDep, IdPath, PrincipalDep, UowDep, answer, json
from api.problems import responses
from api.schemas import requests as rq
from api.schemas import users as sch
from shared.users import bulk, provisioning, service

router = APIRouter(prefix="/v1", tags=["users"])
CHECKS = responses(409, 502, 503)  # 502/503: a customer's first seat check reads its SKUs live


@router.post("/customers/{customer_id}/users", status_code=201, response_model=sch.UserPublic,
             responses=responses(409), dependencies=[NO_QUERY], summary="Create a user (409 upn_conflict)")
def create_user(customer_id: IdPath, body: sch.UserCreate, who: PrincipalDep, uow: UowDep,
                idem: IdemDep) -> Response:
    return answer(service.create_user(uow, who, customer_id, body.to_input(), idem=idem, present=sch.present))


@router.get("/customers/{customer_id}/users", response_model=sch.UserList, summary="The customer's users, by UPN")
def list_users(customer_id: IdPath, who: PrincipalDep, uow: UowDep,
               query: Annotated[sch.UserListQuery, Query()]) -> Response:
    page = service.list_users(uow, who, customer_id, upn_prefix=query.upn, state=query.state,
                              service_state=query.service_state, user_plan_id=query.user_plan_id,
                              cursor=query.cursor, limit=query.limit)
    return json({"items": [sch.present(u) for u in page.items], "next_cursor": page.next_cursor})


@router.post("/customers/{customer_id}/users:bulk", status_code=202, response_model=sch.BulkAccepted,
             responses=CHECKS, dependencies=[NO_QUERY], openapi_extra=bodies.documented(sch.UsersBulkCreate),
             summary="Many users and their plan at once: all or nothing, one request per user")
async def bulk_create(customer_id: IdPath, request: Request, who: PrincipalDep, uow: UowDep,
                      idem: IdemDep) -> Response:
    body = await bodies.parsed(request, sch.UsersBulkCreate)  # up to thousands of users: not on the event loop
    bodies.check_bulk_size(len(body.users))

    def accept() -> Response:
        users = [bulk.BulkUser(u.to_input(), body.plan_of(u)) for u in body.users]
        return answer(bulk.bulk_provision(uow, who, customer_id, users, idem=idem, present=sch.present_bulk))
    return await run_in_threadpool(accept)


@router.get("/users/{user_id}", response_model=sch.UserPublic, dependencies=[NO_QUERY], summary="One user")
def get_user(user_id: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    return json(sch.present(service.get_user(uow, who, user_id)))


@router.put("/users/{user_id}/services/microsoft-online", status_code=202, response_model=sch.ProvisionAccepted,
            responses=CHECKS, dependencies=[NO_QUERY],
            summary="Provision the user with a plan (or change its plan); 409 tenant_not_connected, mca_not_signed, "
                    "request_in_progress, adoption_requires_reseller, plan_not_enabled, plan_limit_reached (customer "
                    "keys), no_free_licences (checked in that order)")
def provision(user_id: IdPath, body: sch.ProvisionUpdate, who: PrincipalDep, uow: UowDep, idem: IdemDep) -> Response:
    return answer(provisioning.provision_user(uow, who, user_id, body.user_plan_id, idem=idem,
                                              present=_present_provisioning, reset_password=body.reset_password))


@router.delete("/users/{user_id}/services/microsoft-online", status_code=202, response_model=rq.RequestPublic,
               responses=CHECKS, summary="Deprovision: remove licences, then disable (or delete) the user; 409 "
                                         "adoption_requires_reseller for a customer key on an account the engine "
                                         "did not create")
def deprovision(user_id: IdPath, who: PrincipalDep, uow: UowDep, idem: IdemDep,
                query: Annotated[sch.DeprovisionQuery, Query()]) -> Response:
    return answer(provisioning.deprovision_user(uow, who, user_id, delete_user=query.delete_user, idem=idem,
                                                present=rq.present))


def _present_provisioning(result: provisioning.Provisioning) -> dict[str, object]:
    return {"request": rq.present(result.request), "temporary_password": result.temporary_password,
            "temporary_password_applies": result.password_applies}
