"""/v1/customers/{c}/agreement: the Microsoft Customer Agreement, live."""
from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import NO_QUERY, IdemDep, IdPath, PrincipalDep, UowDep, answer, json
from api.problems import responses
from api.schemas import agreements as sch
from shared.agreements import service
from shared.agreements.service import Contact

router = APIRouter(prefix="/v1/customers/{customer_id}/agreement", tags=["agreement"], dependencies=[NO_QUERY])


@router.get("", response_model=sch.AgreementPublic, responses=responses(409, 502, 503),
            summary="Live MCA status from Partner Center (409 tenant_not_connected)")
def read_agreement(customer_id: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    return json(sch.present(service.read_agreement(uow, who, customer_id)))


@router.post("", status_code=201, response_model=sch.AgreementPublic, responses=responses(403, 409, 502, 503),
             summary="Record the MCA in Partner Center; requests blocked on it resume")
def record_agreement(customer_id: IdPath, body: sch.AgreementCreate, who: PrincipalDep, uow: UowDep,
                     idem: IdemDep) -> Response:
    contact = Contact(body.first_name, body.last_name, str(body.email), body.phone)
    return answer(service.record_agreement(uow, who, customer_id, contact, body.agreed_iso(), idem=idem,
                                           present=sch.present))
