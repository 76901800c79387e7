"""Fixtures for the emulator's own tests: one emulator process per session, reset before each test."""
from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from emulator.testing import RunningEmulator, running_emulator

from .emulator_world import BASIC, World


@pytest.fixture(scope="session")
def emulator() -> Iterator[RunningEmulator]:
    with running_emulator() as running:
        yield running


@pytest.fixture
def world(emulator: RunningEmulator) -> Iterator[World]:
    emulator.reset()
    partner_tenant = str(uuid.uuid4())
    emulator.add_partner(partner_tenant, "partner-app", "partner-secret")
    tenant = emulator.add_tenant(
        company_name="Contoso", initial_domain="contoso.onmicrosoft.com",
        domains=[{"name": "contoso.com", "verified": True}, {"name": "pending.example", "verified": False}],
        skus=[{"sku_part_number": BASIC, "units": 3}], mca_signed=False, gdap="active",
        users=[{"userPrincipalName": "existing@contoso.com", "usageLocation": "NL"}], consented_apps=["partner-app"],
    )
    seeded = World(emulator, partner_tenant, "partner-app", "partner-secret", tenant["tenant_id"])
    yield seeded
    for client in seeded.clients:
        client.close()
