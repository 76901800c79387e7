"""Fixtures for the reseller steps: the emulator over HTTPS and the engine's real Microsoft clients."""
from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from emulator.testing import RunningEmulator, running_emulator
from shared.microsoft.factory import MicrosoftClients
from shared.settings import Settings


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with running_emulator() as running:
        yield running


@dataclass(frozen=True)
class Partner:
    tenant_id: str
    client_id: str
    client_secret: str


@pytest.fixture
def partner(emulator: RunningEmulator) -> Partner:
    """A partner app the emulator knows (fresh ids: nothing shared between tests)."""
    p = Partner(str(uuid.uuid4()), str(uuid.uuid4()), uuid.uuid4().hex)
    emulator.add_partner(p.tenant_id, p.client_id, p.client_secret)
    return p


@pytest.fixture
def microsoft(emulator: RunningEmulator) -> Iterator[MicrosoftClients]:
    """The engine's clients with every Microsoft root at the emulator: msal sign-in, HTTPS, its CA trusted."""
    settings = Settings(environment="test", ms_login_url=emulator.url, ms_graph_url=emulator.url,
                        ms_partner_center_url=emulator.url, ms_exchange_url=emulator.url,
                        ms_ca_bundle=emulator.ca_path, redis_url=None, retry_budget_s=5.0)
    clients = MicrosoftClients(settings)
    yield clients
    clients.close()

