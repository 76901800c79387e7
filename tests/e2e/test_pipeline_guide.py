"""The guide's rules for users as a reseller meets them, through the API: worker + beat, Redis, Postgres, the emulator.

The API runs in this process (its chains go to the stack's broker); the worlds are seeded like the other
pipeline tests; every request is made and watched over HTTP.
"""
from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from emulator.testing import RunningEmulator
from shared.auth.keys import create_key
from shared.db.models import PlanEnablement, ProviderUserPlan, TenantSku
from shared.db.uow import UnitOfWork
from tests.builders import Builder, Licence
from tests.e2e.pipeline_fixtures import *  # noqa: F403
from tests.e2e.pipeline_fixtures import fresh_stack
from tests.harness.processes import Processes
from tests.harness.seeding import Seeder, Tenant

with warnings.catch_warnings():
    # Starlette now prefers httpx2 (not in the lock); the httpx transport it still ships works the same.
    from starlette.exceptions import StarletteDeprecationWarning

    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
TIMEOUT = 60
BASIC = "O365_BUSINESS_ESSENTIALS"
BASIC_SKU_ID = "3b555118-da6a-4418-894f-7df1e2096870"  # Microsoft's id, as the emulator seeds it
FINAL = {"succeeded", "failed", "cancelled", "blocked"}


@pytest.fixture(scope="module")
def stack(emulator: RunningEmulator, pipeline_env: dict[str, str]) -> Iterator[Processes]:
    with fresh_stack(pipeline_env, emulator, mailbox_delay_s={"first": 1, "next": 1}) as procs:
        procs.worker(concurrency=4)
        procs.beat()
        yield procs


@pytest.fixture(scope="module")
def client(emulator: RunningEmulator, pipeline_env: dict[str, str], stack: Processes) -> Iterator[TestClient]:
    """The API in this process: the stack's database and broker, the emulator for its live calls."""
    from api.app import create_app
    from shared.customers import live
    from shared.settings import reset_settings

    with pytest.MonkeyPatch.context() as mp:
        for var in ("MS_LOGIN_URL", "MS_GRAPH_URL", "MS_PARTNER_CENTER_URL", "MS_EXCHANGE_URL"):
            mp.setenv(var, emulator.url)
        mp.setenv("MS_CA_BUNDLE", emulator.ca_path)
        reset_settings()
        live.use_clients(None)
        with TestClient(create_app(), raise_server_exceptions=False) as test_client:
            yield test_client
        live.use_clients(None)
    reset_settings()


class Api:
    """The API with one key."""

    def __init__(self, client: TestClient, role: str, scope_id: str | None = None) -> None:
        with UnitOfWork() as uow:
            key = create_key(uow.session, role, scope_id, name="e2e")
            uow.commit()
        self.client, self.headers = client, {"Authorization": f"Bearer {key}"}

    def call(self, method: str, url: str, **kw: Any) -> Any:
        return self.client.request(method, url, headers=self.headers, **kw)

    def new_user(self, tenant: Tenant, upn: str) -> str:
        r = self.call("POST", f"/v1/customers/{tenant.customer_id}/users", json={
            "upn": upn, "first_name": upn.split("@")[0].title(), "last_name": "Guide", "usage_location": "NL"})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])

    def provision(self, user_id: str, plan_id: str, **extra: Any) -> Any:
        return self.call("PUT", f"/v1/users/{user_id}/services/microsoft-online",
                         json={"user_plan_id": plan_id, **extra})

    def settle(self, answer: Any, status: int = 202) -> dict[str, Any]:
        """The request of an accepted answer, once it has finished (or is blocked)."""
        assert answer.status_code == status, answer.text
        body = answer.json()
        rid = body["request"]["id"] if "request" in body else body["id"]
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            req = self.call("GET", f"/v1/requests/{rid}").json()
            if req["state"] in FINAL:
                return dict(req)
            time.sleep(0.3)
        raise AssertionError(f"request {rid} did not finish: {req}")


@pytest.fixture(scope="module")
def operator(client: TestClient) -> Api:
    return Api(client, "operator")


