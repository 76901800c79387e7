"""Every mapping from (status, body, service) to the typed Microsoft errors."""
from __future__ import annotations

from typing import Any

import pytest

from shared.microsoft import errors as e


def graph(code: str, message: str, details: list[str] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "innerError": {"request-id": "r"},
                      "details": [{"code": d, "message": "", "target": "x"} for d in details or []]}}


def pc(code: int | str, description: str) -> dict[str, Any]:
    return {"code": code, "description": description, "data": [], "source": "PartnerFD"}


CASES = [
    # Graph
    (404, graph("Request_ResourceNotFound", "Resource 'x' does not exist"), "graph", e.NotFound),
    (404, graph("MailboxNotEnabledForRESTAPI", "The mailbox is either inactive, soft-deleted, or is hosted "
                "on-premise."), "graph", e.MailboxNotReady),
    (400, graph("Request_BadRequest", "Another object with the same value for property userPrincipalName "
                "already exists.", ["ObjectConflict"]), "graph", e.Conflict),
    (409, graph("Conflict", "conflict"), "graph", e.Conflict),
    (400, graph("Request_BadRequest", "License assignment failed because service plans are ... does not have "
                "any available licenses."), "graph", e.NoFreeLicences),
    (400, graph("Request_BadRequest", "License assignment cannot be done for user with invalid usage "
                "location."), "graph", e.InvalidUsageLocation),
    (400, graph("Request_BadRequest", "The domain portion of the userPrincipalName property is invalid. You must "
                "use one of the verified domain names in your organization."), "graph", e.UnverifiedDomain),
    (400, graph("Request_BadRequest", "The specified password does not comply with password complexity "
                "requirements."), "graph", e.BadRequest),
    (400, graph("syncStateNotFound", "The sync state generation is not found."), "graph", e.DeltaTokenExpired),
    (410, graph("resyncRequired", "Resync required."), "graph", e.DeltaTokenExpired),
    (401, graph("InvalidAuthenticationToken", "Access token has expired."), "graph", e.AuthFailed),
    (403, graph("Authorization_RequestDenied", "Insufficient privileges."), "graph", e.PermissionDenied),
    (500, graph("generalException", "boom"), "graph", e.Transient),
    (502, "<html>bad gateway</html>", "graph", e.Transient),
    (504, None, "graph", e.Transient),
    (408, None, "graph", e.Transient),
    (501, graph("notImplemented", "no"), "graph", e.BadRequest),
    (405, graph("Request_BadRequest", "method"), "graph", e.BadRequest),
    # Partner Center
    (404, pc(1000, "Customer not found"), "partner_center", e.NotFound),
    (400, pc(600061, "A partner confirmed agreement already exists"), "partner_center", e.AgreementAlreadyExists),
    (409, pc("600061", "A partner confirmed agreement already exists"), "partner_center",
     e.AgreementAlreadyExists),
    (403, pc(13605, "Either a partner confirmation of the customer acceptance of the Microsoft Customer Agreement "
             "must be provided"), "partner_center", e.Forbidden),
    (401, pc(400, "Access denied"), "partner_center", e.AuthFailed),
    (400, pc(3000, "Invalid property"), "partner_center", e.BadRequest),
    (409, pc(27009, "Cannot enable a child subscription"), "partner_center", e.Conflict),
    (503, pc(0, "unavailable"), "partner_center", e.Transient),
    # Exchange admin API
    (404, {"error": {"code": "NotFound", "message": "|Microsoft.Exchange.Configuration.Tasks."
                     "ManagementObjectNotFoundException|The operation couldn't be performed because object "
                     "'a@b' couldn't be found on 'X'."}}, "exchange", e.MailboxNotReady),
    (400, {"error": {"code": "BadRequest", "message": "Ex6F9304|Microsoft.Exchange.Configuration.Tasks."
                     "ManagementObjectNotFoundException|couldn't be found"}}, "exchange", e.MailboxNotReady),
    (400, {"error": {"code": "BadRequest", "message": "A parameter cannot be found"}}, "exchange", e.BadRequest),
    (404, None, "exchange", e.NotFound),
    (403, {"error": {"code": "Forbidden", "message": "ExAB12|Microsoft.Exchange.Security.Authorization."
                     "UnauthorizedAccessException|The user or application is not authorized to access this "
                     "organization."}}, "exchange", e.PermissionDenied),
    # a "couldn't be found" outside Exchange is not about mailboxes
    (404, pc(1000, "Customer couldn't be found"), "partner_center", e.NotFound),
]


