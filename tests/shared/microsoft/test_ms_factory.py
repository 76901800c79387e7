"""MicrosoftClients: one per process, built lazily from settings, forgotten on reset and in forked children."""
from __future__ import annotations

import os
import ssl

import httpx
import pytest

from shared.microsoft import factory
from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.exchange import ExchangeClient
from shared.microsoft.graph import GraphClient
from shared.microsoft.limiter import LocalLimiter
from shared.microsoft.limiter_redis import RedisLimiter
from shared.microsoft.partner_center import PartnerCenterClient
from shared.settings import Settings, reset_settings
from tests.harness.redis_server import RedisServer
from tests.shared.microsoft.ms_fakes import CUSTOMER, LIMITER_TEST_DB


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("MS_CA_BUNDLE", raising=False)
    monkeypatch.setenv("MS_TIMEOUT_S", "12")
    monkeypatch.setenv("MS_CONNECT_TIMEOUT_S", "3")
    reset_settings()
    factory.reset_microsoft()
    yield
    factory.reset_microsoft()
    reset_settings()


def test_get_microsoft_is_lazy_and_shared(env: None) -> None:
    first = factory.get_microsoft()
    assert factory.get_microsoft() is first
    assert isinstance(first.limiter, LocalLimiter)
    timeout = first.http.timeout
    assert (timeout.read, timeout.connect) == (12, 3)
    assert first.http.follow_redirects is False
    factory.reset_microsoft()
    assert factory.get_microsoft() is not first
    assert first.http.is_closed


def test_cheap_clients(env: None) -> None:
    ms = factory.get_microsoft()
    cred = PartnerCredential("p", "c", "s")
    assert isinstance(ms.partner_center(cred), PartnerCenterClient)
    assert isinstance(ms.graph(cred, CUSTOMER), GraphClient)
    assert isinstance(ms.exchange(cred, CUSTOMER), ExchangeClient)
    assert ms.graph(cred, CUSTOMER).tenant_id == CUSTOMER
    assert ms.partner_center(cred).correlation_id != ms.partner_center(cred).correlation_id


def test_redis_url_gives_the_shared_limiter(redis_server: RedisServer) -> None:
    ms = factory.MicrosoftClients(Settings(environment="test", redis_url=redis_server.url(LIMITER_TEST_DB)))
    try:
        assert isinstance(ms.limiter, RedisLimiter)
    finally:
        ms.close()


def test_injected_http_client_is_not_closed() -> None:
    http = httpx.Client()
    ms = factory.MicrosoftClients(Settings(environment="test"), http_client=http)
    ms.close()
    assert not http.is_closed
    http.close()


def test_ca_bundle_is_trusted(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Any readable PEM works for the check: the system's own bundle stands in for the emulator CA.
    bundle = ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"
    if not os.path.exists(bundle):
        pytest.skip("no CA bundle on this machine")
    loaded: list[str | None] = []
    real = ssl.create_default_context

    def spy(*args, cafile: str | None = None, **kw):  # type: ignore[no-untyped-def]
        loaded.append(cafile)
        return real(*args, cafile=cafile, **kw)

    monkeypatch.setattr(factory.ssl, "create_default_context", spy)
    client = factory.build_http_client(Settings(environment="test", ms_ca_bundle=bundle))
    client.close()
    assert loaded == [bundle]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_builds_its_own(env: None) -> None:
    parent = factory.get_microsoft()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report whether it inherited the parent's clients, then leave at once
        ok = factory._clients is None and factory.get_microsoft() is not parent
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert factory.get_microsoft() is parent
