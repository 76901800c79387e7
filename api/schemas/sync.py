"""The customer's sync policy and "sync now"."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from api.schemas.common import Input


class SyncPolicyUpdate(Input):
    enabled: bool
    interval_minutes: int = Field(ge=5, le=10080)
    import_unknown_users: bool = Field(default=True, description="Import the Entra users the engine does not "
                                                                 "know (the guide: a sync retrieves all users)")
    master: Literal["local", "microsoft"] = Field(default="microsoft",
                                                  description="Whose values win when both changed")


class SyncPolicyPublic(BaseModel):
    customer_id: str
    enabled: bool
    interval_minutes: int
    import_unknown_users: bool
    master: Literal["local", "microsoft"]
    next_run_at: datetime | None
    last_run_at: datetime | None


class SyncCreate(Input):
    full: bool = Field(default=False, description="Read every user, not only changes since the last sync")


def present(view: Any) -> dict[str, Any]:
    return SyncPolicyPublic.model_validate(view, from_attributes=True).model_dump(mode="json")
