"""Fixtures for the purchase tests: fake Microsoft, builders, savepoint sessions."""
from tests.shared.steps_support import *  # noqa: F403
