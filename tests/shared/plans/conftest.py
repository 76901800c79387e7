"""Fixtures for step and engine tests: fake Microsoft, builders, savepoint sessions."""
from tests.shared.steps_support import *  # noqa: F403
