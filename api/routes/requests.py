"""/v1/requests: state, steps, attempts and errors; retry and cancel."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from api.deps import DEFAULT_PAGE, Cursor, IdemDep, IdPath, Limit, PrincipalDep, UowDep, answer, json
from api.problems import responses
from api.schemas import requests as rq
from api.schemas.common import Id
from shared.requests import access

router = APIRouter(prefix="/v1/requests", tags=["requests"])
State = Literal["queued", "running", "waiting", "blocked", "succeeded", "failed", "cancelled"]
# Spelled out for the document; a test holds it equal to shared.requests.kinds.STEPS.
Kind = Literal["provider.azure_ad", "provider.microsoft_online", "customer.azure_ad", "customer.microsoft_online",
               "customer.onboard", "customer.sync", "user.provision", "user.deprovision"]


@router.get("", response_model=rq.RequestList, summary="Requests the key can see, newest first")
def list_requests(who: PrincipalDep, uow: UowDep, cursor: Cursor = None, limit: Limit = DEFAULT_PAGE,
                  state: Annotated[State | None, Query()] = None,
                  customer_id: Annotated[Id | None, Query()] = None,
                  kind: Annotated[Kind | None, Query()] = None,
                  user_id: Annotated[Id | None, Query()] = None,
                  parent_id: Annotated[Id | None, Query()] = None) -> Response:
    page = access.list_requests(uow, who, state=state, customer_id=customer_id, kind=kind, user_id=user_id,
                                parent_id=parent_id, cursor=cursor, limit=limit)
    return json({"items": [rq.present(r) for r in page.items], "next_cursor": page.next_cursor})


@router.get("/{request_id}", response_model=rq.RequestPublic, summary="State, steps, attempts, the failing step")
def get_request(request_id: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    return json(rq.present_detail(access.get_request(uow, who, request_id)))


@router.post("/{request_id}/retry", status_code=202, response_model=rq.RequestPublic, responses=responses(409),
             summary="Re-run a failed or blocked request from its failed step (409 request_not_retryable)")
def retry(request_id: IdPath, who: PrincipalDep, uow: UowDep, idem: IdemDep) -> Response:
    return answer(access.retry(uow, who, request_id, idem=idem, present=rq.present))


@router.post("/{request_id}/cancel", response_model=rq.RequestPublic, responses=responses(409),
             summary="Stop a queued, waiting or blocked request (409 request_not_cancellable)")
def cancel(request_id: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    return json(rq.present(access.cancel(uow, who, request_id)))
