"""login.microsoftonline.com: OpenID discovery and the v2.0 token endpoint (client credentials, refresh)."""
from __future__ import annotations

import base64
import binascii
import hmac
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson

from ..errors import ApiError
from ..http import Request, Response, json_response, route
from ..tokens import RESOURCES
from ..world import Partner

if TYPE_CHECKING:
    from ..app import Emulator

_GENERIC_TENANTS = frozenset({"common", "organizations", "consumers"})
_USER_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})


def _login_error(status: int, error: str, number: str, message: str) -> ApiError:
    return ApiError(status, error, message, detail_code=number)


def _tenant_id(em: Emulator, key: str) -> str | None:
    """The directory id behind an authority segment: a tenant id, one of its domains, or a partner's."""
    tenant = em.world.resolve_tenant(key)
    if tenant is not None:
        return tenant.tenant_id
    if any(p.tenant_id == key for p in em.world.partners.values()):
        return key
    return None


async def openid_configuration(em: Emulator, req: Request) -> Response:
    key = req.params["tenant"]
    tid = key if key in _GENERIC_TENANTS else _tenant_id(em, key)
    if tid is None:
        raise _tenant_not_found(key)
    base = f"{req.root}/{key}"
    issuer_tid = "{tenantid}" if key in _GENERIC_TENANTS else tid
    return json_response({
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{req.root}/{issuer_tid}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{req.root}/oidc/userinfo",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nonce", "tid", "ver", "oid"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    })


def _tenant_not_found(key: str) -> ApiError:
    return _login_error(400, "invalid_tenant", "90002",
                        f"Tenant '{key}' not found. Check to make sure you have the correct tenant ID and are "
                        "signing into the correct cloud.")


def _client_credentials(req: Request, form: dict[str, str]) -> tuple[str, str]:
    auth = req.header(b"authorization") or ""
    if auth.lower().startswith("basic "):
        try:
            client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            client_id, secret = "", ""
        return client_id, secret
    return form.get("client_id", ""), form.get("client_secret", "")


def _resource(scope: str) -> str:
    requested = [s for s in scope.split() if s not in _USER_SCOPES]
    if len(requested) != 1 or not requested[0].endswith("/.default"):
        raise _login_error(400, "invalid_scope", "1002012",
                           f"The provided value for scope {scope} is not valid. Client credential flows must have "
                           "a scope value with /.default suffixed to the resource identifier (application ID URI).")
    resource = requested[0].removesuffix("/.default").rstrip("/")
    if resource not in RESOURCES:
        raise _login_error(400, "invalid_resource", "500011",
                           f"The resource principal named {resource} was not found in the tenant.")
    return resource


async def token(em: Emulator, req: Request) -> Response:
    if em.faults.token_fails():
        em.stats.count("token_failures", None)
        raise _login_error(503, "temporarily_unavailable", "90033",
                           "A transient error has occurred. Please try again.")
    form = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
    grant = form.get("grant_type", "")
    if grant not in ("client_credentials", "refresh_token"):
        raise _login_error(400, "unsupported_grant_type", "70003",
                           f"The app requested an unsupported grant type '{grant}'.")
    key = req.params["tenant"]
    client_id, secret = _client_credentials(req, form)
    if not client_id:
        raise _login_error(400, "invalid_request", "900144",
                           "The request body must contain the following parameter: 'client_id'.")
    tenant_id = _tenant_id(em, key)
    if tenant_id is None:
        raise _tenant_not_found(key)
    partner = em.world.partners.get(client_id)
    if partner is None or not _may_sign_into(em, partner, tenant_id):
        raise _login_error(400, "unauthorized_client", "700016",
                           f"Application with identifier '{client_id}' was not found in the directory '{key}'. "
                           "This can happen if the application has not been installed by the administrator of the "
                           "tenant or consented to by any user in the tenant. You may have sent your "
                           "authentication request to the wrong tenant.")
    if not hmac.compare_digest(secret.encode(), partner.client_secret.encode()):
        raise _login_error(401, "invalid_client", "7000215",
                           "Invalid client secret provided. Ensure the secret being sent in the request is the "
                           f"client secret value, not the client secret ID, for a secret added to app '{client_id}'.")
    resource = _resource(form.get("scope", ""))
    if grant == "refresh_token" and not hmac.compare_digest(form.get("refresh_token", "").encode(),
                                                            partner.refresh_token.encode()):
        raise _login_error(400, "invalid_grant", "9002313", "Invalid request. Request is malformed or invalid.")
    lifetime = int(em.faults.values["token_lifetime_s"])
    access = em.signer.issue(tenant_id=tenant_id, resource=resource, client_id=client_id, lifetime_s=lifetime,
                             user=grant == "refresh_token")
    em.stats.count("tokens_issued", None)
    answer: dict[str, Any] = {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                              "access_token": access}
    if grant == "refresh_token":
        info = {"uid": client_id, "utid": tenant_id}
        answer.update(scope=f"{resource}/.default", refresh_token=partner.refresh_token,
                      client_info=base64.urlsafe_b64encode(orjson.dumps(info)).decode().rstrip("="))
    return json_response(answer, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})


def _may_sign_into(em: Emulator, partner: Partner, tenant_id: str) -> bool:
    """Its own tenant, or any customer tenant once it is ready for sign-ins (new tenants take a while)."""
    if tenant_id == partner.tenant_id:
        return True
    tenant = em.world.tenants.get(tenant_id)
    return tenant is not None and tenant.token_ready_at <= em.clock.time()


ROUTES = [
    route("GET", "/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration, "login"),
    route("POST", "/{tenant}/oauth2/v2.0/token", token, "login"),
]
