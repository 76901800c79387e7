"""Partner onboarding (secure application model): a partner admin signs in once with a device code, and the
App+User refresh token msal gets is kept, encrypted, on the reseller.

msal's device flow as Microsoft documents it (../shared/MICROSOFT.md): `initiate_device_flow` gives a code
and a URL for the person, `acquire_token_by_device_flow` polls until they have signed in (or the code
expires). The partner app must allow public client flows for this (Microsoft's setting, not ours).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msal

from shared.db.models import ServiceProvider
from shared.db.uow import UnitOfWork
from shared.microsoft.factory import build_http_client
from shared.providers.health import reseller_checks
from shared.providers.service import CredentialsInput, store_credentials
from shared.reading import reading
from shared.settings import Settings
from shared.tenants.health import Check

ACTOR = "cli:partner consent"
AppFactory = Callable[..., Any]


class ConsentFailed(Exception):
    """The sign-in did not give a refresh token; the message says why (Microsoft's words, no token)."""


@dataclass(frozen=True)
class Consented:
    provider_name: str
    scope: str
    resumed: list[str]
    checks: list[Check]


def consent_partner(provider_id: str, *, settings: Settings, show: Callable[[str], None],
                    app_factory: AppFactory = msal.PublicClientApplication) -> Consented:
    """Run the device flow against the reseller's partner tenant (`show` gets the code and URL, then this
    waits), store the refresh token, and check what access it gives."""
    with reading(UnitOfWork()) as s:
        provider = s.get(ServiceProvider, provider_id)
        if provider is None:
            raise LookupError(f"no service provider {provider_id}")
    with build_http_client(settings) as http:
        app = app_factory(provider.pc_client_id, authority=f"{settings.ms_login_url}/{provider.pc_tenant_id}",
                          http_client=http, instance_discovery=False)
        flow = app.initiate_device_flow(scopes=[settings.ms_partner_center_scope])
        if "user_code" not in flow:
            raise ConsentFailed(f"Microsoft did not start the sign-in: {_why(flow)}")
        show(str(flow["message"]))
        result = app.acquire_token_by_device_flow(flow)
    if not result.get("refresh_token"):
        raise ConsentFailed(f"the sign-in did not finish: {_why(result)}")
    with UnitOfWork() as uow:
        row = uow.session.get(ServiceProvider, provider_id)
        if row is None:
            raise LookupError(f"service provider {provider_id} was deleted meanwhile")
        rotated = store_credentials(uow, row, CredentialsInput(refresh_token=str(result["refresh_token"])),
                                    actor=ACTOR)
        name, resumed = row.name, rotated.resumed
        uow.commit()
    with reading(UnitOfWork()) as s:
        stored = s.get(ServiceProvider, provider_id)
        assert stored is not None
    return Consented(name, str(result.get("scope") or ""), resumed, reseller_checks(stored))


def _why(answer: dict[str, Any]) -> str:
    # Microsoft's error and the first line of its description: never the answer itself (it may hold tokens).
    error = str(answer.get("error") or "no error given")
    description = str(answer.get("error_description") or "").splitlines()[0:1]
    return f"{error}: {description[0]}" if description else error
