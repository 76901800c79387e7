"""/v1/customers/{c}/sync-policy and /sync."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response

from api.deps import NO_QUERY, IdemDep, IdPath, PrincipalDep, UowDep, answer, json
from api.problems import responses
from api.schemas import requests as rq
from api.schemas import sync as sch
from shared.sync import policy

router = APIRouter(prefix="/v1/customers/{customer_id}", tags=["sync"], dependencies=[NO_QUERY])


@router.get("/sync-policy", response_model=sch.SyncPolicyPublic, summary="The sync policy (defaults if never set)")
def get_policy(customer_id: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    return json(sch.present(policy.get_policy(uow, who, customer_id)))


@router.put("/sync-policy", response_model=sch.SyncPolicyPublic, responses=responses(403),
            summary="Replace the sync policy")
def put_policy(customer_id: IdPath, body: sch.SyncPolicyUpdate, who: PrincipalDep, uow: UowDep) -> Response:
    return json(sch.present(policy.put_policy(uow, who, customer_id, enabled=body.enabled,
                                              interval_minutes=body.interval_minutes,
                                              import_unknown_users=body.import_unknown_users, master=body.master)))


@router.post("/sync", status_code=202, response_model=rq.RequestPublic, responses=responses(403, 409),
             summary="Sync now (the active sync request if one is already queued or running)")
def sync_now(customer_id: IdPath, who: PrincipalDep, uow: UowDep, idem: IdemDep,
             body: Annotated[sch.SyncCreate | None, Body()] = None) -> Response:
    return answer(policy.sync_now(uow, who, customer_id, full=body.full if body else False, idem=idem,
                                  present=rq.present))
