"""The notification outbox: rows written in the transaction of the event they announce."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from shared.db.models import OutboxMessage, ProvisioningRequest
from shared.security import encrypt

EMAIL, WEBHOOK = "email", "webhook"


def enqueue(session: Session, channel: str, topic: str, payload: dict[str, Any],
            secret: str | None = None) -> OutboxMessage:
    """Add a pending message; `secret` (a temporary password) is stored encrypted, never in the payload."""
    if channel not in (EMAIL, WEBHOOK):
        raise ValueError(f"unknown outbox channel {channel!r}")
    row = OutboxMessage(channel=channel, topic=topic, payload=payload, state="pending",
                        secret_enc=encrypt(secret) if secret is not None else None)
    session.add(row)
    return row


def request_payload(req: ProvisioningRequest) -> dict[str, Any]:
    """What a webhook says about a request: ids, kind, state and, when it failed, step and reason."""
    return {
        "request_id": req.id, "kind": req.kind, "state": req.state,
        "service_provider_id": req.service_provider_id, "customer_id": req.customer_id,
        "user_id": req.user_id, "step": req.current_step, "error_code": req.error_code,
        "error_message": req.error_message,
        "finished_at": req.finished_at.isoformat() if req.finished_at else None,
    }
