"""The whole pipeline for tests and the bench: emulator, Postgres, Redis, celery worker and beat processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from emulator.testing import RunningEmulator
from shared.db.models import ProvisioningRequest, User
from shared.requests import kinds
from shared.requests.dispatch import RequestRef
from shared.requests.service import ref
from tests.builders import Builder, Licence, Sku

BROKER_DB, LIMITER_DB = 9, 10
ROOT = Path(__file__).resolve().parents[2]
PARTNER_SECRET = "partner-secret-" + "p" * 8
# `celery worker` / `celery beat` on the project's app (what `provisioner worker|beat` run).
_CELERY_MAIN = ("import sys; from worker.app import get_app; app = get_app(); "
                "app.worker_main(sys.argv[1:]) if sys.argv[1] == 'worker' else app.start(sys.argv[1:])")

# Short clocks so leases, re-drives and mailbox probes happen within a test's time.
FAST = {
    "ENVIRONMENT": "test", "LEASE_SECONDS": "30", "RECONCILE_INTERVAL_S": "1", "REDRIVE_AFTER_S": "15",
    "CREATE_CONFIRM_S": "8", "MAX_COUNTDOWN_S": "20", "MAX_STEP_RETRIES": "40", "RETRY_BUDGET_S": "5",
    "RETRY_MAX_WAIT_S": "2", "MAILBOX_FIRST_DELAY_S": "1", "MAILBOX_BACKOFF_FACTOR": "1.5",
    "MAILBOX_MAX_DELAY_S": "4", "MAILBOX_DEADLINE_S": "300", "SYNC_DISPATCH_INTERVAL_S": "3600",
}


def stack_env(pg_url: str, emulator: RunningEmulator, **overrides: str) -> dict[str, str]:
    env = {**os.environ, **FAST, "DATABASE_URL": pg_url,
           "BROKER_URL": f"redis://127.0.0.1:6379/{BROKER_DB}", "REDIS_URL": f"redis://127.0.0.1:6379/{LIMITER_DB}",
           "MS_LOGIN_URL": emulator.url, "MS_GRAPH_URL": emulator.url, "MS_PARTNER_CENTER_URL": emulator.url,
           "MS_EXCHANGE_URL": emulator.url, "MS_CA_BUNDLE": emulator.ca_path, **overrides}
    env.setdefault("SECRET_KEY", "test-secret-key-" + "x" * 16)
    env["PYTHONPATH"] = str(ROOT)
    return env


def flush_redis() -> None:
    for db in (BROKER_DB, LIMITER_DB):
        redis.Redis(db=db).flushdb()


@dataclass
class Processes:
    env: dict[str, str]
    logdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="pipeline-")))
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def _spawn(self, name: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        log = open(self.logdir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it while it runs
        proc = subprocess.Popen([sys.executable, "-c", _CELERY_MAIN, *args], env=self.env,
                                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        log.close()
        self.procs[name] = proc
        return proc

    def worker(self, name: str = "w1", *, concurrency: int = 4, loglevel: str = "INFO") -> None:
        self._spawn(name, ["worker", "-P", "prefork", "-c", str(concurrency), "-Q", "provisioning,polling,sync",
                           "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip",
                           "-l", loglevel])

    def beat(self) -> None:
        self._spawn("beat", ["beat", "-l", "INFO", "--schedule", str(self.logdir / "beat-schedule")])

    def flower(self, port: int) -> None:
        """Flower on 127.0.0.1:`port`, its HTTP API open (a test reads /api/tasks)."""
        self.env = {**self.env, "FLOWER_UNAUTHENTICATED_API": "true"}
        self._spawn("flower", ["flower", f"--port={port}", "--address=127.0.0.1"])

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        os.killpg(proc.pid, sig)  # the whole group: the prefork children die with their parent
        proc.wait(timeout=30)

    def stop(self) -> None:
        for name in list(self.procs):
            proc = self.procs.pop(name)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            proc.wait(timeout=30)
        time.sleep(0.2)

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.logdir.glob("*.log")))

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        for proc in list(self.procs.values()):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in list(self.procs.values()):
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()


@dataclass
class Tenant:
    """One emulated tenant and its customer in the database, ready for user requests."""

    tenant_id: str
    initial_domain: str
    domain: str
    customer_id: str
    provider_id: str
    plan_id: str


class Seeder:
    """Seeds the emulator and the database consistently, with real commits.

    Requests are created straight in the database as the API would (request row, seat reserved,
    password encrypted on the user service) and published with worker.canvas.publish.
    """

    def __init__(self, pg_url: str, emulator: RunningEmulator) -> None:
        self.engine = create_engine(pg_url, pool_size=2)
        self.emulator = emulator
        self.partner_tenant = str(uuid.uuid4())
        self.client_id = "app-" + uuid.uuid4().hex[:8]
        emulator.add_partner(self.partner_tenant, self.client_id, PARTNER_SECRET)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def tenant(self, *, units: int = 50, sku: str = "O365_BUSINESS_ESSENTIALS", unverified: Sequence[str] = (),
               users: Sequence[dict[str, Any]] = (), mca_signed: bool = True, gdap: str = "active",
               connected: bool = True, hard_limit: int | None = None) -> Tenant:
        tag = uuid.uuid4().hex[:8]
        domain, initial = f"t{tag}.example", f"t{tag}.onmicrosoft.com"
        seeded = self.emulator.add_tenant(
            company_name=f"Tenant {tag}", initial_domain=initial,
            domains=[{"name": domain, "verified": True}, *({"name": d, "verified": False} for d in unverified)],
            skus=[{"sku_part_number": sku, "units": units}], mca_signed=mca_signed, gdap=gdap, users=list(users))
        sku_row = next(s for s in seeded["skus"] if s["sku_part_number"] == sku)
        with self.session() as s:
            b = Builder(s)
            provider = b.provider(pc_tenant_id=self.partner_tenant, client_id=self.client_id,
                                  client_secret=PARTNER_SECRET)
            plan = b.user_plan([Licence(sku)], provider)
            customer = b.customer(provider, tenant_id=seeded["tenant_id"], initial_domain=initial, verified=[domain],
                                  connected=connected, mca_signed=mca_signed,
                                  skus=[Sku(sku, sku_id=sku_row["sku_id"], total=units,
                                            consumed=sku_row.get("consumed", 0))] if connected else [],
                                  plans=[(plan, hard_limit)] if connected else [])
            s.commit()
            return Tenant(seeded["tenant_id"], initial, domain, customer.id, provider.id, plan.id)

    def users(self, tenant: Tenant, locals_: Iterable[str], *, domain: str | None = None,
              aliases: int = 0, passwords: dict[str, str] | None = None, created_by_role: str | None = None,
              parent_id: str | None = None, reserve: bool = True) -> list[RequestRef]:
        """One user.provision request per user, as the API accepts it."""
        refs = []
        with self.session() as s:
            b = Builder(s)
            from shared.db.models import Customer, UserPlan

            customer, plan = s.get(Customer, tenant.customer_id), s.get(UserPlan, tenant.plan_id)
            assert customer is not None and plan is not None
            key = b.api_key(created_by_role, customer.id) if created_by_role else None
            for local in locals_:
                upn = f"{local}@{domain or tenant.domain}"
                alias_list = [f"{local}.a{i}@{tenant.domain}" for i in range(aliases)]
                user = b.user(customer, upn, plan=plan, aliases=alias_list, password=(passwords or {}).get(local))
                req = b.provision(user, plan, created_by=key.id if key else None, parent_id=parent_id,
                                  reserve=reserve)
                refs.append(ref(req))
            s.commit()
        return refs

    def request(self, kind: str, tenant: Tenant, *, user_id: str | None = None,
                params: dict[str, Any] | None = None) -> RequestRef:
        with self.session() as s:
            from shared.requests.service import create_request

            req = create_request(s, kind=kind, service_provider_id=tenant.provider_id, customer_id=tenant.customer_id,
                                 user_id=user_id, params=params or {})
            s.commit()
            return ref(req)

    def states(self, ids: Sequence[str]) -> dict[str, int]:
        with self.session() as s:
            rows = s.execute(select(ProvisioningRequest.state, func.count()).where(ProvisioningRequest.id.in_(ids))
                             .group_by(ProvisioningRequest.state)).all()
            return {state: n for state, n in rows}

    def wait(self, ids: Sequence[str], timeout: float, final: Iterable[str] = kinds.FINAL_STATES | {kinds.BLOCKED},
             on_tick: Any = None) -> dict[str, int]:
        final = set(final)
        deadline = time.monotonic() + timeout
        while True:
            states = self.states(ids)
            if sum(n for st, n in states.items() if st in final) == len(ids) or time.monotonic() > deadline:
                return states
            if on_tick:
                on_tick(states)
            time.sleep(0.5)

    def get(self, request_id: str) -> ProvisioningRequest:
        with self.session() as s:
            req = s.get(ProvisioningRequest, request_id)
            assert req is not None
            _ = req.steps
            return req

    def user(self, user_id: str) -> User:
        with self.session() as s:
            user = s.get(User, user_id)
            assert user is not None
            return user

    def close(self) -> None:
        self.engine.dispose()


def reprovision(seeder: Seeder, user_id: str, plan_id: str) -> RequestRef:
    """Provision an already provisioned user again (e.g. after its domain was verified)."""
    from shared.db.models import UserPlan

    with seeder.session() as s:
        b = Builder(s)
        user, plan = s.get(User, user_id), s.get(UserPlan, plan_id)
        assert user is not None and plan is not None
        req = b.provision(user, plan)
        s.commit()
        return ref(req)
