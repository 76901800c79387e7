"""Signed webhooks: one JSON POST per outbox message, verifiable by the receiver with the shared secret.

The scheme (receivers implement `verify_signature`):

    POST <WEBHOOK_URL>
    Content-Type: application/json
    X-Provisioner-Event: <topic>                  e.g. request.state_changed, request.failed
    X-Provisioner-Delivery: <outbox message id>   the same on every retry: deduplicate on it
    X-Provisioner-Timestamp: <unix seconds>
    X-Provisioner-Signature: sha256=<hex HMAC-SHA256(WEBHOOK_SECRET, "<timestamp>." + raw body)>

    {"id": <message id>, "event": <topic>, "created_at": <ISO 8601>, "data": {...}}

The timestamp is inside the signed content, so a captured delivery cannot be replayed later with
a fresh timestamp: receivers reject signatures older than a few minutes. Compare signatures in
constant time. Any 2xx answer counts as delivered; anything else is retried with backoff.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime
from typing import Any

import httpx

from shared.settings import Settings

SIGNATURE_HEADER = "X-Provisioner-Signature"
EVENT_HEADER = "X-Provisioner-Event"
TIMESTAMP_HEADER = "X-Provisioner-Timestamp"
DELIVERY_HEADER = "X-Provisioner-Delivery"
DEFAULT_TOLERANCE_S = 300
_MAX_REASON = 200


class WebhookNotConfigured(Exception):
    """WEBHOOK_URL or WEBHOOK_SECRET is missing (an unsigned webhook could not be trusted)."""


class DeliveryFailed(Exception):
    """The receiver did not answer 2xx, or could not be reached; retried later."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str, *,
                     tolerance_s: float = DEFAULT_TOLERANCE_S, now: float | None = None) -> bool:
    """What a receiver checks: the HMAC matches and the timestamp is recent."""
    try:
        age = (time.time() if now is None else now) - int(timestamp)
    except ValueError:
        return False
    return abs(age) <= tolerance_s and hmac.compare_digest(sign(secret, timestamp, body), signature)


def body_of(message_id: str, topic: str, created_at: datetime, payload: dict[str, Any]) -> bytes:
    event = {"id": message_id, "event": topic, "created_at": created_at.isoformat(), "data": payload}
    return json.dumps(event, separators=(",", ":"), sort_keys=True, default=str).encode()


def deliver(client: httpx.Client, settings: Settings, *, message_id: str, topic: str, created_at: datetime,
            payload: dict[str, Any], now: datetime) -> None:
    """POST one event; DeliveryFailed unless the receiver answers 2xx."""
    if not settings.webhook_url or not settings.webhook_secret:
        raise WebhookNotConfigured("WEBHOOK_URL and WEBHOOK_SECRET must both be set")
    body = body_of(message_id, topic, created_at, payload)
    timestamp = str(int(now.timestamp()))
    headers = {"Content-Type": "application/json", EVENT_HEADER: topic, DELIVERY_HEADER: message_id,
               TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(settings.webhook_secret, timestamp, body)}
    try:
        response = client.post(settings.webhook_url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        # The URL stays out of the reason: it may carry a token in its query string.
        raise DeliveryFailed(f"{type(exc).__name__} while posting the webhook") from None
    if not 200 <= response.status_code < 300:
        reason = response.text[:_MAX_REASON].strip()
        raise DeliveryFailed(f"HTTP {response.status_code}" + (f": {reason}" if reason else ""))


def http_client(settings: Settings) -> httpx.Client:
    # No redirects: a receiver moving elsewhere must be reconfigured, not followed with our events.
    return httpx.Client(timeout=httpx.Timeout(settings.webhook_timeout_s, connect=min(5.0, settings.webhook_timeout_s)),
                        follow_redirects=False, headers={"User-Agent": "m365-provisioner-webhooks"})
