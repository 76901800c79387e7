"""login.microsoftonline.com: OpenID discovery, the v2.0 token endpoint (client credentials, refresh token,
device code) and the device authorization endpoint; customer tenants need the app's consent (emulator.access)."""
from __future__ import annotations

import base64
import binascii
import hmac
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import orjson

from .. import access
from ..errors import ApiError
from ..http import Request, Response, json_response, route
from ..tokens import RESOURCES
from ..world import Partner

if TYPE_CHECKING:
    from ..app import Emulator

_GENERIC_TENANTS = frozenset({"common", "organizations", "consumers"})
_USER_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEVICE_CODE_LIFETIME_S = 900
# Microsoft asks clients to poll every 5 s; here a test or a person approves through the control API,
# so 1 s keeps their wait short.
DEVICE_CODE_INTERVAL_S = 1


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


def _resource(scope: str, *, delegated: bool = False) -> str:
    requested = [s for s in scope.split() if s not in _USER_SCOPES]
    suffixes = ("/.default", "/user_impersonation") if delegated else ("/.default",)
    if len(requested) != 1 or not requested[0].endswith(suffixes):
        raise _login_error(400, "invalid_scope", "1002012",
                           f"The provided value for scope {scope} is not valid. Client credential flows must have "
                           "a scope value with /.default suffixed to the resource identifier (application ID URI).")
    resource = requested[0].rsplit("/", 1)[0].rstrip("/")
    if resource not in RESOURCES:
        raise _login_error(400, "invalid_resource", "500011",
                           f"The resource principal named {resource} was not found in the tenant.")
    return resource


def _app_in_tenant(em: Emulator, client_id: str, key: str, tenant_id: str) -> Partner:
    """The partner app, if it exists in the directory: its own tenant, or a customer tenant that is ready
    for sign-ins (new tenants take a while) and where the app's consent has taken effect."""
    partner = em.world.partners.get(client_id)
    if partner is None:
        raise access.app_not_found(client_id, key)
    if tenant_id == partner.tenant_id:
        return partner
    tenant = em.world.tenants.get(tenant_id)
    if tenant is None or tenant.token_ready_at > em.clock.time():
        raise access.app_not_found(client_id, key)
    refused = access.missing_consent(tenant.consents, client_id, key, em.clock.time())
    if refused is not None:
        raise refused
    return partner


async def token(em: Emulator, req: Request) -> Response:
    if em.faults.token_fails():
        em.stats.count("token_failures", None)
        raise _login_error(503, "temporarily_unavailable", "90033",
                           "A transient error has occurred. Please try again.")
    form = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
    grant = form.get("grant_type", "")
    if grant not in ("client_credentials", "refresh_token", DEVICE_CODE_GRANT):
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
    partner = _app_in_tenant(em, client_id, key, tenant_id)
    # A device-code sign-in is a public client's: it sends no secret (one it sends must be right).
    if (secret or grant != DEVICE_CODE_GRANT) and not hmac.compare_digest(secret.encode(),
                                                                         partner.client_secret.encode()):
        raise _login_error(401, "invalid_client", "7000215",
                           "Invalid client secret provided. Ensure the secret being sent in the request is the "
                           f"client secret value, not the client secret ID, for a secret added to app '{client_id}'.")
    refresh_token = None
    if grant == DEVICE_CODE_GRANT:
        resource = _redeem_device_code(em, form.get("device_code", ""), client_id, tenant_id)
        refresh_token = em.world.issue_refresh_token(client_id)
    else:
        resource = _resource(form.get("scope", ""), delegated=grant == "refresh_token")
    tenant = em.world.tenants.get(tenant_id)
    if tenant_id != partner.tenant_id and tenant is not None:
        refused = access.missing_grant(tenant.consents[client_id], client_id, resource)
        if refused is not None:
            raise refused
    if grant == "refresh_token":
        refresh_token = _check_refresh_token(em, form.get("refresh_token", ""), client_id)
    lifetime = int(em.faults.values["token_lifetime_s"])
    issued = em.signer.issue(tenant_id=tenant_id, resource=resource, client_id=client_id, lifetime_s=lifetime,
                             user=refresh_token is not None)
    em.stats.count("tokens_issued", None)
    answer: dict[str, Any] = {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                              "access_token": issued}
    if refresh_token is not None:
        info = {"uid": client_id, "utid": tenant_id}
        answer.update(scope=f"{resource}/.default", refresh_token=refresh_token,
                      client_info=base64.urlsafe_b64encode(orjson.dumps(info)).decode().rstrip("="))
    return json_response(answer, headers={"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})


def _check_refresh_token(em: Emulator, presented: str, client_id: str) -> str:
    owner, revoked = em.world.refresh_tokens.get(presented, ("", False))
    if not hmac.compare_digest(owner.encode(), client_id.encode()):
        raise _login_error(400, "invalid_grant", "9002313", "Invalid request. Request is malformed or invalid.")
    if revoked:
        raise _login_error(400, "invalid_grant", "50173",
                           "The provided grant has expired due to it being revoked, a fresh auth token is needed. "
                           "The user might have changed or reset their password.")
    return presented


async def device_code(em: Emulator, req: Request) -> Response:
    """Start a device-code sign-in: the user code to enter, and the device code msal then polls with."""
    form = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
    key = req.params["tenant"]
    client_id = form.get("client_id", "")
    if not client_id:
        raise _login_error(400, "invalid_request", "900144",
                           "The request body must contain the following parameter: 'client_id'.")
    tenant_id = _tenant_id(em, key)
    if tenant_id is None:
        raise _tenant_not_found(key)
    _app_in_tenant(em, client_id, key, tenant_id)
    resource = _resource(form.get("scope", ""), delegated=True)
    code, pending = em.world.start_device_code(client_id, tenant_id, resource, now=em.clock.time(),
                                               lifetime_s=DEVICE_CODE_LIFETIME_S)
    uri = f"{req.root}/devicelogin"
    return json_response({
        "user_code": pending.user_code, "device_code": code, "verification_uri": uri,
        "expires_in": DEVICE_CODE_LIFETIME_S, "interval": DEVICE_CODE_INTERVAL_S,
        "message": f"To sign in, use a web browser to open the page {uri} and enter the code {pending.user_code} "
                   "to authenticate.",
    })


def _redeem_device_code(em: Emulator, code: str, client_id: str, tenant_id: str) -> str:
    """The resource of an approved device code (used once); the OAuth device-flow errors otherwise."""
    pending = em.world.device_codes.get(code)
    if pending is None or pending.client_id != client_id or pending.tenant_id != tenant_id:
        raise _login_error(400, "invalid_grant", "70000",
                           "The provided value for the input parameter 'device_code' is not valid.")
    if pending.expires_at <= em.clock.time():
        del em.world.device_codes[code]
        raise _login_error(400, "expired_token", "70020",
                           "The provided value for the input parameter 'device_code' is not valid. This device "
                           "code has expired.")
    if pending.state == "pending":
        raise _login_error(400, "authorization_pending", "70016",
                           "OAuth 2.0 device flow error. Authorization is pending. Continue polling.")
    del em.world.device_codes[code]
    if pending.state == "declined":
        raise _login_error(400, "authorization_declined", "70000", "The user declined the sign-in request.")
    return pending.resource


ROUTES = [
    route("GET", "/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration, "login"),
    route("POST", "/{tenant}/oauth2/v2.0/token", token, "login"),
    route("POST", "/{tenant}/oauth2/v2.0/devicecode", device_code, "login"),
]
