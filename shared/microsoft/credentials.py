"""A reseller's Partner Center app credential, with its secrets kept out of repr and str."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PartnerCredential:
    """The partner app (client credentials) and, optionally, a stored App+User refresh token."""

    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        rt = "'***'" if self.refresh_token else "None"
        return (f"PartnerCredential(tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, "
                f"client_secret='***', refresh_token={rt})")

    __str__ = __repr__
