"""The queues, and which task goes to which: declared once, so a typo cannot pass silently."""
from __future__ import annotations

PROVISIONING, POLLING, SYNC = "provisioning", "polling", "sync"
QUEUES = (PROVISIONING, POLLING, SYNC)
# Celery's default queue: nothing is routed there, but it is declared so a worker started with
# `-Q provisioning,polling,sync,celery` (the compose file, the contract smoke) is accepted.
DEFAULT_QUEUE = "celery"

STEP_PREFIX = "steps."
# Celery's Redis transport keeps a queue's priority levels as lists named `<queue>` (0, consumed first)
# and `<queue>:<level>` with this separator (Celery's routing guide, "Redis Message Priorities"); KEDA's
# triggers (deploy/k8s) name those lists. Only the provisioning queue's links carry a priority.
PRIORITY_SEP = ":"
PRIORITY_LEVELS = (0, 3, 6, 9)  # kombu's default steps, kept


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


def queue_of_step(step: str) -> str:
    """The queue `step`'s task is routed to (ROUTES: exact names, else the steps.* glob)."""
    return str(ROUTES.get(step_task(step), ROUTES[STEP_PREFIX + "*"])["queue"])


def broker_lists(queue: str) -> list[str]:
    """The Redis lists a queue's messages can wait in: every priority level for provisioning."""
    if queue != PROVISIONING:
        return [queue]
    return [queue] + [f"{queue}{PRIORITY_SEP}{level}" for level in PRIORITY_LEVELS if level]
