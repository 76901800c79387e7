"""The embedded default (SQLite): the API's accept paths work there too."""
from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.db.engine import dispose_engine
from shared.db.migrate import upgrade
from shared.db.uow import UnitOfWork
from shared.requests import dispatch
from shared.settings import reset_settings
from tests.api.conftest import SKU, Api, user_body
from tests.builders import Builder, Licence, Sku

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


@pytest.fixture
def sqlite_api(tmp_path: Path, api_env: pytest.MonkeyPatch) -> Iterator[tuple[TestClient, dict[str, str]]]:
    url = f"sqlite:///{tmp_path / 'provisioner.db'}"
    upgrade(url)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DATABASE_URL", url)
        mp.setenv("BROKER_URL", f"sqla+sqlite:///{tmp_path / 'broker.db'}")
        reset_settings()
        dispose_engine()
        from api.app import create_app
        from tests.api.conftest import new_key

        with UnitOfWork() as uow:
            b = Builder(uow.session)
            sp = b.provider()
            plan = b.user_plan([Licence(SKU)], sp)
            customer = b.customer(sp, skus=[Sku(SKU, total=2)], plans=[(plan, 1)])
            ids = {"customer": customer.id, "plan": plan.id}
            uow.commit()
        ids["key"] = new_key("operator")
        ids["customer_key"] = new_key("customer", ids["customer"])
        with TestClient(create_app()) as client:
            yield client, ids
    dispose_engine()
    reset_settings()
    dispatch.set_publisher(lambda refs: None)


def test_accepting_work_on_sqlite(sqlite_api: Any, published: Any) -> None:
    client, ids = sqlite_api
    dispatch.set_publisher(published.extend)
    api = Api(client, ids["key"])
    c = ids["customer"]
    users = [api.post(f"/v1/customers/{c}/users", json=user_body()).json() for _ in range(2)]
    key = {"Idempotency-Key": "sqlite-1"}
    first = api.put(f"/v1/users/{users[0]['id']}/services/microsoft-online", json={"user_plan_id": ids["plan"]},
                    headers=key)
    assert first.status_code == 202, first.text
    again = api.put(f"/v1/users/{users[0]['id']}/services/microsoft-online", json={"user_plan_id": ids["plan"]},
                    headers=key)
    assert again.json()["request"] == first.json()["request"] and again.json()["temporary_password"] is None
    own = Api(client, ids["customer_key"])  # the hard limit binds the customer's own provisioning
    limit = own.put(f"/v1/users/{users[1]['id']}/services/microsoft-online", json={"user_plan_id": ids["plan"]})
    assert limit.status_code == 409 and limit.json()["code"] == "plan_limit_reached"
    bulk = own.post(f"/v1/customers/{c}/users:bulk", json={"user_plan_id": ids["plan"], "users": [user_body()]})
    assert bulk.status_code == 409 and bulk.json()["code"] == "plan_limit_reached"
    page = api.get("/v1/requests", params={"customer_id": c, "limit": 1}).json()
    assert len(page["items"]) == 1
    assert api.get("/readyz").status_code == 200
    assert len(published) == 1