@pytest.mark.parametrize(("error", "code", "expected"), [
    ("unauthorized_client", "AADSTS700016", e.ConsentMissing),  # no (or no propagated) consent in the tenant
    ("invalid_grant", "AADSTS65001", e.ConsentMissing),  # consented, but not for this API
    ("invalid_client", "AADSTS7000215", e.CredentialsRejected),  # wrong secret
    ("invalid_client", "AADSTS7000222", e.CredentialsRejected),  # expired secret
    ("invalid_grant", "AADSTS50173", e.CredentialsRejected),  # revoked refresh token
    ("invalid_grant", "AADSTS700082", e.CredentialsRejected),  # refresh token expired by inactivity
    ("invalid_tenant", "AADSTS90002", e.AuthFailed),
])
def test_sign_in_refusals(error: str, code: str, expected: type[e.MicrosoftError]) -> None:
    err = e.sign_in_error(error, code, "refused", tenant_id="t1")
    assert type(err) is expected and err.code == code and err.tenant_id == "t1"


@pytest.mark.parametrize(("status", "body", "service", "expected"), CASES)
def test_mapping(status: int, body: Any, service: e.Service, expected: type[e.MicrosoftError]) -> None:
    err = e.error_from_response(status, body, service, request_id="rid-1")
    assert type(err) is expected
    assert err.status == status
    assert err.request_id == "rid-1"


def test_429_is_throttled_with_retry_after() -> None:
    err = e.error_from_response(429, graph("TooManyRequests", "Too many requests"), "graph", retry_after=2.5)
    assert isinstance(err, e.Throttled)
    assert err.retry_after == 2.5
    assert err.code == "TooManyRequests"


def test_partner_center_429_body_shape() -> None:
    body = {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 57 seconds."}
    err = e.error_from_response(429, body, "partner_center", retry_after=57)
    assert isinstance(err, e.Throttled)
    assert "Rate limit is exceeded" in str(err)


def test_503_with_retry_after_is_throttling() -> None:
    assert isinstance(e.error_from_response(503, None, "graph", retry_after=3), e.Throttled)
    plain = e.error_from_response(503, None, "graph")
    assert isinstance(plain, e.Transient)
    assert plain.ambiguous


def test_json_text_body_is_parsed() -> None:
    text = '{"error":{"code":"Request_ResourceNotFound","message":"gone"}}'
    err = e.error_from_response(404, text, "graph")
    assert err.code == "Request_ResourceNotFound"
    assert "gone" in str(err)


def test_str_names_status_code_and_request_id() -> None:
    err = e.error_from_response(404, pc(1000, "Customer not found"), "partner_center", request_id="abc")
    assert str(err) == "Partner Center 404: Customer not found status=404 code=1000 request_id=abc"


def test_tree_and_retryable_flags() -> None:
    assert issubclass(e.AgreementAlreadyExists, e.Conflict)
    retryable = {cls for cls in vars(e).values()
                 if isinstance(cls, type) and issubclass(cls, e.MicrosoftError) and cls.retryable}
    assert retryable == {e.Throttled, e.Transient}


def test_tokens_never_travel_in_messages() -> None:
    jwt = "eyJ0eXAiOiJKV1QiLCJhbGciOi.eyJhdWQiOiJodHRwczovL2dyYXBo.c2lnbmF0dXJl"
    err = e.error_from_response(401, graph("InvalidAuthenticationToken", f"Bearer {jwt} is expired ({jwt})"),
                                "graph")
    assert jwt not in str(err)
    assert "eyJ" not in err.message
    assert "[redacted]" in err.message


def test_message_length_is_bounded() -> None:
    err = e.error_from_response(400, pc(3000, "x" * 5000), "partner_center")
    assert len(err.message) <= 300
