"""Helpers for the emulator tests: constants, a seeded world, Graph user bodies."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from emulator.testing import RunningEmulator

GRAPH = "https://graph.microsoft.com"
PARTNER_CENTER = "https://api.partnercenter.microsoft.com"
EXCHANGE = "https://outlook.office365.com"
BASIC = "O365_BUSINESS_ESSENTIALS"
BASIC_SKU_ID = "3b555118-da6a-4418-894f-7df1e2096870"
STRONG_PASSWORD = "Str0ng!pass"


@dataclass
class World:
    """A partner app and one customer tenant seeded into a freshly reset emulator."""

    emulator: RunningEmulator
    partner_tenant: str
    client_id: str
    client_secret: str
    tenant_id: str
    clients: list[httpx.Client] = field(default_factory=list)

    def token(self, tenant_id: str | None = None, resource: str = GRAPH) -> str:
        return self.emulator.token(tenant_id or self.tenant_id, self.client_id, self.client_secret, resource)

    def api(self, tenant_id: str | None = None, resource: str = GRAPH) -> httpx.Client:
        """A client carrying a bearer token for `resource` in `tenant_id` (the customer by default)."""
        client = self.emulator.client(headers={"Authorization": f"Bearer {self.token(tenant_id, resource)}"})
        self.clients.append(client)
        return client

    def graph(self, tenant_id: str | None = None) -> httpx.Client:
        return self.api(tenant_id, GRAPH)

    def partner_center(self) -> httpx.Client:
        return self.api(self.partner_tenant, PARTNER_CENTER)

    def exchange(self, tenant_id: str | None = None) -> httpx.Client:
        return self.api(tenant_id, EXCHANGE)

    def control(self) -> httpx.Client:
        client = self.emulator.client()
        self.clients.append(client)
        return client

    def add_tenant(self, **spec: Any) -> dict[str, Any]:
        return self.emulator.add_tenant(**spec)


def new_user(upn: str, **extra: Any) -> dict[str, Any]:
    nickname = upn.split("@")[0]
    return {"accountEnabled": True, "displayName": nickname, "mailNickname": nickname, "userPrincipalName": upn,
            "passwordProfile": {"password": STRONG_PASSWORD, "forceChangePasswordNextSignIn": True}, **extra}
