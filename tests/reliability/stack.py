"""Failure-drill harness: real `provisioner worker|beat` processes, service restarts, seeding and the final audit.

Deliberately separate from tests/e2e/pipeline_harness.py (another suite's helper): its own Redis dbs
(broker 8, limiter 7), its own Postgres database per drill module, and workers on the threads pool by
default (`provisioner worker -P threads -c 4`), as production runs them.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from emulator.testing import RunningEmulator
from shared.db.models import Customer, ProvisioningRequest, User, UserPlan
from shared.requests import kinds
from shared.requests.dispatch import RequestRef
from shared.requests.service import ref
from tests.builders import Builder, Licence, Sku

ROOT = Path(__file__).resolve().parents[2]
BROKER_DB, LIMITER_DB = 8, 7
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
PARTNER_SECRET = "drill-partner-secret-" + "d" * 8
# A mailbox licence and one without a mailbox: every user costs two seats, so licence_assignments
# must equal users x 2 (a licence assigned twice would show).
SKUS = ("O365_BUSINESS_ESSENTIALS", "FLOW_FREE")
SKU_PLANS = {"O365_BUSINESS_ESSENTIALS": ("EXCHANGE_S_STANDARD",), "FLOW_FREE": ("EXCHANGE_S_FOUNDATION",)}

# Short clocks so a lost message, a dead worker's lease and a mailbox timer all come due within seconds.
DRILL_SETTINGS = {
    "ENVIRONMENT": "test", "LOG_LEVEL": "INFO", "LOG_JSON": "false",  # run_step_messages() reads the plain log
    # REDRIVE_AFTER_S must stay above the time a message waits in the queue during the drill (about
    # active requests / ~50 steps per second here), else the reconciler re-drives requests whose message
    # is merely queued: see test_redrive_backlog.py for what that does today.
    "LEASE_SECONDS": "10", "RECONCILE_INTERVAL_S": "1", "REDRIVE_AFTER_S": "10",
    "MAX_DELIVERIES": "3", "MAX_COUNTDOWN_S": "10", "MAX_STEP_RETRIES": "60",
    "CREATE_CONFIRM_S": "8", "RETRY_BUDGET_S": "3", "RETRY_MAX_WAIT_S": "1",
    "MAILBOX_FIRST_DELAY_S": "1", "MAILBOX_BACKOFF_FACTOR": "1.5", "MAILBOX_MAX_DELAY_S": "3",
    "MAILBOX_DEADLINE_S": "600", "SYNC_DISPATCH_INTERVAL_S": "3600",
}
# Mailboxes appear 1 s after licensing (0.5 s after the tenant's first): every request takes the durable
# timer path (waiting -> reconciler -> queued) at least once.
MAILBOX_DELAY = {"first": 1, "next": 0.5}


def drill_env(pg_url: str, emulator: RunningEmulator, **overrides: str) -> dict[str, str]:
    env = {**os.environ, **DRILL_SETTINGS, "DATABASE_URL": pg_url,
           "BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{BROKER_DB}",
           "REDIS_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{LIMITER_DB}",
           "MS_LOGIN_URL": emulator.url, "MS_GRAPH_URL": emulator.url, "MS_PARTNER_CENTER_URL": emulator.url,
           "MS_EXCHANGE_URL": emulator.url, "MS_CA_BUNDLE": emulator.ca_path, **overrides}
    env.setdefault("SECRET_KEY", "test-secret-key-" + "x" * 16)
    env["PYTHONPATH"] = str(ROOT)
    return env


def flush_redis() -> None:
    for db in (BROKER_DB, LIMITER_DB):
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()


def quiet_emulator(emulator: RunningEmulator, **faults: Any) -> None:
    """Faults off (no latency, errors or throttling), the drill's mailbox delay, then `faults`."""
    emulator.set_faults(latency_ms={"mean": 0, "jitter": 0}, error_rate=0.0, graph_rate_per_tenant=None,
                        exchange_rate_per_tenant=None, partner_center_rate=None, replication_lag_s=0.0,
                        mailbox_delay_s=MAILBOX_DELAY, token_fail_rate=0.0)
    if faults:
        emulator.set_faults(**faults)


