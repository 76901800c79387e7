"""Flower shows a provisioned user's chain as the reseller reads it: one task per step, in order, with retries."""
from __future__ import annotations

import ast
import socket
import time
from typing import Any

import httpx
import pytest

from shared.requests import kinds
from tests.e2e.pipeline_fixtures import *  # noqa: F403
from tests.e2e.pipeline_fixtures import fresh_stack
from tests.harness.processes import FLOWER_AUTH
from worker.canvas import publish

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tasks_of(flower: str, request_id: str) -> list[dict[str, Any]]:
    """Flower's task list (its /api/tasks, fed by the workers' events) for one request, oldest first."""
    tasks = httpx.get(f"{flower}/api/tasks", auth=FLOWER_AUTH, timeout=5).json()
    mine = [t for t in tasks.values() if request_id in (t.get("args") or "")]
    return sorted(mine, key=lambda t: t.get("received") or t.get("timestamp") or 0)


def test_flower_lists_one_task_per_step_in_order_with_the_mailbox_wait_as_retries(seeder, emulator, pipeline_env):
    tenant = seeder.tenant(units=2)
    (ref,) = seeder.users(tenant, ["flo"], aliases=1)
    port = _free_port()
    flower = f"http://127.0.0.1:{port}"
    with fresh_stack(pipeline_env, emulator, mailbox_delay_s={"first": 2, "next": 2}) as stack:
        stack.flower(port)
        deadline = time.monotonic() + 60
        while True:  # Flower must be listening before the first event is sent
            try:
                if httpx.get(f"{flower}/api/workers", auth=FLOWER_AUTH, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, stack.logs()[-3000:]
            time.sleep(0.5)
        # Basic auth, and it runs without SECRET_KEY (the harness starts it without one).
        assert httpx.get(f"{flower}/api/workers", timeout=5).status_code == 401
        stack.worker(concurrency=2)
        stack.beat()
        publish([ref])
        assert seeder.wait([ref.id], timeout=60) == {kinds.SUCCEEDED: 1}, stack.logs()[-5000:]
        deadline = time.monotonic() + 20
        while True:  # the last events reach Flower a moment after Postgres says succeeded
            tasks = _tasks_of(flower, ref.id)
            if tasks and tasks[-1]["name"] == "steps.notify" and all(t["state"] == "SUCCESS" for t in tasks):
                break
            if time.monotonic() > deadline:
                break  # the assertions below say which task is not done
            time.sleep(0.5)
    names = [t["name"] for t in tasks]
    steps = [f"steps.{s}" for s in kinds.steps_of(kinds.USER_PROVISION)]
    assert list(dict.fromkeys(names)) == steps  # every step, once each, in the chain's order
    assert all(t["state"] == "SUCCESS" for t in tasks), [(t["name"], t["state"], t.get("retries")) for t in tasks]
    # The wait for the mailbox is visible: the probe's link retried (countdowns) before it succeeded.
    probe = next(t for t in tasks if t["name"] == "steps.wait_mailbox")
    assert probe["retries"] >= 1, probe
    # Ids only: the request and its dispatch (Flower shows them as the sender wrote them, tuple or list).
    assert {tuple(ast.literal_eval(t["args"])) for t in tasks} == {(ref.id, "1")}, tasks