def _entra(emulator: RunningEmulator, tenant: Tenant, upn: str) -> dict[str, Any]:
    return next(u for u in emulator.tenant(tenant.tenant_id)["users"] if u["userPrincipalName"].lower() == upn)


def _seed_users(emulator: RunningEmulator, tenant: Tenant, *users: dict[str, Any]) -> None:
    with emulator.client() as control:
        control.patch(f"/_emulator/tenants/{tenant.tenant_id}", json={"users": list(users)}).raise_for_status()


def _problem(answer: Any, status: int, code: str) -> dict[str, Any]:
    assert answer.status_code == status and answer.json()["code"] == code, answer.text
    return dict(answer.json())


def test_existing_accounts_are_linked_by_their_own_upn_by_a_reseller_and_keep_their_password(
        seeder: Seeder, emulator: RunningEmulator, client: TestClient) -> None:
    later = f"l{uuid.uuid4().hex[:8]}.example"
    t = seeder.tenant(unverified=[later])
    _seed_users(emulator, t,
                {"userPrincipalName": f"ann@{t.domain}", "usageLocation": "NL"},
                {"userPrincipalName": f"cal@{t.domain}", "usageLocation": "NL"},
                {"userPrincipalName": f"boss@{t.domain}", "usageLocation": "NL",
                 "directory_roles": ["Global Administrator"]},
                {"userPrincipalName": f"kim@{t.initial_domain}", "usageLocation": "NL"})  # a stranger
    reseller, own = Api(client, "service-provider", t.provider_id), Api(client, "customer", t.customer_id)
    ann_changed = _entra(emulator, t, f"ann@{t.domain}")["lastPasswordChangeDateTime"]

    # Linked by a reseller: adopted, audited, its password kept.
    ann = reseller.new_user(t, f"ann@{t.domain}")
    accepted = reseller.provision(ann, t.plan_id)
    assert accepted.json()["temporary_password_applies"] == "if_created" and accepted.json()["temporary_password"]
    done = reseller.settle(accepted)
    assert done["state"] == "succeeded", done
    assert done["result"] == {"user": "linked", "password": "kept"}
    entra = _entra(emulator, t, f"ann@{t.domain}")
    assert entra["lastPasswordChangeDateTime"] == ann_changed and entra["assignedLicenses"]
    shown = reseller.call("GET", f"/v1/users/{ann}").json()
    assert (shown["source"], shown["entra_origin"], shown["entra_id"]) == ("adopted", "adopted", entra["id"])

    # A reset sets the temporary password (with a change at the next sign-in).
    time.sleep(1.1)  # the emulator's timestamps count whole seconds
    reset = reseller.provision(ann, t.plan_id, reset_password=True)
    assert reset.json()["temporary_password_applies"] == "always"
    done = reseller.settle(reset)
    assert done["state"] == "succeeded" and done["result"] == {"user": "linked", "password": "set"}, done
    assert _entra(emulator, t, f"ann@{t.domain}")["lastPasswordChangeDateTime"] > ann_changed

    # The customer's own key may neither adopt an existing account nor disable one the engine did not create.
    cal = own.new_user(t, f"cal@{t.domain}")
    done = own.settle(own.provision(cal, t.plan_id))  # the API cannot tell: the pipeline refuses
    assert (done["state"], done["error_code"]) == ("failed", "adoption_requires_reseller"), done
    assert _entra(emulator, t, f"cal@{t.domain}")["assignedLicenses"] == []
    _problem(own.call("DELETE", f"/v1/users/{ann}/services/microsoft-online"), 409, "adoption_requires_reseller")
    done = own.settle(own.provision(ann, t.plan_id))  # adopted by its reseller: its own key may license it
    assert done["state"] == "succeeded" and done["result"] == {"user": "linked", "password": "kept"}, done

    # An account holding a directory role is never adopted, whoever asks.
    boss = reseller.new_user(t, f"boss@{t.domain}")
    done = reseller.settle(reseller.provision(boss, t.plan_id))
    assert (done["state"], done["error_code"]) == ("failed", "privileged_account"), done
    assert _entra(emulator, t, f"boss@{t.domain}")["assignedLicenses"] == []

    # Never a stranger: the onmicrosoft.com name a create would take belongs to someone else.
    kim = reseller.new_user(t, f"kim@{later}")
    done = reseller.settle(reseller.provision(kim, t.plan_id))
    assert (done["state"], done["error_code"]) == ("failed", "upn_conflict"), done
    assert f"kim@{t.initial_domain}" in done["error_message"]
    assert _entra(emulator, t, f"kim@{t.initial_domain}")["assignedLicenses"] == []
    assert emulator.stats()["by_tenant"][t.tenant_id].get("users_created", 0) == 0

    # A new account is created, with the password of the answer.
    dan = own.new_user(t, f"dan@{t.domain}")
    done = own.settle(own.provision(dan, t.plan_id))
    assert done["state"] == "succeeded" and done["result"] == {"user": "created", "password": "set"}, done
    assert own.call("GET", f"/v1/users/{dan}").json()["entra_origin"] == "created"


