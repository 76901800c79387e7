"""Celery tasks; importing this package registers them (create_app autodiscovers `worker.tasks`)."""
from worker.tasks import maintenance, notifications, steps, sync

__all__ = ["maintenance", "notifications", "steps", "sync"]
