"""The queues, and which task goes to which: declared once, so a typo cannot pass silently."""
from __future__ import annotations

PROVISIONING, POLLING, SYNC = "provisioning", "polling", "sync"
QUEUES = (PROVISIONING, POLLING, SYNC)
# Celery's default queue: nothing is routed there, but it is declared so a worker started with
# `-Q provisioning,polling,sync,celery` (the compose file, the contract smoke) is accepted.
DEFAULT_QUEUE = "celery"

STEP_PREFIX = "steps."


def step_task(step: str) -> str:
    """The Celery task that runs `step` (Flower lists a request's chain by these names)."""
    return STEP_PREFIX + step


# Exact names first: Celery matches a route's glob only when no exact name matched.
ROUTES = {
    # Mailbox probes are many and short: kept off the provisioning queue so they never wait behind it.
    step_task("wait_mailbox"): {"queue": POLLING},
    step_task("sync"): {"queue": SYNC},
    STEP_PREFIX + "*": {"queue": PROVISIONING},
    "worker.tasks.maintenance.*": {"queue": POLLING},
    "worker.tasks.notifications.*": {"queue": POLLING},
    "worker.tasks.sync.*": {"queue": SYNC},
}