def _second_plan(seeder: Seeder, emulator: RunningEmulator, t: Tenant, part: str) -> str:
    """Another SKU in the tenant and a plan granting it, enabled for the customer."""
    with emulator.client() as control:
        control.patch(f"/_emulator/tenants/{t.tenant_id}",
                      json={"skus": [{"sku_part_number": part, "units": 10}]}).raise_for_status()
    sku_id = next(s["sku_id"] for s in emulator.tenant(t.tenant_id)["skus"] if s["sku_part_number"] == part)
    with seeder.session() as s:
        plan = Builder(s).user_plan([Licence(part)])
        s.add_all([ProviderUserPlan(service_provider_id=t.provider_id, user_plan_id=plan.id),
                   PlanEnablement(customer_id=t.customer_id, user_plan_id=plan.id, enabled=True),
                   TenantSku(customer_id=t.customer_id, sku_id=sku_id, sku_part_number=part, total=10,
                             consumed=0, service_plans=["EXCHANGE_S_STANDARD"])])
        s.commit()
        return plan.id


def _assign_calls(emulator: RunningEmulator) -> int:
    return sum(n for route, codes in emulator.stats()["requests"].items() if "assignLicense" in route
               for n in codes.values())


def test_reprovisioning_enables_again_and_a_plan_change_swaps_licences_in_one_call(
        seeder: Seeder, emulator: RunningEmulator, client: TestClient) -> None:
    t = seeder.tenant()
    premium = _second_plan(seeder, emulator, t, "O365_BUSINESS_PREMIUM")
    reseller = Api(client, "service-provider", t.provider_id)
    eve = reseller.new_user(t, f"eve@{t.domain}")
    assert reseller.settle(reseller.provision(eve, t.plan_id))["state"] == "succeeded"

    done = reseller.settle(reseller.call("DELETE", f"/v1/users/{eve}/services/microsoft-online"))
    assert done["state"] == "succeeded", done
    entra = _entra(emulator, t, f"eve@{t.domain}")
    assert entra["accountEnabled"] is False and entra["assignedLicenses"] == []

    done = reseller.settle(reseller.provision(eve, t.plan_id))  # provisioned again: enabled, licensed
    assert done["state"] == "succeeded" and done["result"] == {"user": "linked", "password": "kept"}, done
    entra = _entra(emulator, t, f"eve@{t.domain}")
    assert entra["accountEnabled"] is True and [lic["skuId"] for lic in entra["assignedLicenses"]] == [BASIC_SKU_ID]

    before = _assign_calls(emulator)
    change = reseller.provision(eve, premium)
    assert change.json()["request"]["params"]["previous_user_plan_id"] == t.plan_id
    assert reseller.settle(change)["state"] == "succeeded"
    assert _assign_calls(emulator) - before == 1  # the new licence added and the old removed together
    tenant = emulator.tenant(t.tenant_id)
    premium_id = next(s["sku_id"] for s in tenant["skus"] if s["sku_part_number"] == "O365_BUSINESS_PREMIUM")
    assert [lic["skuId"] for lic in _entra(emulator, t, f"eve@{t.domain}")["assignedLicenses"]] == [premium_id]
    assert reseller.call("GET", f"/v1/users/{eve}").json()["licences"] == ["O365_BUSINESS_PREMIUM"]

    done = reseller.settle(reseller.call("DELETE", f"/v1/users/{eve}/services/microsoft-online",
                                         params={"delete_user": "true"}))
    assert done["state"] == "succeeded", done
    assert all(u["userPrincipalName"].lower() != f"eve@{t.domain}" for u in emulator.tenant(t.tenant_id)["users"])
    assert {s["sku_part_number"]: s["consumed"] for s in emulator.tenant(t.tenant_id)["skus"]} == {
        BASIC: 0, "O365_BUSINESS_PREMIUM": 0}


