"""/v1/requests: state, steps, attempts and errors; retry and cancel."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import NO_QUERY, IdemDep, IdPath, PrincipalDep, UowDep, answer, json
from api.problems import responses
from api.schemas import requests as rq
from shared.requests import access

router = APIRouter(prefix="/v1/requests", tags=["requests"])


@router.get("", response_model=rq.RequestList, summary="Requests the key can see, newest first")
def list_requests(who: PrincipalDep, uow: UowDep, query: Annotated[rq.RequestListQuery, Query()]) -> Response:
    page = access.list_requests(uow, who, state=query.state, customer_id=query.customer_id, kind=query.kind,
                                user_id=query.user_id, parent_id=query.parent_id, cursor=query.cursor,
                                limit=query.limit)
    return json({"items": [rq.present(r) for r in page.items], "next_cursor": page.next_cursor})


@router.get("/{request_id}", response_model=rq.RequestPublic, dependencies=[NO_QUERY],
            summary="State, steps, attempts, the failing step")
def get_request(request_id: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    return json(rq.present_detail(access.get_request(uow, who, request_id)))


@router.post("/{request_id}/retry", status_code=202, response_model=rq.RequestPublic, responses=responses(409),
             dependencies=[NO_QUERY],
             summary="Re-run a failed or blocked request from its failed step (409 request_not_retryable)")
def retry(request_id: IdPath, who: PrincipalDep, uow: UowDep, idem: IdemDep) -> Response:
    return answer(access.retry(uow, who, request_id, idem=idem, present=rq.present))


@router.post("/{request_id}/cancel", response_model=rq.RequestPublic, responses=responses(409),
             dependencies=[NO_QUERY], summary="Stop a queued, waiting or blocked request (409 request_not_cancellable)")
def cancel(request_id: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    return json(rq.present(access.cancel(uow, who, request_id)))
