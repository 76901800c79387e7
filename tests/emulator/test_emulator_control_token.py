"""The control API takes a token when EMULATOR_CONTROL_TOKEN is set, and none when it is not (the contract's)."""
from __future__ import annotations

import asyncio

import httpx
import pytest

from emulator.app import Emulator, create_app


def _call(app: Emulator, method: str, path: str, token: str | None = None) -> httpx.Response:
    async def call() -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://emulator") as client:
            return await client.request(method, path, headers=headers)
    return asyncio.run(call())


def test_a_set_token_is_required_on_the_control_api() -> None:
    app = create_app(control_token="ctl-token")
    refused = _call(app, "POST", "/_emulator/reset")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    assert _call(app, "GET", "/_emulator/clock", "wrong").status_code == 401
    assert _call(app, "POST", "/_emulator/reset", "ctl-token").status_code == 204


def test_the_token_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMULATOR_CONTROL_TOKEN", "from-env")
    app = create_app()
    assert _call(app, "GET", "/_emulator/clock").status_code == 401
    assert _call(app, "GET", "/_emulator/clock", "from-env").status_code == 200


def test_without_a_token_the_control_api_stays_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMULATOR_CONTROL_TOKEN", raising=False)
    assert _call(create_app(), "POST", "/_emulator/reset").status_code == 204
