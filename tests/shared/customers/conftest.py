"""Fixtures for the customer services: sessions on savepoints, a recording publisher."""
from tests.shared.steps_support import maker, published  # noqa: F401
