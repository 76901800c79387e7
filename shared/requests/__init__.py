"""Durable provisioning requests: creation, state, retry and cancel, dispatch after commit."""
