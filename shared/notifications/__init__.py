"""Notifications: the outbox written with the event, the notify step, and (later) the senders."""
