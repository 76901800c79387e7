"""Each Microsoft API's own error body, built from one ApiError."""
from __future__ import annotations

import uuid
from typing import Any

from ..clock import iso
from ..errors import ApiError
from ..http import Request, Response, json_response

GRAPH_JSON = b"application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8"
# Partner Center numeric codes for the generic statuses (its bodies always carry a number).
_GRAPH_CHALLENGE = ('Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", '
                    'client_id="00000003-0000-0000-c000-000000000000"')
_EXO_EXCEPTION = "Microsoft.Exchange.Admin.OData.Core.ODataServiceException"
_PC_CODES = {400: 2000, 401: 900, 403: 900, 404: 1000, 409: 2001, 500: 5000, 503: 5003}


def graph_error(req: Request, err: ApiError) -> Response:
    request_id = str(uuid.uuid4())
    body: dict[str, Any] = {"code": err.code, "message": err.message, "innerError": {
        "date": iso(req.clock.time()), "request-id": request_id,
        "client-request-id": req.header(b"client-request-id") or request_id}}
    if err.detail_code:
        body["details"] = [{"code": err.detail_code, "message": err.message, "target": err.target or ""}]
    headers = {"request-id": request_id, **err.headers}
    if err.status == 401:
        headers["WWW-Authenticate"] = _GRAPH_CHALLENGE
    return json_response({"error": body}, err.status, headers, GRAPH_JSON)


def partner_center_error(req: Request, err: ApiError) -> Response:
    if err.status == 429:
        return json_response({"statusCode": 429, "message": err.message}, 429, err.headers)
    code: Any = int(err.code) if err.code.isdigit() else _PC_CODES.get(err.status, err.status)
    body = {"code": code, "description": err.message, "data": [], "source": "PartnerFD",
            "errorName": err.target or _error_name(err.status), "isRetryable": err.status in (429, 500, 503)}
    return json_response(body, err.status, {"MS-CorrelationId": req.header(b"ms-correlationid") or "",
                                            "MS-RequestId": req.header(b"ms-requestid") or "", **err.headers})


def exchange_error(req: Request, err: ApiError) -> Response:
    """Exchange admin API errors put `<context>|<exception type>|<message>` in the message and details."""
    message = err.message if "|" in err.message else f"Ex{uuid.uuid4().hex[:6].upper()}|{err.code}|{err.message}"
    body = {"error": {"code": _error_name(err.status), "message": message,
                      "details": [{"code": "Context", "target": "", "message": message}],
                      "innererror": {"message": message, "type": _EXO_EXCEPTION}}}
    headers = dict(err.headers)
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Bearer client_id="00000002-0000-0ff1-ce00-000000000000"'
    return json_response(body, err.status, headers)


def login_error(req: Request, err: ApiError) -> Response:
    trace = str(uuid.uuid4())
    number = err.detail_code or "0"
    stamp = iso(req.clock.time())
    description = f"AADSTS{number}: {err.message} Trace ID: {trace} Correlation ID: {trace} Timestamp: {stamp}"
    body = {"error": err.code, "error_description": description, "error_codes": [int(number)],
            "timestamp": iso(req.clock.time()).replace("T", " ").rstrip("Z") + "Z", "trace_id": trace,
            "correlation_id": trace, "error_uri": "https://login.microsoftonline.com/error?code=" + number}
    return json_response(body, err.status, err.headers)


def control_error(req: Request, err: ApiError) -> Response:
    return json_response({"error": err.code, "message": err.message}, err.status, err.headers)


RENDERERS = {"graph": graph_error, "partner_center": partner_center_error, "exchange": exchange_error,
             "login": login_error, "control": control_error}


def _error_name(status: int) -> str:
    return {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 409: "Conflict",
            429: "TooManyRequests", 500: "InternalServerError", 503: "ServiceUnavailable"}.get(status, "Error")
