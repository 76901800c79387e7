"""Fixtures for the outbox sender: private database, real SMTP server, real webhook receiver."""
from tests.shared.notifications.sending.outbox_env import (  # noqa: F401
    outbox_db_url,
    outbox_env,
    receiver,
    smtp_server,
)
