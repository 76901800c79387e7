"""The one argument of every step: its session, request, step row, settings, Microsoft and the clock."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from shared.db.models import ProvisioningRequest
from shared.microsoft.errors import MicrosoftError
from shared.pipeline.ports import Microsoft
from shared.pipeline.rows import StepRow
from shared.settings import Settings

Checkpointer = Callable[[dict[str, Any]], None]


def describe_error(exc: MicrosoftError) -> dict[str, Any]:
    """What a step row keeps of a Microsoft error: already scrubbed of tokens by shared.microsoft."""
    return {"type": type(exc).__name__, "status": exc.status, "code": exc.code,
            "message": exc.message, "request_id": exc.request_id}


@dataclass
class StepContext:
    session: Session
    request: ProvisioningRequest
    step: StepRow
    settings: Settings
    microsoft: Microsoft
    now: datetime
    # Commits context values at once, outside the step's transaction (see checkpoint()).
    checkpointer: Checkpointer | None = None
    notes: list[str] = field(default_factory=list)
    # Lookups the step makes more than once (the partner credential, the tenant's id, a user plan):
    # read once per step. See shared.tenants.access and shared.users.subject.plan_of.
    memo: dict[str, Any] = field(default_factory=dict)
    # Rows this step read together with another (a user's service with the user), for the step only:
    # see shared.users.subject.
    found: dict[str, Any] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, Any]:
        return self.request.params or {}

    @property
    def context(self) -> dict[str, Any]:
        return self.request.context or {}

    def remember(self, **values: Any) -> None:
        """Keep what the step learned for later steps; committed with the step's outcome."""
        # A new dict, because in-place changes to a JSON column are not tracked.
        self.request.context = {**self.context, **values}

    def checkpoint(self, **values: Any) -> None:
        """Make `values` durable now, before a call whose answer may be lost (e.g. a user create)."""
        self.remember(**values)
        if self.checkpointer is not None:
            self.checkpointer(values)

    def note_error(self, exc: MicrosoftError) -> None:
        self.step.set(microsoft_error=describe_error(exc))

    def after(self, seconds: float) -> datetime:
        return self.now + timedelta(seconds=seconds)

    def seconds_since(self, iso: str | None) -> float:
        if not iso:
            return float("inf")
        return (self.now - datetime.fromisoformat(iso)).total_seconds()
