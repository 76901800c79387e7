"""/v1/service-providers: resellers and their Azure AD and Microsoft Online services."""
from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import NO_QUERY, IdemDep, IdPath, PrincipalDep, UowDep, answer, json
from api.problems import responses
from api.schemas import access
from api.schemas import requests as rq
from api.schemas import service_providers as sch
from shared.providers import health, service
from shared.providers.service import CredentialsInput, PartnerCenterInput

router = APIRouter(prefix="/v1/service-providers", tags=["service providers"], dependencies=[NO_QUERY])


@router.post("", status_code=201, response_model=sch.ServiceProviderPublic, responses=responses(403, 409),
             summary="Create a reseller (operator)")
def create_provider(body: sch.ServiceProviderCreate, who: PrincipalDep, uow: UowDep, idem: IdemDep) -> Response:
    pc = body.partner_center
    return answer(service.create_provider(
        uow, who, name=body.name, kind=body.kind, idem=idem, present=sch.present,
        partner_center=PartnerCenterInput(pc.tenant_id, pc.client_id, pc.client_secret, pc.refresh_token)))


@router.get("", response_model=sch.ServiceProviderList, summary="Resellers the key can see")
def list_providers(who: PrincipalDep, uow: UowDep) -> Response:
    return json({"items": [sch.present(p) for p in service.list_providers(uow, who)]})


@router.get("/{sp}", response_model=sch.ServiceProviderPublic, summary="One reseller")
def get_provider(sp: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    return json(sch.present(service.get_provider(uow, who, sp)))


@router.get("/{sp}/services", response_model=sch.ProviderServiceList, summary="Both services with state")
def list_services(sp: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    states = service.services(uow, who, sp)
    return json(sch.ProviderServiceList(items=[sch.ProviderServicePublic(
        service=s.service, state=s.state, request_id=s.request_id, plans=s.plans)  # type: ignore[arg-type]
        for s in states]).model_dump(mode="json"))


@router.put("/{sp}/services/azure-ad", status_code=202, response_model=rq.RequestPublic,
            responses=responses(403, 409), summary="Provision the reseller's Azure AD service (operator)")
def provision_azure_ad(sp: IdPath, body: sch.AzureAdServiceUpdate, who: PrincipalDep, uow: UowDep,
                       idem: IdemDep) -> Response:
    return answer(service.provision_azure_ad(uow, who, sp, body.customer_plans, idem=idem, present=rq.present))


@router.put("/{sp}/services/microsoft-online", status_code=202, response_model=rq.RequestPublic,
            responses=responses(403, 409),
            summary="Provision the reseller's Microsoft Online service (operator; after Azure AD)")
def provision_microsoft_online(sp: IdPath, body: sch.MicrosoftOnlineServiceUpdate, who: PrincipalDep,
                               uow: UowDep, idem: IdemDep) -> Response:
    return answer(service.provision_microsoft_online(uow, who, sp, body.user_plans, idem=idem,
                                                     present=rq.present))


@router.post("/{sp}/credentials", response_model=sch.CredentialsRotated, responses=responses(404, 409),
             summary="Rotate the Partner Center client secret and/or App+User refresh token (never echoed)")
def rotate_credentials(sp: IdPath, body: sch.CredentialsUpdate, who: PrincipalDep, uow: UowDep,
                       idem: IdemDep) -> Response:
    return answer(service.rotate_credentials(uow, who, sp, CredentialsInput(body.client_secret, body.refresh_token),
                                             idem=idem, present=sch.present_rotated))


@router.get("/{sp}/health", response_model=access.ProviderHealthPublic, responses=responses(404),
            summary="Live check of the reseller's Microsoft access: what works, what does not, and the fix")
def provider_health(sp: IdPath, who: PrincipalDep, uow: UowDep) -> Response:
    return json(access.present_health(health.provider_health(uow, who, sp)))
