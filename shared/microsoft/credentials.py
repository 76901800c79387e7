"""A reseller's Partner Center app credential, with its secrets kept out of repr and str."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PartnerApp:
    """Who asks Microsoft, without the secrets: what errors and messages may name."""

    reseller: str
    client_id: str
    tenant_id: str

    def __str__(self) -> str:
        who = f"reseller {self.reseller!r}" if self.reseller else "the reseller"
        return f"{who} (app {self.client_id}, partner tenant {self.tenant_id})"


@dataclass(frozen=True)
class PartnerCredential:
    """The partner app (client credentials) and, optionally, a stored App+User refresh token."""

    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    # The reseller's name, for messages an operator reads; not part of the credential's identity.
    reseller: str = field(default="", compare=False)

    def __repr__(self) -> str:
        rt = "'***'" if self.refresh_token else "None"
        return (f"PartnerCredential(tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, "
                f"client_secret='***', refresh_token={rt}, reseller={self.reseller!r})")

    @property
    def app(self) -> PartnerApp:
        return PartnerApp(self.reseller, self.client_id, self.tenant_id)

    __str__ = __repr__
