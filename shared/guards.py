"""Small checks shared by the service functions (one active request per subject, known ids)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.models import ProvisioningRequest
from shared.errors import InvalidInput, StateConflict
from shared.requests import kinds


def no_active_request(session: Session, request_id: str | None, what: str) -> None:
    """409 `request_in_progress` while the last request about `what` has not finished."""
    if request_id is None:
        return
    state = session.scalar(select(ProvisioningRequest.state).where(ProvisioningRequest.id == request_id))
    if state in kinds.ACTIVE_STATES:
        raise StateConflict("request_in_progress", f"{what} already has an active request ({state})",
                            request_id=request_id)


def known_ids(session: Session, model: Any, ids: Sequence[str], field: str) -> list[str]:
    """The ids, de-duplicated in order; 422 naming each index that does not exist."""
    unique = list(dict.fromkeys(ids))
    found = set(session.scalars(select(model.id).where(model.id.in_(unique)))) if unique else set()
    missing = [{"loc": ["body", field, i], "msg": f"unknown id {v}", "type": "unknown_id"}
               for i, v in enumerate(ids) if v not in found]
    if missing:
        raise InvalidInput(f"{len(missing)} unknown id(s) in {field}", missing)
    return unique
