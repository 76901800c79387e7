"""send_due: the beat's outbox sender (shared.notifications.sender does the sending)."""
from __future__ import annotations

from shared.settings import get_settings
from worker.base import provisioner_task


@provisioner_task(soft_time_limit=50.0, time_limit=60.0)
def send_due() -> None:
    settings = get_settings()
    if not settings.smtp_host and not settings.webhook_url:
        return  # nowhere to send: pending rows stay pending until a channel is configured
    from shared.notifications.sender import send_due as send_due_messages

    send_due_messages()
