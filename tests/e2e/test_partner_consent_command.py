"""`provisioner partner consent`: prints the code and URL, waits for the sign-in, stores the refresh token."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from emulator.testing import running_emulator
from shared.db.models import ServiceProvider
from shared.security import decrypt
from tests.builders import Builder

ROOT = Path(__file__).resolve().parents[2]


def test_partner_consent_runs_the_device_flow_and_stores_the_token_encrypted(pg_url: str) -> None:
    engine = create_engine(pg_url)
    with running_emulator() as emulator:
        tenant, client, secret = str(uuid.uuid4()), "cli-app-" + uuid.uuid4().hex[:6], "s-" + uuid.uuid4().hex
        emulator.add_partner(tenant, client, secret)
        with Session(engine) as s:
            sp = Builder(s).provider(pc_tenant_id=tenant, client_id=client, client_secret=secret)
            s.commit()
            sp_id = sp.id
        env = {**os.environ, "DATABASE_URL": pg_url, "BROKER_URL": "memory://", "ENVIRONMENT": "test",
               "MS_LOGIN_URL": emulator.url, "MS_GRAPH_URL": emulator.url, "MS_PARTNER_CENTER_URL": emulator.url,
               "MS_EXCHANGE_URL": emulator.url, "MS_CA_BUNDLE": emulator.ca_path, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-m", "commands.cli", "partner", "consent", "--provider", sp_id],
                                env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            assert proc.stdout is not None
            first = proc.stdout.readline()  # the command waits after this line
            [code] = [c["user_code"] for c in emulator.device_codes() if c["client_id"] == client]
            assert code in first and f"{emulator.url}/devicelogin" in first
            emulator.answer_device_code(code)
            rest, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        output = first + rest
        assert proc.returncode == 0, output
    with Session(engine) as s:
        row = s.get(ServiceProvider, sp_id)
        assert row is not None and row.pc_refresh_token_enc is not None
        token = decrypt(row.pc_refresh_token_enc)
    engine.dispose()
    assert "Stored the App+User refresh token" in output
    assert "ok       partner_center: Partner Center answers the app (App+User" in output
    assert "ok       gdap_read:" in output
    assert token not in output and secret not in output


def test_partner_consent_for_an_unknown_reseller_says_so(pg_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": pg_url, "BROKER_URL": "memory://", "ENVIRONMENT": "test",
           "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "commands.cli", "partner", "consent", "--provider", str(uuid.uuid4())],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no service provider" in done.stderr
