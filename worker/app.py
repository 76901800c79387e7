"""The Celery app: broker from settings, three queues, durable-delivery options, beat schedule."""
from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import beat_init, setup_logging, worker_init
from kombu import Exchange, Queue
from kombu.exceptions import ChannelError

from shared.observability import queues
from shared.observability.logging import configure_logging
from shared.requests import dispatch
from shared.settings import Settings, get_settings, settings_or_exit
from worker.queues import DEFAULT_QUEUE, PRIORITY_LEVELS, PRIORITY_SEP, PROVISIONING, QUEUES, ROUTES


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """The whole beat schedule, in one place."""
    return {
        "reconcile-requests": {
            "task": "worker.tasks.maintenance.reconcile",
            "schedule": settings.reconcile_interval_s,
            "options": {"expires": settings.reconcile_interval_s},
        },
        "dispatch-due-syncs": {
            "task": "worker.tasks.sync.dispatch_due_syncs",
            "schedule": settings.sync_dispatch_interval_s,
            "options": {"expires": settings.sync_dispatch_interval_s},
        },
        "resume-signed-agreements": {
            "task": "worker.tasks.maintenance.resume_signed_agreements",
            "schedule": 60.0,
            "options": {"expires": 60.0},
        },
        "send-outbox": {
            "task": "worker.tasks.notifications.send_due",
            "schedule": 10.0,
            "options": {"expires": 10.0},
        },
        "resume-blocked-access": {
            "task": "worker.tasks.maintenance.resume_access",
            "schedule": settings.access_resume_interval_s,
            "options": {"expires": settings.access_resume_interval_s},
        },
        "resume-purchase-limits": {
            "task": "worker.tasks.maintenance.resume_purchase_limits",
            "schedule": settings.purchase_resume_interval_s,
            "options": {"expires": settings.purchase_resume_interval_s},
        },
        "cleanup": {
            "task": "worker.tasks.maintenance.cleanup",
            "schedule": 3600.0,
            "options": {"expires": 600.0},
        },
    }


def celery_config(settings: Settings) -> dict[str, Any]:
    transport_options: dict[str, Any] = {}
    if settings.broker_url.startswith(("redis", "rediss")):
        # Longer than any countdown we allow, so a scheduled message is not redelivered early;
        # lost or stuck work is re-driven from Postgres by the reconciler, not by Redis.
        # Priority lists named `provisioning:3` ... (worker.queues.PRIORITY_SEP), which KEDA and redis-cli
        # can name; every message before priorities were used sits in the plain list, which is unchanged.
        transport_options = {"visibility_timeout": 3600, "socket_keepalive": True, "retry_on_timeout": True,
                             "sep": PRIORITY_SEP, "priority_steps": list(PRIORITY_LEVELS)}
    # The SQLAlchemy transport hands every transport option to create_engine(): pass none.
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "result_backend": None,  # Postgres holds the truth; no task results are stored (nor secrets in them)
        "task_ignore_result": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "task_send_sent_event": True,
        "worker_send_task_events": True,
        "task_track_started": True,
        "task_time_limit": 600,
        "task_soft_time_limit": 540,
        "worker_soft_shutdown_timeout": 30.0,
        "worker_enable_soft_shutdown_on_idle": True,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "task_default_queue": PROVISIONING,
        "task_queues": [Queue(q, Exchange(q), routing_key=q) for q in (*QUEUES, DEFAULT_QUEUE)],
        "task_routes": ROUTES,
        "task_create_missing_queues": False,
        "beat_schedule": beat_schedule(settings),
        "timezone": "UTC",
        "enable_utc": True,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
    }


@setup_logging.connect
def _logging(loglevel: Any = None, **_: Any) -> None:
    # Connected, so Celery leaves logging to us: one format (JSON with LOG_JSON) with request context,
    # secrets redacted, and httpx's per-call INFO lines (full URLs with UPN filters) kept out.
    settings = get_settings()
    level = logging.getLevelName(loglevel) if isinstance(loglevel, int) else (loglevel or settings.log_level)
    configure_logging(json_lines=settings.log_json, level=str(level))  # `-l` on the command line wins


def install_publisher(**_: Any) -> None:
    """Make this process send the requests the core publishes as Celery chains (worker.canvas.publish)."""
    from worker.canvas import publish  # canvas imports this module

    dispatch.set_publisher(publish)


def queue_depths() -> dict[str, int]:
    """Messages waiting per queue, as kombu counts them (on Redis: every priority level's list)."""
    out = {}
    with get_app().connection_for_read() as conn:
        channel = conn.default_channel
        for queue in QUEUES:
            try:
                out[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
            except ChannelError:  # no message has waited there yet: Redis has no such list
                out[queue] = 0
    return out


def install_queue_depths() -> None:
    """Let this process's /metrics report queue depths (the API's)."""
    queues.set_reader(queue_depths)


# A worker publishes (a step's next request, the reconciler's re-drives) however it was started:
# `provisioner worker|beat` or `celery -A worker.app:app worker` (compose health checks, operators).
# On these signals rather than in create_app(): the API builds the app lazily, on its first publish,
# and must keep the publisher it installed itself (api.publishing.BackgroundPublisher).
worker_init.connect(install_publisher)
beat_init.connect(install_publisher)


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    celery = Celery("m365_provisioner", set_as_current=True)
    celery.config_from_object(celery_config(settings))
    celery.autodiscover_tasks(["worker"], related_name="tasks", force=True)
    return celery


_app: Celery | None = None


def get_app() -> Celery:
    """The process's Celery app, built on first use (never at import)."""
    global _app
    if _app is None:
        _app = create_app()
    return _app


def reset_app() -> None:
    global _app
    _app = None


def __getattr__(name: str) -> Any:
    # `celery -A worker.app:app ...` (compose health checks, operators) gets the lazily built app.
    if name == "app":
        settings_or_exit()  # a bad setting is one line, not Celery's "unable to load" traceback
        return get_app()
    raise AttributeError(name)
