"""Access as Microsoft grants it, through the API and the real pipeline (worker, beat, Redis, the emulator):
CPV consent once per tenant, its propagation and deadline, GDAP roles, a wrong secret, and the resumes."""
from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

from shared.auth.keys import create_key
from shared.db.uow import UnitOfWork
from shared.requests import kinds
from tests.builders import Builder
from tests.e2e.pipeline_fixtures import *  # noqa: F403
from tests.e2e.pipeline_fixtures import fresh_stack
from tests.harness.processes import Processes
from tests.harness.seeding import Tenant

with warnings.catch_warnings():
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
TIMEOUT = 60
CONSENTS = "POST /v1/customers/{customer}/applicationconsents"
EXCHANGE_ADMIN = "29232cdf-9323-42fd-ade2-1d097af3e4de"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
# Short clocks: consent probed every 1-2 s with a 6 s deadline; blocked requests looked at every second.
ACCESS = {"CONSENT_POLL_FIRST_S": "1", "CONSENT_POLL_MAX_S": "2", "CONSENT_DEADLINE_S": "6",
          "ACCESS_RESUME_INTERVAL_S": "1", "ACCESS_RECHECK_S": "1"}


@pytest.fixture(scope="module")
def stack(emulator, pipeline_env) -> Iterator[Processes]:
    with fresh_stack(pipeline_env, emulator, settings=ACCESS) as procs:
        procs.worker(concurrency=4)
        procs.beat()
        yield procs


@pytest.fixture(autouse=True)
def no_consent_delay(emulator) -> None:
    """Consents take effect at once unless a test says otherwise (the emulator outlives each test)."""
    emulator.set_faults(consent_delay_s=0)


@pytest.fixture(scope="module")
def api(pipeline_env) -> Iterator[TestClient]:
    from api.app import create_app

    with UnitOfWork() as uow:
        key = create_key(uow.session, "operator", None, name="e2e access")
        uow.commit()
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


def _customer_plan(seeder, tenant: Tenant) -> str:
    from shared.db.models import ServiceProvider

    with seeder.session() as s:
        plan = Builder(s).customer_plan(s.get(ServiceProvider, tenant.provider_id))
        s.commit()
        return plan.id


def _connect(api: TestClient, tenant: Tenant, plan_id: str) -> str:
    r = api.put(f"/v1/customers/{tenant.customer_id}/services/azure-ad",
                json={"customer_plan_id": plan_id, "tenant_id": tenant.tenant_id})
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def _until(api: TestClient, request_id: str, states: set[str], stack: Processes) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        body = api.get(f"/v1/requests/{request_id}").json()
        if body["state"] in states:
            return dict(body)
        time.sleep(0.3)
    logs = "\n".join(line for line in stack.logs().splitlines()
                     if "shared." in line or "Traceback" in line or "Error" in line)
    raise AssertionError(f"request {request_id} never reached {states}: {body}\n{logs[-6000:]}")


def _consents(emulator) -> dict[str, int]:
    return dict(emulator.stats()["requests"].get(CONSENTS, {}))


def _step(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in body["steps"] if s["name"] == name)


def test_connect_grants_consent_once_and_waits_for_it_to_take_effect(seeder, emulator, stack, api):
    emulator.set_faults(consent_delay_s=2)
    tenant = seeder.tenant(connected=False)
    plan = _customer_plan(seeder, tenant)
    before = _consents(emulator)
    first = _until(api, _connect(api, tenant, plan), {kinds.SUCCEEDED, kinds.FAILED, kinds.BLOCKED}, stack)
    assert first["state"] == kinds.SUCCEEDED, (first["blocked_reason"], first["error_message"], first["steps"])
    assert _step(first, "connect_tenant")["attempts"] >= 2  # sign-in refused at first: a durable wait
    seen = emulator.tenant(tenant.tenant_id)
    assert seen["consented_apps"] == [seeder.client_id]

    again = _until(api, _connect(api, tenant, plan), {kinds.SUCCEEDED, kinds.FAILED, kinds.BLOCKED}, stack)
    assert again["state"] == kinds.SUCCEEDED, (again["blocked_reason"], again["error_message"])
    after = _consents(emulator)
    assert after.get("201", 0) - before.get("201", 0) == 1  # exactly once per tenant
    assert after.get("409", 0) - before.get("409", 0) == 1  # the second connect saw it and went on
    assert len(emulator.tenant(tenant.tenant_id)["consents"]) == 1

    access = api.get(f"/v1/customers/{tenant.customer_id}/access").json()
    assert access["ok"] is True and access["consented_at"], access


