"""JWT-shaped access tokens (HS256 with the server's key): SDKs that peek at claims find tid/aud/exp."""
from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from typing import Any

import orjson

from .clock import Clock

GRAPH = "https://graph.microsoft.com"
PARTNER_CENTER = "https://api.partnercenter.microsoft.com"
EXCHANGE = "https://outlook.office365.com"
RESOURCES = (GRAPH, PARTNER_CENTER, EXCHANGE)

_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
_CACHE_LIMIT = 50_000


class TokenError(Exception):
    """Why a bearer token was refused; `reason` is one of missing, malformed, expired, audience."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


class TokenSigner:
    def __init__(self, key: bytes, clock: Clock) -> None:
        self._key = key
        self._clock = clock
        # Verified tokens are cached: the HMAC and JSON parse are most of a GET's cost otherwise.
        self._verified: dict[str, dict[str, Any]] = {}

    def issue(self, *, tenant_id: str, resource: str, client_id: str, lifetime_s: float,
              user: bool = False) -> str:
        now = int(self._clock.time())
        claims = {
            "aud": resource, "iss": f"https://sts.windows.net/{tenant_id}/", "iat": now, "nbf": now,
            "exp": now + int(lifetime_s), "appid": client_id, "azp": client_id, "tid": tenant_id,
            "idtyp": "user" if user else "app", "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, client_id)),
            "ver": "1.0", "uti": uuid.uuid4().hex[:22],
        }
        body = _HEADER + b"." + _b64(orjson.dumps(claims))
        return (body + b"." + _b64(hmac.new(self._key, body, hashlib.sha256).digest())).decode()

    def verify(self, authorization: str | None, resource: str) -> dict[str, Any]:
        if not authorization:
            raise TokenError("missing")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise TokenError("missing")
        claims = self._verified.get(token)
        if claims is None:
            claims = self._check_signature(token)
            if len(self._verified) >= _CACHE_LIMIT:
                self._verified.clear()
            self._verified[token] = claims
        if claims["exp"] <= self._clock.time():
            raise TokenError("expired")
        if claims["aud"] != resource:
            raise TokenError("audience")
        return claims

    def _check_signature(self, token: str) -> dict[str, Any]:
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("malformed")
        body = f"{parts[0]}.{parts[1]}".encode()
        try:
            signature = _unb64(parts[2])
            claims = orjson.loads(_unb64(parts[1]))
        except (ValueError, orjson.JSONDecodeError):
            raise TokenError("malformed") from None
        if not hmac.compare_digest(signature, hmac.new(self._key, body, hashlib.sha256).digest()):
            raise TokenError("malformed")
        if not isinstance(claims, dict) or not {"aud", "exp", "tid", "appid"} <= claims.keys():
            raise TokenError("malformed")
        return claims
