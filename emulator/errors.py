"""One error type for every emulated API; each route family renders it in its own Microsoft body shape."""
from __future__ import annotations


class ApiError(Exception):
    """A refusal with Microsoft's status, code and message; `detail_code`/`target` feed Graph's details."""

    def __init__(self, status: int, code: str, message: str, *, detail_code: str | None = None,
                 target: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail_code = detail_code
        self.target = target
        self.headers = headers or {}


def bad_request(message: str, *, detail_code: str | None = None, target: str | None = None) -> ApiError:
    return ApiError(400, "Request_BadRequest", message, detail_code=detail_code, target=target)


def not_found(what: str) -> ApiError:
    return ApiError(404, "Request_ResourceNotFound",
                    f"Resource '{what}' does not exist or one of its queried reference-property objects "
                    "are not present.")
