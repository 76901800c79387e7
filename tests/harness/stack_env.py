"""The stack's environment: where the database, broker, limiter and emulator are, and short clocks."""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from emulator.testing import RunningEmulator

from .processes import ROOT

# Short clocks so leases, re-drives and mailbox probes happen within a test's time.
FAST = {
    "ENVIRONMENT": "test", "LEASE_SECONDS": "30", "RECONCILE_INTERVAL_S": "1", "REDRIVE_AFTER_S": "15",
    "CREATE_CONFIRM_S": "8", "MAX_COUNTDOWN_S": "20", "MAX_STEP_RETRIES": "40", "RETRY_BUDGET_S": "5",
    "RETRY_MAX_WAIT_S": "2", "MAILBOX_FIRST_DELAY_S": "1", "MAILBOX_BACKOFF_FACTOR": "1.5",
    "MAILBOX_MAX_DELAY_S": "4", "MAILBOX_DEADLINE_S": "300", "SYNC_DISPATCH_INTERVAL_S": "3600",
    # The stacks' API is driven far faster than a client's fair share: no fair-use limits.
    "API_RATE_PER_KEY": "0", "API_RATE_PER_CUSTOMER": "0",
}

# The drills' clocks, shorter still, so a lost message, a dead worker's lease and a mailbox timer all
# come due within seconds.
DRILL = {
    "ENVIRONMENT": "test", "LOG_LEVEL": "INFO", "LOG_JSON": "false",  # the drills read the plain log
    # REDRIVE_AFTER_S must stay above the time a message waits in the queue during the drill (about
    # active requests / ~50 steps per second here), else the reconciler re-drives requests whose message
    # is merely queued: see tests/reliability/test_redrive_backlog.py for what that does.
    "LEASE_SECONDS": "10", "RECONCILE_INTERVAL_S": "1", "REDRIVE_AFTER_S": "10",
    "MAX_DELIVERIES": "3", "MAX_COUNTDOWN_S": "10", "MAX_STEP_RETRIES": "60",
    "CREATE_CONFIRM_S": "8", "RETRY_BUDGET_S": "3", "RETRY_MAX_WAIT_S": "1",
    "MAILBOX_FIRST_DELAY_S": "1", "MAILBOX_BACKOFF_FACTOR": "1.5", "MAILBOX_MAX_DELAY_S": "3",
    "MAILBOX_DEADLINE_S": "600", "SYNC_DISPATCH_INTERVAL_S": "3600",
    # The stacks' API is driven far faster than a client's fair share: no fair-use limits.
    "API_RATE_PER_KEY": "0", "API_RATE_PER_CUSTOMER": "0",
}

# What this process (the test or bench, publishing requests) must agree on with the workers.
SHARED_KEYS = ("DATABASE_URL", "BROKER_URL", "REDIS_URL", "ENVIRONMENT", "LEASE_SECONDS", "REDRIVE_AFTER_S")
# ... and where Microsoft is, for a process that calls it too.
MICROSOFT_KEYS = ("MS_LOGIN_URL", "MS_GRAPH_URL", "MS_PARTNER_CENTER_URL", "MS_EXCHANGE_URL", "MS_CA_BUNDLE")
TEST_SECRET_KEY = "test-secret-key-" + "x" * 16


def stack_env(*, database_url: str, broker_url: str, limiter_url: str | None, emulator: RunningEmulator,
              settings: dict[str, str] | None = None, **overrides: str) -> dict[str, str]:
    """The processes' environment: this one's, `settings` (FAST by default), the addresses, then `overrides`."""
    env = {**os.environ, **(FAST if settings is None else settings), "DATABASE_URL": database_url,
           "BROKER_URL": broker_url, "MS_LOGIN_URL": emulator.url, "MS_GRAPH_URL": emulator.url,
           "MS_PARTNER_CENTER_URL": emulator.url, "MS_EXCHANGE_URL": emulator.url, "MS_CA_BUNDLE": emulator.ca_path,
           **overrides}
    if limiter_url:
        env["REDIS_URL"] = limiter_url
    else:
        env.pop("REDIS_URL", None)
    env.setdefault("SECRET_KEY", TEST_SECRET_KEY)
    env["PYTHONPATH"] = str(ROOT)
    return env


@contextmanager
def publishing_as(env: dict[str, str], keys: Sequence[str] = SHARED_KEYS) -> Iterator[None]:
    """For the block, this process publishes and reads with the stack's settings (`keys` of `env`): its
    settings, Celery app and engine are rebuilt on entry and again on exit, and Celery's publisher is installed
    for the block."""
    from shared.db.engine import dispose_engine
    from shared.requests import dispatch
    from shared.settings import reset_settings
    from worker.app import install_publisher, reset_app

    saved = {key: os.environ.get(key) for key in (*keys, "SECRET_KEY")}

    def rebuild() -> None:
        reset_settings()
        reset_app()
        dispose_engine()

    os.environ.update({key: env[key] for key in keys if key in env})
    os.environ.setdefault("SECRET_KEY", env.get("SECRET_KEY", TEST_SECRET_KEY))
    if "REDIS_URL" in keys and "REDIS_URL" not in env:
        os.environ.pop("REDIS_URL", None)
    rebuild()
    install_publisher()  # Celery chains, as the API process sends them
    try:
        yield
    finally:
        dispatch.set_publisher(None)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        rebuild()