# -- services --------------------------------------------------------------------------------------------------
def _run(cmd: Sequence[str], timeout: float = 60) -> None:
    subprocess.run(list(cmd), check=True, timeout=timeout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def redis_up() -> bool:
    try:
        return bool(redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_timeout=1).ping())
    except redis.RedisError:
        return False


def postgres_up() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"], check=False).returncode == 0


def _wait(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not come back within {timeout:.0f}s")
        time.sleep(0.2)


def start_redis() -> None:
    if not redis_up():
        os.makedirs("/var/lib/redis", exist_ok=True)
        os.makedirs("/var/log/redis", exist_ok=True)
        _run(["redis-server", "--daemonize", "yes", "--bind", REDIS_HOST, "--port", str(REDIS_PORT), "--save", "",
              "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"])
    _wait(redis_up, "Redis")


def stop_redis() -> None:
    """Redis here keeps nothing on disk: every queued and unacked message, every limiter key is gone."""
    subprocess.run(["redis-cli", "-h", REDIS_HOST, "-p", str(REDIS_PORT), "shutdown", "nosave"], check=False,
                   timeout=30, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait(lambda: not redis_up(), "Redis shutdown", timeout=30)


def _pg_cluster(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    _run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action], timeout=120)


def stop_postgres() -> None:
    _pg_cluster("stop")


def start_postgres() -> None:
    if not postgres_up():
        _pg_cluster("start")
    _wait(postgres_up, "PostgreSQL")


# -- processes -------------------------------------------------------------------------------------------------
@dataclass
class Stack:
    """Worker and beat processes of one drill; each in its own session so a signal reaches only it."""

    env: dict[str, str]
    logdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="drill-")))
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    exited: dict[str, int] = field(default_factory=dict)

    def _spawn(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        assert name not in self.procs, f"{name} is already running"
        with open(self.logdir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, *argv], env={**self.env, **(env or {})}, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def worker(self, name: str, *, pool: str = "threads", concurrency: int = 4, module: str = "commands.cli",
               env: dict[str, str] | None = None, loglevel: str = "INFO") -> subprocess.Popen[bytes]:
        """`provisioner worker -P threads -c 4 ...` (or `module`, a test bootstrap taking the same options)."""
        args = ["-m", module, "worker", "-P", pool, "-c", str(concurrency), "-Q", "provisioning,polling,sync",
                "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h", "--without-mingle", "--without-gossip", "-l", loglevel]
        return self._spawn(name, args, env)

    def beat(self, name: str = "beat", *, loglevel: str = "INFO") -> subprocess.Popen[bytes]:
        """`provisioner beat`, with its own schedule file."""
        return self._spawn(name, ["-m", "commands.cli", "beat", "--schedule", str(self.logdir / f"{name}-schedule"),
                                  "-l", loglevel])

    def alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def signal(self, name: str, sig: int) -> None:
        os.killpg(self.procs[name].pid, sig)

    def kill(self, name: str) -> None:
        """kill -9: no warm shutdown, no ack, no restore of unacked messages."""
        proc = self.procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        self.exited[name] = proc.wait(timeout=30)

    def terminate(self, name: str, timeout: float = 60) -> tuple[int, float]:
        """SIGTERM (Celery's warm/soft shutdown); returns (exit code, seconds it took)."""
        proc = self.procs.pop(name)
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        code = proc.wait(timeout=timeout)
        self.exited[name] = code
        return code, time.monotonic() - started

    def reap(self) -> list[str]:
        """Names of processes that died on their own since the last look (e.g. a crashed worker)."""
        dead = [name for name, proc in self.procs.items() if proc.poll() is not None]
        for name in dead:
            self.exited[name] = self.procs.pop(name).returncode
        return dead

    def log(self, name: str) -> str:
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self, tail: int = 8000) -> str:
        text = "\n".join(f"=== {p.name}\n{p.read_text(errors='replace')[-tail:]}" for p in sorted(
            self.logdir.glob("*.log")))
        return text[-tail * 2:]

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.procs.clear()
        if exc_type is None:  # kept for a post-mortem when the drill failed inside the block
            shutil.rmtree(self.logdir, ignore_errors=True)


def run_step_messages(stack: Stack) -> int:
    """run_step messages the drill's workers took from the broker (Celery logs each one `received`)."""
    return sum(1 for p in stack.logdir.glob("*.log") for line in p.read_text(errors="replace").splitlines()
               if "Task worker.tasks.requests.run_step[" in line and line.endswith("] received"))


