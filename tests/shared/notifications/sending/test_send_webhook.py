"""send_due over a real HTTP receiver: signed deliveries, retry with backoff after a failure, dead after N."""
from __future__ import annotations

import hashlib
import hmac
import threading
from datetime import timedelta

from shared.db.types import utcnow
from shared.notifications.sender import send_due
from shared.notifications.webhook import verify_signature
from tests.shared.notifications.sending.outbox_env import (
    WEBHOOK_SECRET,
    add_message,
    event_of,
    message,
)

PAYLOAD = {"request_id": "req-42", "kind": "user.provision", "state": "succeeded", "customer_id": "c-1"}


def _configure(env, receiver) -> None:
    env.setenv("WEBHOOK_URL", receiver.url)
    env.setenv("WEBHOOK_SECRET", WEBHOOK_SECRET)


def test_a_webhook_is_signed_over_timestamp_and_raw_body(outbox_env, receiver):
    _configure(outbox_env, receiver)
    mid = add_message("webhook", "request.state_changed", PAYLOAD)

    assert send_due().sent == 1

    [delivery] = receiver.deliveries
    headers, body = delivery["headers"], delivery["body"]
    timestamp = headers["X-Provisioner-Timestamp"]
    expected = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert headers["X-Provisioner-Signature"] == f"sha256={expected}"
    assert verify_signature(WEBHOOK_SECRET, timestamp, body, headers["X-Provisioner-Signature"])
    assert not verify_signature("another-secret", timestamp, body, headers["X-Provisioner-Signature"])
    assert not verify_signature(WEBHOOK_SECRET, timestamp, body + b" ", headers["X-Provisioner-Signature"])
    assert (headers["X-Provisioner-Event"], headers["X-Provisioner-Delivery"]) == ("request.state_changed", mid)
    assert event_of(delivery) == {"id": mid, "event": "request.state_changed", "data": PAYLOAD,
                                  "created_at": event_of(delivery)["created_at"]}
    assert message(mid).state == "sent"


def test_a_failed_delivery_is_retried_with_backoff_and_the_event_is_not_lost(outbox_env, receiver):
    _configure(outbox_env, receiver)
    receiver.statuses = [500]
    mid = add_message("webhook", "request.failed", PAYLOAD)
    now = utcnow()

    first = send_due(now)

    assert (first.sent, first.retried) == (0, 1)
    row = message(mid)
    assert (row.state, row.attempts, row.last_error) == ("pending", 1, "DeliveryFailed: HTTP 500: receiver is "
                                                                        "having a bad day")
    assert now + timedelta(seconds=15) <= row.next_attempt_at <= now + timedelta(seconds=30)
    assert send_due(now + timedelta(seconds=10)).claimed == 0  # not due yet: the backoff holds

    second = send_due(row.next_attempt_at)

    assert second.sent == 1
    row = message(mid)
    assert (row.state, row.attempts, row.last_error) == ("sent", 2, None)
    assert [d["status"] for d in receiver.deliveries] == [500, 200]
    # Both attempts carry the same delivery id and body: the receiver can deduplicate.
    assert {d["headers"]["X-Provisioner-Delivery"] for d in receiver.deliveries} == {mid}
    assert receiver.deliveries[0]["body"] == receiver.deliveries[1]["body"]


def test_a_message_failing_every_attempt_ends_dead_but_stays_in_the_outbox(outbox_env, receiver):
    _configure(outbox_env, receiver)
    outbox_env.setenv("OUTBOX_MAX_ATTEMPTS", "3")
    receiver.statuses = [503, 502, 500]
    mid = add_message("webhook", "request.failed", PAYLOAD)
    when = utcnow()
    outcomes = []
    for _ in range(3):
        report = send_due(when)
        outcomes.append((report.retried, report.dead))
        when = message(mid).next_attempt_at
    assert outcomes == [(1, 0), (1, 0), (0, 1)]
    row = message(mid)
    assert (row.state, row.attempts, row.last_error) == ("dead", 3, "DeliveryFailed: HTTP 500: receiver is "
                                                                      "having a bad day")
    assert send_due(when + timedelta(days=1)).claimed == 0


def test_an_unreachable_receiver_is_retried(outbox_env):
    outbox_env.setenv("WEBHOOK_URL", "http://127.0.0.1:1/hooks")
    outbox_env.setenv("WEBHOOK_SECRET", WEBHOOK_SECRET)
    mid = add_message("webhook", "request.failed", PAYLOAD)
    assert send_due().retried == 1
    assert message(mid).last_error == "DeliveryFailed: ConnectError while posting the webhook"


def test_webhooks_without_a_url_or_secret_are_skipped_not_piled_up(outbox_env, receiver):
    outbox_env.setenv("WEBHOOK_URL", receiver.url)  # no secret: an unsigned webhook is not sent
    mid = add_message("webhook", "request.failed", PAYLOAD)
    assert send_due().skipped == 1
    assert message(mid).state == "skipped" and receiver.deliveries == []


def test_two_senders_at_once_deliver_each_message_once(outbox_env, receiver):
    _configure(outbox_env, receiver)
    ids = {add_message("webhook", "request.state_changed", {**PAYLOAD, "n": n}) for n in range(30)}
    start = threading.Barrier(2)
    reports = []

    def sender() -> None:
        start.wait(10)
        reports.append(send_due(batch=20))

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    send_due()  # whatever neither batch reached

    delivered = [d["headers"]["X-Provisioner-Delivery"] for d in receiver.deliveries]
    assert sorted(delivered) == sorted(ids)
    assert sum(r.sent for r in reports) >= 20
