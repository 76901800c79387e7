"""API tests: the app in-process (TestClient) on the real PostgreSQL test database, a recording publisher."""

# Rows are committed for real (the API owns its transactions), so every test builds its own
# reseller world with fresh ids and asserts only on what it made.
from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():
    # Starlette now prefers httpx2 (not in the lock); the httpx transport it still ships works the same.
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from shared.auth.keys import create_key
from shared.db.engine import dispose_engine
from shared.db.uow import UnitOfWork
from shared.requests import dispatch
from shared.requests.dispatch import RequestRef
from shared.settings import reset_settings
from tests.builders import Builder, Licence, Sku

SKU = "O365_BUSINESS_PREMIUM"


@pytest.fixture(scope="package", autouse=True)
def api_env(pg_url: str) -> Iterator[pytest.MonkeyPatch]:
    """Settings for the whole package: the test database, a memory broker, the default limits.

    Nothing reaches a broker: until a test installs its own recorder, published refs are dropped.
    """
    dispatch.set_publisher(lambda refs: None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", pg_url)
        mp.setenv("BROKER_URL", "memory://")
        mp.setenv("ENVIRONMENT", "test")
        # The tests call far faster than a client's fair share; tests/api/test_fair_use.py sets its own.
        mp.setenv("API_RATE_PER_KEY", "0")
        mp.setenv("API_RATE_PER_CUSTOMER", "0")
        reset_settings()
        dispose_engine()
        yield mp
    reset_settings()
    dispose_engine()
    dispatch.set_publisher(None)


@pytest.fixture(scope="package")
def app(api_env: pytest.MonkeyPatch) -> Any:
    from api.app import create_app

    return create_app()


@pytest.fixture(scope="package")
def raw(app: Any) -> Iterator[TestClient]:
    """A client without credentials."""
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def published() -> Iterator[list[RequestRef]]:
    sent: list[RequestRef] = []
    dispatch.set_publisher(sent.extend)
    yield sent
    dispatch.set_publisher(lambda refs: None)


def new_key(role: str, scope_id: str | None = None) -> str:
    with UnitOfWork() as uow:
        key = create_key(uow.session, role, scope_id, name="test")
        uow.commit()
    return key


class Api:
    """The TestClient with one key's Authorization header on every call."""

    def __init__(self, client: TestClient, key: str) -> None:
        self.client, self.key = client, key
        self.headers = {"Authorization": f"Bearer {key}"}

    def __getattr__(self, method: str) -> Callable[..., Any]:
        call = getattr(self.client, method)

        def send(url: str, **kw: Any) -> Any:
            kw["headers"] = {**self.headers, **kw.get("headers", {})}
            return call(url, **kw)
        return send

    def send(self, method: str, url: str, **kw: Any) -> Any:
        kw["headers"] = {**self.headers, **kw.get("headers", {})}
        return self.client.request(method, url, **kw)


@pytest.fixture(scope="package")
def operator_key(api_env: pytest.MonkeyPatch) -> str:
    return new_key("operator")


@pytest.fixture
def op(raw: TestClient, operator_key: str, published: list[RequestRef]) -> Api:
    return Api(raw, operator_key)


@dataclass
class World:
    """One reseller with both services provisioned, a customer connected with MCA and plans, and keys."""

    provider_id: str
    customer_id: str
    customer_plan_id: str
    user_plan_id: str
    tenant_id: str
    sp_key: str
    customer_key: str


def build_world(*, kind: str = "indirect", seats: int = 10, consumed: int = 0, hard_limit: int | None = None,
                connected: bool = True, mca: bool = True, services: bool = True, plan_enabled: bool = True,
                skus: bool = True, pc_tenant_id: str | None = None, client_id: str = "partner-app",
                client_secret: str = "partner-secret", tenant_id: str | None = None) -> World:
    with UnitOfWork() as uow:
        b = Builder(uow.session)
        sp = b.provider(services=services, pc_tenant_id=pc_tenant_id, client_id=client_id,
                        client_secret=client_secret)
        sp.kind = kind
        cplan = b.customer_plan(sp)
        uplan = b.user_plan([Licence(SKU)], sp)
        tenant = tenant_id or str(uuid.uuid4())
        customer = b.customer(sp, tenant_id=tenant, connected=connected, mca_signed=mca,
                              skus=[Sku(SKU, total=seats, consumed=consumed)] if skus and connected else [],
                              plans=[(uplan, hard_limit)] if plan_enabled else [])
        customer.customer_plan_id = cplan.id
        ids = (sp.id, customer.id, cplan.id, uplan.id)
        uow.commit()
    return World(*ids, tenant, new_key("service-provider", ids[0]), new_key("customer", ids[1]))


@pytest.fixture
def world(api_env: pytest.MonkeyPatch) -> World:
    return build_world()


@pytest.fixture
def make_world(api_env: pytest.MonkeyPatch) -> Callable[..., World]:
    return build_world


def user_body(upn: str | None = None, **over: Any) -> dict[str, Any]:
    body = {"upn": upn or f"u{uuid.uuid4().hex[:10]}@contoso.com", "first_name": "Ada", "last_name": "Lovelace",
            "usage_location": "GB", "aliases": []}
    body.update(over)
    return body


def problem_of(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert a problem+json answer with this status and code; return its body."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["code"] == code, body
    assert body["status"] == status and body["type"].endswith(code) and body["title"] and "detail" in body
    return body


@pytest.fixture(scope="package")
def emulator(api_env: pytest.MonkeyPatch) -> Iterator[Any]:
    """The Microsoft emulator; the API's live calls (search, agreement, licences) go to it."""
    from emulator.testing import running_emulator
    from shared.customers import live

    with running_emulator() as em:
        for var in ("MS_LOGIN_URL", "MS_GRAPH_URL", "MS_PARTNER_CENTER_URL", "MS_EXCHANGE_URL"):
            api_env.setenv(var, em.url)
        api_env.setenv("MS_CA_BUNDLE", em.ca_path)
        reset_settings()
        live.use_clients(None)
        yield em
        live.use_clients(None)
    for var in ("MS_LOGIN_URL", "MS_GRAPH_URL", "MS_PARTNER_CENTER_URL", "MS_EXCHANGE_URL", "MS_CA_BUNDLE"):
        api_env.delenv(var, raising=False)
    reset_settings()


@dataclass
class LiveWorld:
    world: World
    tenant: dict[str, Any]


def build_live_world(em: Any, *, units: int = 5, mca_signed: bool = False, gdap: str = "active",
                     company: str | None = None, client_secret: str | None = None, **kw: Any) -> LiveWorld:
    """A partner and a customer tenant in the emulator, and the matching reseller world in the database."""
    partner = {"tenant_id": str(uuid.uuid4()), "client_id": str(uuid.uuid4()), "client_secret": uuid.uuid4().hex}
    em.add_partner(**partner)
    slug = uuid.uuid4().hex[:10]
    tenant = em.add_tenant(company_name=company or f"Live {slug}", initial_domain=f"live{slug}.onmicrosoft.com",
                           domains=[{"name": f"live{slug}.example", "verified": True}],
                           skus=[{"sku_part_number": SKU, "units": units, "service_plans": ["EXCHANGE_S_STANDARD"]}],
                           mca_signed=mca_signed, gdap=gdap, users=[], consented_apps=[partner["client_id"]])
    world = build_world(pc_tenant_id=partner["tenant_id"], client_id=partner["client_id"],
                        client_secret=client_secret or partner["client_secret"], tenant_id=tenant["tenant_id"],
                        skus=False, **kw)
    return LiveWorld(world, tenant)
