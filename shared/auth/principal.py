"""Who is calling: the API key's id, its role and the service provider or customer it is scoped to."""
from __future__ import annotations

from dataclasses import dataclass

OPERATOR = "operator"
SERVICE_PROVIDER = "service-provider"
CUSTOMER = "customer"
ROLES = (OPERATOR, SERVICE_PROVIDER, CUSTOMER)


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    role: str
    scope_id: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.role == OPERATOR

    @property
    def actor(self) -> str:
        """What audit events record as "who"."""
        return f"key:{self.key_id}"
