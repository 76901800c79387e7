"""Fixtures for step and engine tests: fake Microsoft, builders, savepoint sessions; the emulator for live reads."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator.testing import RunningEmulator, running_emulator
from tests.shared.steps_support import *  # noqa: F403


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with running_emulator() as running:
        yield running


@pytest.fixture
def live_emulator(emulator: RunningEmulator, settings_env: pytest.MonkeyPatch) -> Iterator[RunningEmulator]:
    """shared.customers.live's clients (the API's and the beat's live reads) talk to the emulator over HTTPS."""
    from shared.customers import live

    for name in ("MS_LOGIN_URL", "MS_GRAPH_URL", "MS_PARTNER_CENTER_URL", "MS_EXCHANGE_URL"):
        settings_env.setenv(name, emulator.url)
    settings_env.setenv("MS_CA_BUNDLE", emulator.ca_path)
    settings_env.delenv("REDIS_URL", raising=False)
    live.use_clients(None)
    yield emulator
    live.use_clients(None)