def test_the_hard_limit_binds_the_customer_and_not_its_reseller(
        seeder: Seeder, emulator: RunningEmulator, client: TestClient) -> None:
    t = seeder.tenant(hard_limit=1)
    reseller, own = Api(client, "service-provider", t.provider_id), Api(client, "customer", t.customer_id)
    fay, gus = own.new_user(t, f"fay@{t.domain}"), own.new_user(t, f"gus@{t.domain}")
    assert own.settle(own.provision(fay, t.plan_id))["state"] == "succeeded"
    err = _problem(own.provision(gus, t.plan_id), 409, "plan_limit_reached")
    assert (err["hard_limit"], err["in_use"]) == (1, 1)
    assert reseller.settle(reseller.provision(gus, t.plan_id))["state"] == "succeeded"  # past the limit
    view = own.call("GET", f"/v1/customers/{t.customer_id}/services/microsoft-online").json()
    [plan] = view["plans"]
    assert (plan["user_plan_id"], plan["hard_limit"], plan["in_use"]) == (t.plan_id, 1, 2)


def test_users_the_sync_imports_are_provisioned_and_count_under_the_limit(
        seeder: Seeder, emulator: RunningEmulator, client: TestClient) -> None:
    t = seeder.tenant(hard_limit=2)
    licensed = [{"skuId": BASIC_SKU_ID, "disabledPlans": []}]
    _seed_users(emulator, t,
                {"userPrincipalName": f"hal@{t.domain}", "usageLocation": "NL", "assignedLicenses": licensed},
                {"userPrincipalName": f"ida@{t.domain}", "usageLocation": "NL", "assignedLicenses": licensed},
                {"userPrincipalName": f"jon@{t.domain}", "usageLocation": "NL"})
    reseller, own = Api(client, "service-provider", t.provider_id), Api(client, "customer", t.customer_id)
    assert reseller.call("GET", f"/v1/customers/{t.customer_id}/sync-policy").json()["import_unknown_users"] is True
    done = reseller.settle(reseller.call("POST", f"/v1/customers/{t.customer_id}/sync", json={"full": True}))
    assert done["state"] == "succeeded", done
    users = {u["upn"]: u for u in reseller.call("GET", f"/v1/customers/{t.customer_id}/users").json()["items"]}
    assert set(users) == {f"hal@{t.domain}", f"ida@{t.domain}", f"jon@{t.domain}"}
    for name in ("hal", "ida"):
        user = users[f"{name}@{t.domain}"]
        assert user["source"] == "imported" and user["microsoft_online"]["state"] == "provisioned"
        assert user["microsoft_online"]["user_plan_id"] == t.plan_id
    assert users[f"jon@{t.domain}"]["microsoft_online"] is None  # no licence, no plan
    [plan] = own.call("GET", f"/v1/customers/{t.customer_id}/services/microsoft-online").json()["plans"]
    assert plan["in_use"] == 2
    kay = own.new_user(t, f"kay@{t.domain}")
    _problem(own.provision(kay, t.plan_id), 409, "plan_limit_reached")  # the imported users hold the places
