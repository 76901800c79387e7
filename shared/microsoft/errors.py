"""Typed Microsoft errors, mapped from status and Microsoft's error codes in one place.

Exception tree:

    MicrosoftError                  any failed call to Microsoft (status, code, request_id)
    ├── Throttled(retry_after)      429, 503 with Retry-After, Exchange "server busy": wait — retryable
    ├── Transient                   5xx, 408, connection problems — retryable
    ├── AuthFailed                  sign-in refused, 401, unknown tenant
    │   ├── ConsentMissing          AADSTS700016 / AADSTS65001: the app is not (yet) consented in the tenant
    │   └── CredentialsRejected     the partner's secret or refresh token is wrong, expired or revoked
    ├── Forbidden                   403: MCA missing for a purchase (code 13605) ...
    │   └── PermissionDenied        Graph Authorization_RequestDenied (Exchange: UnauthorizedAccess):
    │                               the GDAP roles or the app's grants do not allow the call
    ├── NotFound                    404: no such customer, user, domain ...
    ├── Conflict                    409, or a duplicate UPN (Graph ObjectConflict)
    │   └── AgreementAlreadyExists  Partner Center 600061: the MCA is already recorded
    ├── NoFreeLicences              the tenant has no free seat of the SKU
    ├── InvalidUsageLocation        licensing a user without a usage location
    ├── UnverifiedDomain            a UPN on a domain the tenant has not verified
    ├── MailboxNotReady             Exchange Online has no mailbox for the user (yet)
    ├── DeltaTokenExpired           a users/delta link is too old: start a full sync
    └── BadRequest                  any other 4xx: the request itself is wrong

Messages carry Microsoft's code and description, never a token, secret or request body. Errors of a call
also name the tenant it was for (`tenant_id`) and who asked (`partner`, the app without its secrets).
"""
from __future__ import annotations

import json
import re
from typing import Any, Literal

from shared.microsoft.credentials import PartnerApp

Service = Literal["graph", "partner_center", "exchange", "login"]

_MAX_MESSAGE = 300
# A JWT or a bearer credential pasted into an error text must never travel further.
_TOKENISH = re.compile(r"(?i)bearer\s+\S+|eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*")


def scrub(text: str) -> str:
    """Remove anything that looks like a token and bound the length."""
    text = _TOKENISH.sub("[redacted]", text)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


class MicrosoftError(Exception):
    """A call to Microsoft failed; `code` is Microsoft's error code when it sent one."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 request_id: str | None = None, tenant_id: str | None = None,
                 partner: PartnerApp | None = None) -> None:
        self.message = scrub(message)
        self.status = status
        self.code = code
        self.request_id = request_id
        self.tenant_id = tenant_id
        self.partner = partner
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.code:
            parts.append(f"code={self.code}")
        if self.request_id:
            parts.append(f"request_id={self.request_id}")
        return " ".join(parts)


class Throttled(MicrosoftError):
    """Microsoft (or our own limiter) says wait `retry_after` seconds before calling the tenant again."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float, status: int | None = 429,
                 code: str | None = None, request_id: str | None = None, tenant_id: str | None = None,
                 partner: PartnerApp | None = None) -> None:
        super().__init__(message, status=status, code=code, request_id=request_id, tenant_id=tenant_id,
                         partner=partner)
        self.retry_after = max(0.0, float(retry_after))


class Transient(MicrosoftError):
    """A failure that may pass by itself: 5xx, timeouts, dropped connections.

    `ambiguous` is true when the request may have reached Microsoft (read timeout, dropped
    connection, 5xx): repeating it is safe only for idempotent operations.
    """

    retryable = True

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 request_id: str | None = None, ambiguous: bool = False,
                 retry_after: float | None = None, tenant_id: str | None = None,
                 partner: PartnerApp | None = None) -> None:
        super().__init__(message, status=status, code=code, request_id=request_id, tenant_id=tenant_id,
                         partner=partner)
        self.ambiguous = ambiguous
        self.retry_after = retry_after


class AuthFailed(MicrosoftError):
    """Sign-in was refused or the token was not accepted (unknown tenant, 401)."""


class ConsentMissing(AuthFailed):
    """The partner's app has no consent in the tenant (AADSTS700016), none yet (consent propagates over
    minutes), or none for this API (AADSTS65001)."""


class CredentialsRejected(AuthFailed):
    """The partner's own credential: a wrong or expired client secret, an expired or revoked refresh token."""


class Forbidden(MicrosoftError):
    """403: signed in, but not allowed (MCA not recorded for a purchase, ...)."""


class PermissionDenied(Forbidden):
    """Graph 403 Authorization_RequestDenied ("Insufficient privileges…"), Exchange UnauthorizedAccess: the
    GDAP relationship's roles (or the app's grants) do not allow the call. Not transient."""


class NotFound(MicrosoftError):
    """404: the customer, user or object does not exist (or has not replicated yet)."""


class Conflict(MicrosoftError):
    """409 or a duplicate: the object already exists."""


class AgreementAlreadyExists(Conflict):
    """Partner Center 600061: a partner-confirmed MCA is already recorded for the customer."""


class NoFreeLicences(MicrosoftError):
    """The tenant has no available seat of the SKU being assigned."""


class InvalidUsageLocation(MicrosoftError):
    """A licence cannot be assigned to a user without a valid usage location."""


class UnverifiedDomain(MicrosoftError):
    """The UPN's domain is not a verified domain of the tenant."""


class MailboxNotReady(MicrosoftError):
    """Exchange Online has no mailbox for the user yet (or the user has no Exchange licence)."""


class DeltaTokenExpired(MicrosoftError):
    """The users/delta link is no longer accepted: a full synchronisation must start again."""


