"""/v1/customers/{c}/notifications and /v1/service-providers/{sp}/notifications: who is emailed about what."""
from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import NO_QUERY, IdPath, PrincipalDep, UowDep, json
from api.problems import responses
from api.schemas import notifications as sch
from shared.notifications import recipients

router = APIRouter(tags=["notifications"], dependencies=[NO_QUERY])


@router.get("/v1/customers/{customer_id}/notifications", response_model=sch.RecipientsPublic,
            summary="The customer's recipients, or its reseller's default when it has none")
def get_customer(customer_id: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    return json(sch.present(recipients.customer_recipients(uow, who, customer_id)))


@router.put("/v1/customers/{customer_id}/notifications", response_model=sch.RecipientsPublic,
            responses=responses(403), summary="Replace the customer's own recipients (the password goes only here)")
def put_customer(customer_id: IdPath, body: sch.RecipientsUpdate, who: PrincipalDep, uow: UowDep) -> Response:
    return json(sch.present(recipients.set_customer_recipients(uow, who, customer_id, [str(e) for e in body.emails],
                                                               list(body.events))))


@router.delete("/v1/customers/{customer_id}/notifications", response_model=sch.RecipientsPublic,
               responses=responses(403), summary="Back to the reseller's default recipients")
def delete_customer(customer_id: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    return json(sch.present(recipients.clear_customer_recipients(uow, who, customer_id)))


@router.get("/v1/service-providers/{sp}/notifications", response_model=sch.RecipientsPublic,
            summary="The reseller's default recipients, for customers without their own")
def get_provider(sp: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    return json(sch.present(recipients.provider_recipients(uow, who, sp)))


@router.put("/v1/service-providers/{sp}/notifications", response_model=sch.RecipientsPublic,
            responses=responses(403), summary="Replace the reseller's default recipients (never sent a password)")
def put_provider(sp: IdPath, body: sch.RecipientsUpdate, who: PrincipalDep, uow: UowDep) -> Response:
    return json(sch.present(recipients.set_provider_recipients(uow, who, sp, [str(e) for e in body.emails],
                                                               list(body.events))))
