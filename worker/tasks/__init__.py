"""Celery tasks; importing this package registers them (create_app autodiscovers `worker.tasks`)."""
from worker.tasks import maintenance, notifications, requests, sync

__all__ = ["maintenance", "notifications", "requests", "sync"]
