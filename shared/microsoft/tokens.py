"""Access tokens from msal: one app per (partner credential, tenant), cached, thread-safe."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import httpx
import msal

from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.errors import AuthFailed, MicrosoftError, Transient, scrub, sign_in_error
from shared.settings import Settings

# Bounds memory when one partner reaches thousands of customer tenants.
MAX_APPS = 4096
# msal counts a token within 5 minutes of expiry as expired; the refresh-token path does the same.
EXPIRY_MARGIN_S = 300.0
_TRANSIENT_AUTH_ERRORS = {"temporarily_unavailable", "server_error"}

AppFactory = Callable[..., Any]


class TokenProvider:
    """`token(credential, tenant_id, scope)` → a bearer token for that tenant and resource."""

    def __init__(self, settings: Settings, http_client: httpx.Client, *,
                 app_factory: AppFactory = msal.ConfidentialClientApplication,
                 clock: Callable[[], float] = time.time) -> None:
        self._login_url = settings.ms_login_url
        self._pc_scope = settings.ms_partner_center_scope
        self._http = http_client
        self._app_factory = app_factory
        self._clock = clock
        self._lock = threading.Lock()
        self._apps: OrderedDict[tuple[PartnerCredential, str], tuple[Any, threading.Lock]] = OrderedDict()
        self._user_tokens: dict[tuple[PartnerCredential, str, str], tuple[str, float]] = {}
        self._app_tokens: dict[tuple[PartnerCredential, str, str], tuple[str, float]] = {}
        # Microsoft may rotate the refresh token; the newest one lives here for this process.
        self._refresh_tokens: dict[PartnerCredential, str] = {}

    def token(self, credential: PartnerCredential, tenant_id: str, scope: str) -> str:
        if credential.refresh_token and scope == self._pc_scope:
            return self._user_token(credential, tenant_id, scope)
        key = (credential, tenant_id, scope)
        # Ours first: msal's own cache lookup (a search of its token cache, under its lock) came to 1.3%
        # of a worker's CPU, for every call to Microsoft. Same expiry margin as msal's.
        cached = self._app_tokens.get(key)
        if cached and cached[1] > self._clock():
            return cached[0]
        app, lock = self._app(credential, tenant_id)
        # One acquisition per app at a time: concurrent cache misses would each ask for a token.
        with lock:
            result = _call_msal(lambda: app.acquire_token_for_client(scopes=[scope]), credential, tenant_id)
        token = self._checked(result, credential, tenant_id)
        expires_in = float(result.get("expires_in") or 0)
        with self._lock:
            self._app_tokens[key] = (token, self._clock() + expires_in - EXPIRY_MARGIN_S)
            while len(self._app_tokens) > MAX_APPS:
                del self._app_tokens[next(iter(self._app_tokens))]
        return token

    def forget(self, credential: PartnerCredential, tenant_id: str) -> None:
        """Drop cached tokens for this credential and tenant (Microsoft refused one before expiry)."""
        with self._lock:
            entry = self._apps.get((credential, tenant_id))
            for tokens in (self._user_tokens, self._app_tokens):
                for key in [k for k in tokens if k[0] == credential and k[1] == tenant_id]:
                    del tokens[key]
        if entry is not None:
            with entry[1]:
                entry[0].remove_tokens_for_client()

    def _checked(self, result: Any, credential: PartnerCredential, tenant_id: str) -> str:
        """The token msal got, or the typed refusal; after a refusal the app is dropped, because msal answers
        a refused request again from its own cache for a minute (a consent taking effect would go unseen)."""
        try:
            return _access_token(result, credential, tenant_id)
        except AuthFailed:
            with self._lock:
                self._apps.pop((credential, tenant_id), None)
            raise

    def _app(self, credential: PartnerCredential, tenant_id: str) -> tuple[Any, threading.Lock]:
        key = (credential, tenant_id)
        with self._lock:
            entry = self._apps.get(key)
            if entry is not None:
                self._apps.move_to_end(key)
                return entry
        # Built outside the lock: msal reads the OpenID configuration over the network here.
        app = _call_msal(lambda: self._app_factory(
            credential.client_id,
            client_credential=credential.client_secret,
            authority=f"{self._login_url}/{tenant_id}",
            http_client=self._http,
            # The login root may be a sovereign cloud or the emulator, unknown to msal's discovery.
            instance_discovery=False,
        ), credential, tenant_id)
        with self._lock:
            entry = self._apps.setdefault(key, (app, threading.Lock()))
            while len(self._apps) > MAX_APPS:
                self._apps.popitem(last=False)
        return entry

    def _user_token(self, credential: PartnerCredential, tenant_id: str, scope: str) -> str:
        """App+User token from the stored refresh token (Partner Center's secure application model)."""
        key = (credential, tenant_id, scope)
        app, lock = self._app(credential, tenant_id)
        with lock:
            cached = self._user_tokens.get(key)
            if cached and cached[1] > self._clock():
                return cached[0]
            refresh_token = self._refresh_tokens.get(credential) or credential.refresh_token
            result = _call_msal(lambda: app.acquire_token_by_refresh_token(refresh_token, scopes=[scope]),
                                credential, tenant_id)
            token = self._checked(result, credential, tenant_id)
            if result.get("refresh_token"):
                self._refresh_tokens[credential] = result["refresh_token"]
            expires_in = float(result.get("expires_in") or 0)
            self._user_tokens[key] = (token, self._clock() + expires_in - EXPIRY_MARGIN_S)
            return token


def _call_msal(fn: Callable[[], Any], credential: PartnerCredential, tenant_id: str) -> Any:
    """Run one msal call, turning its failure modes into our typed errors."""
    partner = credential.app
    try:
        return fn()
    except MicrosoftError:
        raise
    except httpx.TransportError as exc:
        raise Transient(f"sign-in endpoint unreachable ({type(exc).__name__})", tenant_id=tenant_id,
                        partner=partner) from None
    except msal.exceptions.MsalServiceError as exc:  # msal raises this for a 5xx from the token endpoint
        raise Transient(f"sign-in endpoint failed: {scrub(str(exc))}", tenant_id=tenant_id, partner=partner) from None
    except ValueError as exc:  # msal: the tenant's OpenID configuration was refused (unknown tenant)
        raise AuthFailed(f"sign-in to tenant {tenant_id} refused: {scrub(str(exc))}", tenant_id=tenant_id,
                         partner=partner) from None


def _access_token(result: Any, credential: PartnerCredential, tenant_id: str) -> str:
    if isinstance(result, dict) and result.get("access_token"):
        return str(result["access_token"])
    result = result if isinstance(result, dict) else {}
    error = str(result.get("error") or "")
    description = str(result.get("error_description") or "no token in the answer").splitlines()[0]
    codes = result.get("error_codes") or []
    code = f"AADSTS{codes[0]}" if codes else (error or None)
    if error in _TRANSIENT_AUTH_ERRORS or not error:
        raise Transient(f"sign-in failed: {description}", code=code, tenant_id=tenant_id,
                        partner=credential.app)
    raise sign_in_error(error, code, f"sign-in to tenant {tenant_id} refused ({error}): {description}",
                        tenant_id=tenant_id, partner=credential.app)