def test_past_the_deadline_the_request_is_blocked_then_resumes_once_sign_in_works(seeder, emulator, stack, api):
    emulator.set_faults(consent_delay_s=3600)
    tenant = seeder.tenant(connected=False)
    plan = _customer_plan(seeder, tenant)
    request_id = _connect(api, tenant, plan)
    blocked = _until(api, request_id, {kinds.BLOCKED, kinds.SUCCEEDED, kinds.FAILED}, stack)
    assert blocked["state"] == kinds.BLOCKED and blocked["blocked_reason"] == "consent_pending", blocked
    assert "AADSTS700016" in blocked["error_message"] and "Fix:" in blocked["error_message"]
    assert "reseller '" in blocked["error_message"]
    time.sleep(3)  # the beat keeps looking, and it stays blocked while Microsoft still refuses
    assert api.get(f"/v1/requests/{request_id}").json()["state"] == kinds.BLOCKED

    emulator._control.patch(f"/_emulator/tenants/{tenant.tenant_id}",
                            json={"consented_apps": [seeder.client_id]}).raise_for_status()  # it took effect
    done = _until(api, request_id, {kinds.SUCCEEDED, kinds.FAILED}, stack)
    assert done["state"] == kinds.SUCCEEDED, done
    assert len(emulator.tenant(tenant.tenant_id)["consents"]) == 1


def test_a_missing_exchange_role_blocks_the_aliases_until_it_is_granted(seeder, emulator, stack, api):
    tenant = seeder.tenant()
    emulator._control.patch(f"/_emulator/tenants/{tenant.tenant_id}",
                            json={"gdap_roles": [USER_ADMIN]}).raise_for_status()
    [ref] = seeder.users(tenant, ["ada"], aliases=1)
    from worker.canvas import publish

    publish([ref])
    blocked = _until(api, ref.id, {kinds.BLOCKED, kinds.SUCCEEDED, kinds.FAILED}, stack)
    assert blocked["state"] == kinds.BLOCKED and blocked["current_step"] == "apply_aliases", blocked
    assert blocked["blocked_reason"] == "gdap_roles_missing"
    assert f"Exchange Administrator ({EXCHANGE_ADMIN})" in blocked["error_message"]
    assert _step(blocked, "apply_aliases")["attempts"] == 1  # not retried
    emulator._control.patch(f"/_emulator/tenants/{tenant.tenant_id}",
                            json={"gdap_roles": [USER_ADMIN, EXCHANGE_ADMIN]}).raise_for_status()
    done = _until(api, ref.id, {kinds.SUCCEEDED, kinds.FAILED}, stack)
    assert done["state"] == kinds.SUCCEEDED, done


def test_a_wrong_secret_blocks_without_retrying_and_a_rotation_resumes(seeder, emulator, stack, api):
    tenant = seeder.tenant(connected=False)
    plan = _customer_plan(seeder, tenant)
    rotate = api.post(f"/v1/service-providers/{tenant.provider_id}/credentials",
                      json={"client_secret": "not-the-partner-secret"})
    assert rotate.status_code == 200 and "not-the-partner-secret" not in rotate.text
    request_id = _connect(api, tenant, plan)
    blocked = _until(api, request_id, {kinds.BLOCKED, kinds.SUCCEEDED, kinds.FAILED}, stack)
    assert blocked["blocked_reason"] == "partner_credentials_invalid", blocked
    assert "AADSTS7000215" in blocked["error_message"] and "not-the-partner-secret" not in str(blocked)
    assert _step(blocked, "connect_tenant")["attempts"] == 1

    from tests.harness.seeding import PARTNER_SECRET

    fixed = api.post(f"/v1/service-providers/{tenant.provider_id}/credentials", json={"client_secret": PARTNER_SECRET})
    assert fixed.json()["resumed_request_ids"] == [request_id]
    done = _until(api, request_id, {kinds.SUCCEEDED, kinds.FAILED}, stack)
    assert done["state"] == kinds.SUCCEEDED, done
    assert PARTNER_SECRET not in stack.logs()
