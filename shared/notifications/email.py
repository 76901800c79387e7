"""Notification emails over SMTP: user or service provisioned (with the temporary password), failed, blocked."""
from __future__ import annotations

import json
import smtplib
import ssl
from email.message import EmailMessage
from typing import Any

from shared.settings import Settings

USER_PROVISIONED, REQUEST_FAILED = "user.provisioned", "request.failed"
REQUEST_PROVISIONED, REQUEST_BLOCKED = "request.provisioned", "request.blocked"
SEATS_PURCHASED = "seats.purchased"
_FIELDS = ("request_id", "kind", "customer_id", "user_id", "step", "error_code", "error_message", "finished_at")
# What a person does about a blocked request (the reasons shared.pipeline steps block with).
_UNBLOCK = {
    "mca_not_signed": "Record the customer's Microsoft Customer Agreement (POST /v1/customers/{customer_id}/agreement) "
                      "or have the customer accept it in Partner Center: the request then resumes by itself.",
    "gdap_missing": "Set up an active GDAP relationship with the customer's tenant, then retry the request "
                    "(POST /v1/requests/{request_id}/retry).",
    "no_free_licences": "Buy seats for the customer (or free some), then retry the request "
                        "(POST /v1/requests/{request_id}/retry).",
    "purchase_limit": "Enable or raise the customer's purchase policy "
                      "(PUT /v1/customers/{customer_id}/purchase-policy): the request then resumes by itself; "
                      "a daily cap also resumes it the next day.",
}


class EmailNotConfigured(Exception):
    """SMTP_HOST or the recipient (NOTIFY_EMAIL_TO, or `to` in the payload) is missing."""


def recipient(payload: dict[str, Any], settings: Settings) -> str | None:
    return str(payload.get("to") or settings.notify_email_to or "") or None


def build_message(topic: str, payload: dict[str, Any], settings: Settings, *,
                  password: str | None = None) -> EmailMessage:
    """The email for an outbox message; `password` (decrypted by the caller) goes only into the body."""
    to = recipient(payload, settings)
    if not to:
        raise EmailNotConfigured("no recipient: set NOTIFY_EMAIL_TO")
    subject, body = _content(topic, payload, password)
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


def _content(topic: str, payload: dict[str, Any], password: str | None) -> tuple[str, str]:
    if topic == USER_PROVISIONED:
        upn = payload.get("upn") or "(unknown user)"
        lines = [f"The user {payload.get('display_name') or upn} <{upn}> is provisioned in Microsoft 365.", ""]
        if payload.get("user") == "linked":
            lines += ["Its existing Microsoft 365 account was linked (no new account was created).", ""]
        elif payload.get("user") == "created":
            lines += ["A new Microsoft 365 account was created for it.", ""]
        # A password is shown only when this request set it: a linked account keeps its own.
        password_set = payload.get("password") == "set" or (payload.get("password") is None and password)
        if password and password_set:
            lines += [f"Temporary password: {password}",
                      "The user must change it at the first sign-in. This email is its only copy: "
                      "the provisioner does not keep it.", ""]
        elif payload.get("password") == "kept":
            lines += ["Its password was not changed: the user signs in with the password it already has.", ""]
        lines.append(f"Request: {payload.get('request_id')}")
        return f"User provisioned: {upn}", "\n".join(lines) + "\n"
    if topic == SEATS_PURCHASED:
        sku, units = payload.get("sku_part_number"), payload.get("units")
        lines = [f"{units} {sku} seat(s) were bought for customer {payload.get('customer_id')}: the subscription went "
                 f"from {payload.get('from_quantity')} to {payload.get('to_quantity')}.", "",
                 "Seats are never reduced automatically (new-commerce cancellation windows).", "",
                 f"Purchase: {payload.get('purchase_id')}"]
        return f"Seats bought: {units} {sku}", "\n".join(lines) + "\n"
    kind, request_id = payload.get("kind") or "request", payload.get("request_id")
    details = [f"{name}: {payload[name]}" for name in _FIELDS if payload.get(name) is not None]
    if topic == REQUEST_FAILED:
        lines = [f"The {kind} request {request_id} failed.", "", *details]
        return f"Request failed: {kind} {request_id}", "\n".join(lines) + "\n"
    if topic == REQUEST_BLOCKED:
        reason = str(payload.get("blocked_reason") or payload.get("error_code") or "blocked")
        todo = _UNBLOCK.get(reason, "Clear the cause, then retry the request (POST /v1/requests/{request_id}/retry).")
        lines = [f"The {kind} request {request_id} waits for you: {reason}.", "",
                 todo.format(customer_id=payload.get("customer_id"), request_id=request_id), "", *details]
        return f"Action needed: {kind} {request_id} is blocked ({reason})", "\n".join(lines) + "\n"
    if topic == REQUEST_PROVISIONED:
        lines = [f"The {kind} request {request_id} succeeded.", "", *details]
        return f"Provisioned: {kind} {request_id}", "\n".join(lines) + "\n"
    return f"Provisioner: {topic}", json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n"


def send_email(msg: EmailMessage, settings: Settings) -> None:
    """One SMTP session per message: SSL from the start (SMTP_SSL) or upgraded (SMTP_STARTTLS)."""
    if not settings.smtp_host:
        raise EmailNotConfigured("SMTP_HOST is not set")
    context = ssl.create_default_context()
    timeout = settings.smtp_timeout_s
    smtp: smtplib.SMTP
    if settings.smtp_ssl:
        smtp = smtplib.SMTP_SSL(settings.smtp_host, settings.smtp_port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
    with smtp:
        if settings.smtp_starttls and not settings.smtp_ssl:
            smtp.starttls(context=context)
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
        smtp.send_message(msg)
