"""Fixtures for key and scope tests: sessions on savepoints."""
from tests.shared.steps_support import maker  # noqa: F401
