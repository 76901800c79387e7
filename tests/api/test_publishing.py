"""The API's background publisher: refs reach the real publisher in batches, after the caller returned."""
from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from starlette.testclient import TestClient

from api.publishing import BackgroundPublisher
from shared.requests import dispatch
from shared.requests.dispatch import RequestRef
from tests.api.conftest import Api, World, new_key, user_body


def _ref(i: int) -> RequestRef:
    return RequestRef(f"r{i}", "user.provision", "reserve_seat", 1)


def test_batches_and_drains_on_close() -> None:
    seen: list[list[RequestRef]] = []
    gate = threading.Event()

    def slow(refs: Sequence[RequestRef]) -> None:
        gate.wait(5)
        seen.append(list(refs))

    pub = BackgroundPublisher(slow)
    pub([_ref(0)])
    for i in range(1, 50):
        pub([_ref(i)])  # queued while the first batch is still being sent
    pub([])
    gate.set()
    pub.close()
    assert [r.id for batch in seen for r in batch] == [f"r{i}" for i in range(50)]
    assert len(seen) <= 3


def test_a_failing_broker_does_not_raise(caplog: pytest.LogCaptureFixture) -> None:
    def broken(refs: Sequence[RequestRef]) -> None:
        raise ConnectionError("broker down")

    pub = BackgroundPublisher(broken)
    pub([_ref(1)])
    pub.close()
    assert "reconciler will re-drive" in caplog.text


def test_the_app_publishes_through_it(world: World) -> None:
    from api.app import create_app

    sent: list[RequestRef] = []
    dispatch.set_publisher(sent.extend)
    try:
        with TestClient(create_app()) as client:
            assert isinstance(dispatch.get_publisher(), BackgroundPublisher)
            api = Api(client, new_key("operator"))
            user = api.post(f"/v1/customers/{world.customer_id}/users", json=user_body()).json()
            req = api.put(f"/v1/users/{user['id']}/services/microsoft-online",
                          json={"user_plan_id": world.user_plan_id}).json()["request"]
        assert [r.id for r in sent] == [req["id"]]  # drained when the app stopped
        assert dispatch.get_publisher() == sent.extend
    finally:
        dispatch.set_publisher(lambda refs: None)


