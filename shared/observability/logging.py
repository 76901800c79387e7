"""Logging: plain or JSON lines, carrying the request, customer, tenant and step being worked on."""
from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

CONTEXT_FIELDS = ("request_id", "customer_id", "tenant_id", "step", "task_id")
_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("log_context", default={})  # noqa: B039

# Last line of defence: whatever a careless message carries, these never reach a log sink. A secret's
# name may sit in JSON, a Python repr ({'password': 'x'}), a JSON-escaped message (\"password\") or a
# query string; a quoted value is redacted up to its closing quote (temporary passwords contain & , } =),
# an unquoted one up to the next parameter (&name=), space or delimiter.
_SECRET_NAME = r"\w*(?:password|passwd|secret|access_token|refresh_token|api_key|apikey)"
_KEY = rf"(?:\\?[\"'])?{_SECRET_NAME}(?:\\?[\"'])?\s*[:=]\s*"
_REDACT = [
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-._~+/]+=*"), r"\1[redacted]"),
    (re.compile(rf"(?i)({_KEY})(\\?[\"'])(.*?)\2"), r"\1\2[redacted]\2"),
    (re.compile(rf"(?i)({_KEY})(?![\\\"'\[])[^\s,;}}\])]+?(?=&\w+=|[\s,;}}\])]|$)"), r"\1[redacted]"),
    # Our own API keys, wherever they appear: the lookup prefix stays (it names the key, it opens nothing).
    (re.compile(r"\b(m365p_[0-9a-f]{12}_)[A-Za-z0-9_\-]+"), r"\1[redacted]"),
]


def redact(text: str) -> str:
    for pattern, repl in _REDACT:
        text = pattern.sub(repl, text)
    return text


@contextlib.contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Attach fields (request_id, customer_id, tenant_id, step…) to every log record in this block."""
    merged = {**_context.get(), **{k: str(v) for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, str]:
    return dict(_context.get())


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _context.get()
        for name in CONTEXT_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, ctx.get(name))
        return True


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value:
                doc[name] = value
        if record.exc_info:
            doc["exc"] = redact(self.formatException(record.exc_info))
        return redact(json.dumps(doc, default=str))


def configure_logging(*, json_lines: bool = False, level: str = "INFO") -> None:
    """Install one stderr handler on the root logger (idempotent)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_provisioner", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler._provisioner = True  # type: ignore[attr-defined]
    handler.addFilter(ContextFilter())
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(RedactingFormatter(
            "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(step)s] %(message)s"))
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "msal", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
