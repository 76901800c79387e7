"""Partner onboarding through msal's device flow, against the emulator over HTTPS and the real database."""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from emulator.testing import RunningEmulator, running_emulator
from shared.customers import live
from shared.db.engine import dispose_engine
from shared.db.models import ProvisioningRequest, ServiceProvider
from shared.db.uow import UnitOfWork
from shared.providers.consent import ConsentFailed, consent_partner
from shared.requests import dispatch, kinds
from shared.requests.service import create_request
from shared.security import decrypt
from shared.settings import Settings, get_settings, reset_settings
from tests.builders import Builder


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    with running_emulator() as running:
        yield running


@pytest.fixture
def settings(pg_url: str, emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    monkeypatch.setenv("DATABASE_URL", pg_url)
    for var in ("MS_LOGIN_URL", "MS_GRAPH_URL", "MS_PARTNER_CENTER_URL", "MS_EXCHANGE_URL"):
        monkeypatch.setenv(var, emulator.url)
    monkeypatch.setenv("MS_CA_BUNDLE", emulator.ca_path)
    reset_settings()
    dispose_engine()
    live.use_clients(None)
    sent: list[Any] = []
    dispatch.set_publisher(sent.extend)
    yield get_settings()
    dispatch.set_publisher(None)
    live.use_clients(None)
    dispose_engine()
    reset_settings()


def _reseller(emulator: RunningEmulator) -> tuple[str, str]:
    """A partner app in the emulator and its reseller in the database; a request blocked on its credential
    (which the consent resumes: none is left blocked for other tests to find)."""
    tenant, client, secret = str(uuid.uuid4()), "app-" + uuid.uuid4().hex[:8], "secret-" + uuid.uuid4().hex
    emulator.add_partner(tenant, client, secret)
    with UnitOfWork() as uow:
        sp = Builder(uow.session).provider(pc_tenant_id=tenant, client_id=client, client_secret=secret)
        req = create_request(uow.session, kind=kinds.PROVIDER_AZURE_AD, service_provider_id=sp.id)
        req.state, req.blocked_reason = kinds.BLOCKED, "partner_credentials_invalid"
        uow.commit()
        return sp.id, req.id


def _answer_when_shown(emulator: RunningEmulator, shown: list[str], *, approve: bool) -> threading.Thread:
    def answer() -> None:
        deadline = time.monotonic() + 30
        while not shown and time.monotonic() < deadline:
            time.sleep(0.05)
        [code] = [c["user_code"] for c in emulator.device_codes() if c["user_code"] in shown[0]]
        emulator.answer_device_code(code, approve=approve)

    person = threading.Thread(target=answer)
    person.start()
    return person


def test_the_device_flow_stores_the_refresh_token_and_shows_the_access_it_gives(settings: Settings,
                                                                                emulator: RunningEmulator) -> None:
    sp, blocked = _reseller(emulator)
    shown: list[str] = []
    person = _answer_when_shown(emulator, shown, approve=True)
    done = consent_partner(sp, settings=settings, show=shown.append)
    person.join()
    assert "enter the code" in shown[0]
    assert done.resumed == [blocked] and done.scope.startswith("https://api.partnercenter.microsoft.com")
    checks = {c.name: c for c in done.checks}
    assert checks["partner_center"].status == "ok" and "App+User" in checks["partner_center"].detail
    assert checks["refresh_token"].status == "ok" and checks["gdap_read"].status == "ok"
    with UnitOfWork() as uow:
        row = uow.session.get(ServiceProvider, sp)
        assert row is not None and row.pc_refresh_token_enc is not None
        token = decrypt(row.pc_refresh_token_enc)
        assert token and token.encode() not in row.pc_refresh_token_enc
        assert uow.session.get(ProvisioningRequest, blocked).state == kinds.QUEUED  # type: ignore[union-attr]
    assert token not in str(done) and token not in " ".join(shown)


def test_a_declined_sign_in_stores_nothing_and_says_why(settings: Settings, emulator: RunningEmulator) -> None:
    sp, blocked = _reseller(emulator)
    shown: list[str] = []
    person = _answer_when_shown(emulator, shown, approve=False)
    with pytest.raises(ConsentFailed, match="authorization_declined"):
        consent_partner(sp, settings=settings, show=shown.append)
    person.join()
    with UnitOfWork() as uow:
        assert uow.session.get(ServiceProvider, sp).pc_refresh_token_enc is None  # type: ignore[union-attr]
        req = uow.session.get(ProvisioningRequest, blocked)
        assert req is not None and req.state == kinds.BLOCKED  # nothing resumed
        uow.session.delete(req)
        uow.commit()
    with pytest.raises(LookupError):
        consent_partner(str(uuid.uuid4()), settings=settings, show=shown.append)