class BadRequest(MicrosoftError):
    """Any other 4xx: the request itself is wrong."""


_LABEL = {"graph": "Graph", "partner_center": "Partner Center", "exchange": "Exchange", "login": "sign-in"}
_DELTA_CODES = {"syncstatenotfound", "resyncrequired", "syncstateinvalid"}
_MAILBOX_MISSING = {
    "graph": ("mailboxnotenabledforrestapi",),
    "exchange": ("managementobjectnotfoundexception", "couldn't be found"),
}
_PC_ALREADY_RECORDED = "600061"
# Exchange's throttling answers (unconfirmed for the admin API: EWS says ErrorServerBusy, the PowerShell
# budget says "throttl..."); they count as throttling when they also say how long to wait.
_EXCHANGE_BUSY = ("serverbusy", "throttl", "toomanyrequests")
_PERMISSION_CODES = {"authorization_requestdenied", "unauthorizedaccessexception"}
# Sign-in answers (AADSTS numbers) that say the app is not consented in the tenant, or not for this API.
CONSENT_CODES = frozenset({"AADSTS700016", "AADSTS65001"})
# Token-endpoint errors that mean the partner's own secret or refresh token is no good.
_CREDENTIAL_ERRORS = frozenset({"invalid_client", "invalid_grant"})


def _as_dict(body: Any) -> dict[str, Any]:
    if isinstance(body, dict):
        return body
    if isinstance(body, bytes | str) and body:
        try:
            parsed = json.loads(body)
        except ValueError:
            return {"message": body if isinstance(body, str) else body.decode("utf-8", "replace")}
        return parsed if isinstance(parsed, dict) else {}
    return {}


def _code_and_text(body: dict[str, Any]) -> tuple[str | None, str, list[str]]:
    """Microsoft's error code, its message and any detail codes, whatever the API's body shape."""
    err = body.get("error")
    if isinstance(err, dict):  # Graph and the Exchange admin API
        details = [str(d.get("code")) for d in err.get("details") or [] if isinstance(d, dict)]
        inner = err.get("innerError") or err.get("innererror") or {}
        if isinstance(inner, dict) and inner.get("code"):
            details.append(str(inner["code"]))
        return (str(err["code"]) if err.get("code") else None), str(err.get("message") or ""), details
    if isinstance(err, str):  # the token endpoint: {"error": "invalid_client", "error_description": ...}
        return err, str(body.get("error_description") or ""), []
    code = body.get("code", body.get("errorName"))  # Partner Center: {code, description, data, source}
    text = body.get("description") or body.get("message") or ""
    return (str(code) if code is not None else None), str(text), []


def sign_in_error(error: str, code: str | None, message: str, *, tenant_id: str | None = None,
                  partner: PartnerApp | None = None) -> AuthFailed:
    """The typed error for a refused sign-in (`error` is OAuth's, `code` the AADSTS number)."""
    kw: dict[str, Any] = {"code": code, "tenant_id": tenant_id, "partner": partner}
    if code in CONSENT_CODES:
        return ConsentMissing(message, **kw)
    if error in _CREDENTIAL_ERRORS:
        return CredentialsRejected(message, **kw)
    return AuthFailed(message, **kw)


def error_from_response(status: int, body: Any, service: Service, *, request_id: str | None = None,
                        retry_after: float | None = None, tenant_id: str | None = None,
                        partner: PartnerApp | None = None) -> MicrosoftError:
    """Map one failed response (status, parsed or raw body, which API) to the typed error."""
    data = _as_dict(body)
    code, text, details = _code_and_text(data)
    haystack = " ".join([code or "", text, *details]).lower()
    message = f"{_LABEL[service]} {status}: {text or code or 'no description'}"
    kw: dict[str, Any] = {"status": status, "code": code, "request_id": request_id, "tenant_id": tenant_id,
                          "partner": partner}

    if status == 429:
        return Throttled(message, retry_after=retry_after if retry_after is not None else 1.0, **kw)
    if status >= 500 or status == 408:
        if status == 503 and retry_after is not None:  # Graph also throttles with 503 + Retry-After
            return Throttled(message, retry_after=retry_after, **kw)
        if service == "exchange" and retry_after is not None and any(m in haystack for m in _EXCHANGE_BUSY):
            return Throttled(message, retry_after=retry_after, **kw)
        if status == 501:
            return BadRequest(message, **kw)
        return Transient(message, ambiguous=True, retry_after=retry_after, **kw)
    # Codes first: some of these arrive with an undocumented or surprising status.
    if code == _PC_ALREADY_RECORDED or _PC_ALREADY_RECORDED in details:
        return AgreementAlreadyExists(message, **kw)
    if any(m in haystack for m in _MAILBOX_MISSING.get(service, ())):
        return MailboxNotReady(message, **kw)
    if service == "graph" and (status == 410 or (code or "").lower() in _DELTA_CODES):
        return DeltaTokenExpired(message, **kw)
    if status == 401:
        return AuthFailed(message, **kw)
    if status == 403:
        if any(c in haystack for c in _PERMISSION_CODES):
            return PermissionDenied(message, **kw)
        return Forbidden(message, **kw)
    if status == 404:
        return NotFound(message, **kw)
    if status == 409 or "objectconflict" in haystack or "already exists" in haystack:
        return Conflict(message, **kw)
    if "available license" in haystack or "available licence" in haystack:
        return NoFreeLicences(message, **kw)
    if "usage location" in haystack:
        return InvalidUsageLocation(message, **kw)
    if "verified domain" in haystack or "domain portion of the userprincipalname" in haystack:
        return UnverifiedDomain(message, **kw)
    return BadRequest(message, **kw)