# -- the world -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    domain: str
    customer_id: str
    plan_id: str
    users: int


class World:
    """Seeds the emulator and the drill database consistently; reads request states (riding out outages)."""

    def __init__(self, pg_url: str, emulator: RunningEmulator) -> None:
        self.engine = create_engine(pg_url, pool_size=2, pool_pre_ping=True)
        self.emulator = emulator
        self.partner_tenant = str(uuid.uuid4())
        self.client_id = "drill-" + uuid.uuid4().hex[:8]
        emulator.add_partner(self.partner_tenant, self.client_id, PARTNER_SECRET)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def tenant(self, users: int) -> Tenant:
        tag = uuid.uuid4().hex[:8]
        domain, initial = f"d{tag}.example", f"d{tag}.onmicrosoft.com"
        seeded = self.emulator.add_tenant(
            company_name=f"Drill {tag}", initial_domain=initial, domains=[{"name": domain, "verified": True}],
            skus=[{"sku_part_number": sku, "units": users + 5} for sku in SKUS], mca_signed=True, gdap="active",
            users=[])
        sku_ids = {s["sku_part_number"]: s["sku_id"] for s in seeded["skus"]}
        with self.session() as s:
            b = Builder(s)
            provider = b.provider(pc_tenant_id=self.partner_tenant, client_id=self.client_id,
                                  client_secret=PARTNER_SECRET)
            plan = b.user_plan([Licence(sku) for sku in SKUS], provider)
            customer = b.customer(provider, tenant_id=seeded["tenant_id"], initial_domain=initial, verified=[domain],
                                  skus=[Sku(sku, sku_id=sku_ids[sku], total=users + 5, plans=SKU_PLANS[sku])
                                        for sku in SKUS],
                                  plans=[(plan, None)])
            s.commit()
            return Tenant(seeded["tenant_id"], domain, customer.id, plan.id, users)

    def provision(self, tenant: Tenant, prefix: str = "u", aliases: int = 1) -> list[RequestRef]:
        """`tenant.users` user.provision requests, as the API accepts them (seats held, request queued)."""
        refs = []
        with self.session() as s:
            b = Builder(s)
            customer, plan = s.get(Customer, tenant.customer_id), s.get(UserPlan, tenant.plan_id)
            assert customer is not None and plan is not None
            for i in range(tenant.users):
                local = f"{prefix}{i:03d}"
                user = b.user(customer, f"{local}@{tenant.domain}", plan=plan,
                              aliases=[f"{local}.a{n}@{tenant.domain}" for n in range(aliases)])
                refs.append(ref(b.provision(user, plan)))
            s.commit()
        return refs

    def states(self, ids: Sequence[str]) -> dict[str, int]:
        """Request states; during a database outage, the last answer's shape with an `unknown` marker."""
        try:
            with self.session() as s:
                rows = s.execute(select(ProvisioningRequest.state, func.count())
                                 .where(ProvisioningRequest.id.in_(ids)).group_by(ProvisioningRequest.state)).all()
                return {state: n for state, n in rows}
        except OperationalError:
            return {"unknown": len(ids)}

    def wait(self, ids: Sequence[str], timeout: float, on_tick: Callable[[dict[str, int]], None] | None = None,
             ) -> dict[str, int]:
        """Until every request is final (or `timeout`); `on_tick` runs between looks (the drill's actions)."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.states(ids)
            if sum(n for st, n in states.items() if st in kinds.FINAL_STATES) == len(ids):
                return states
            if time.monotonic() > deadline:
                return states
            if on_tick:
                on_tick(states)
            time.sleep(0.5)

    def requests(self, ids: Iterable[str]) -> list[ProvisioningRequest]:
        with self.session() as s:
            rows = list(s.scalars(select(ProvisioningRequest).where(ProvisioningRequest.id.in_(list(ids)))))
            for r in rows:
                _ = r.steps
            return rows

    def users_of(self, tenant: Tenant) -> list[User]:
        with self.session() as s:
            return list(s.scalars(select(User).where(User.customer_id == tenant.customer_id)))

    def close(self) -> None:
        self.engine.dispose()


# -- the audit -------------------------------------------------------------------------------------------------
def audit(world: World, tenants: Sequence[Tenant], refs: Sequence[RequestRef], *,
          failed: Iterable[str] = ()) -> dict[str, Any]:
    """Every request final and accounted for; Microsoft changed exactly once per user.

    `failed` names requests expected to fail (the poison request); all others must have succeeded.
    Returns the facts the drill prints (`redriven`, `max_step_attempts`: over the requests expected to
    succeed; `step_attempts`: over all).
    """
    failed = set(failed)
    rows = {r.id: r for r in world.requests(r.id for r in refs)}
    assert len(rows) == len(refs), f"lost requests: {len(refs) - len(rows)} of {len(refs)} rows missing"
    not_final = {i: (r.state, r.current_step, r.error_code) for i, r in rows.items()
                 if r.state not in kinds.FINAL_STATES}
    assert not not_final, f"{len(not_final)} request(s) not final: {list(not_final.items())[:10]}"
    wrong = {i: (r.state, r.current_step, r.error_code, r.error_message) for i, r in rows.items()
             if (r.state != kinds.FAILED if i in failed else r.state != kinds.SUCCEEDED)}
    assert not wrong, f"{len(wrong)} request(s) ended wrongly: {list(wrong.items())[:10]}"
    for r in rows.values():
        if r.id not in failed:
            assert all(s.state in (kinds.STEP_SUCCEEDED, kinds.STEP_SKIPPED) for s in r.steps), r.id

    stats = world.emulator.stats()
    for t in tenants:
        expected_users = t.users - sum(1 for r in rows.values() if r.id in failed and r.customer_id == t.customer_id)
        mine = stats["by_tenant"].get(t.tenant_id, {})
        facts = {k: mine.get(k, 0) for k in ("users_created", "duplicate_create_attempts", "licence_assignments")}
        assert facts == {"users_created": expected_users, "duplicate_create_attempts": 0,
                         "licence_assignments": expected_users * len(SKUS)}, (t.tenant_id, facts)
        users = world.emulator.tenant(t.tenant_id)["users"]
        assert len(users) == expected_users
        for u in users:
            assert len(u["assignedLicenses"]) == len(SKUS), u["userPrincipalName"]
            local = u["userPrincipalName"].split("@")[0]
            mine_alias = [a for a in u["proxyAddresses"] if a.lower() == f"smtp:{local}.a0@{t.domain}"]
            assert len(mine_alias) == 1, (u["userPrincipalName"], u["proxyAddresses"])
    rerun = [max((s.attempts for s in r.steps if s.name not in ("wait_mailbox", "apply_aliases")), default=0)
             for r in rows.values() if r.id not in failed]
    return {"requests": len(refs), "redriven": sum(1 for n in rerun if n > 1),
            "max_step_attempts": max(rerun, default=0),
            "step_attempts": sum(s.attempts for r in rows.values() for s in r.steps)}


def seed(world: World, tenants: int, per_tenant: int) -> tuple[list[Tenant], list[RequestRef]]:
    """`tenants` tenants of `per_tenant` users each; the requests interleaved, as bulk calls mix."""
    seeded = [world.tenant(per_tenant) for _ in range(tenants)]
    batches = [world.provision(t) for t in seeded]
    return seeded, [r for group in zip(*batches, strict=True) for r in group]


def until(world: World, ids: Sequence[str], ready: Callable[[dict[str, int]], bool], *, timeout: float = 60,
          what: str = "the drill's moment") -> dict[str, int]:
    """Wait for a moment in the run (e.g. a third of the requests done) before breaking something."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = world.states(ids)
        if ready(states):
            return states
        time.sleep(0.2)
    raise AssertionError(f"{what} never came: {world.states(ids)}")


def done_share(states: dict[str, int], total: int) -> float:
    return states.get(kinds.SUCCEEDED, 0) / total


def wait_ready(stack: Stack, name: str, timeout: float = 30) -> None:
    """Until the Celery worker `name` logged `ready.` (connected, consuming)."""
    deadline = time.monotonic() + timeout
    while " ready." not in stack.log(name):
        if not stack.alive(name):
            raise AssertionError(f"{name} exited:\n{stack.log(name)[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} not ready after {timeout:.0f}s:\n{stack.log(name)[-3000:]}")
        time.sleep(0.1)
