"""Seeding the emulator and the database consistently, and reading request states back."""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from emulator.testing import RunningEmulator
from shared.db.models import Customer, ProvisioningRequest, User, UserPlan
from shared.requests import kinds
from shared.requests.dispatch import RequestRef
from shared.requests.service import ref
from tests.builders import Builder, Licence, Sku

PARTNER_SECRET = "partner-secret-" + "p" * 8
MAILBOX_SKU = "O365_BUSINESS_ESSENTIALS"
# The service plans each seeded SKU carries: one with a mailbox, one without.
SKU_PLANS = {"O365_BUSINESS_ESSENTIALS": ("EXCHANGE_S_STANDARD",), "FLOW_FREE": ("EXCHANGE_S_FOUNDATION",)}
# Every fault off; a caller sets what its test needs on top (quiet_emulator(**faults)).
QUIET_FAULTS: dict[str, Any] = {
    "latency_ms": {"mean": 0, "jitter": 0}, "error_rate": 0.0, "graph_rate_per_tenant": None,
    "exchange_rate_per_tenant": None, "partner_center_rate": None, "replication_lag_s": 0.0,
    "mailbox_delay_s": {"first": 0, "next": 0}, "token_fail_rate": 0.0, "purchase_delay_s": 0.0,
    "lost_answer_rate": 0.0}


def quiet_emulator(emulator: RunningEmulator, **faults: Any) -> None:
    """Faults off (no latency, errors, throttling, lag or mailbox delay), then `faults`."""
    emulator.set_faults(**QUIET_FAULTS)
    if faults:
        emulator.set_faults(**faults)


@dataclass(frozen=True)
class Tenant:
    """One emulated tenant and its customer in the database, ready for requests."""

    tenant_id: str
    initial_domain: str
    domain: str
    customer_id: str
    provider_id: str
    plan_id: str
    skus: tuple[str, ...]


class Seeder:
    """Seeds the emulator and the database consistently, with real commits; reads request states.

    Requests are created straight in the database as the API accepts them (request row, seat held,
    password encrypted on the user service); the caller publishes them (e.g. worker.canvas.publish).
    """

    def __init__(self, database_url: str, emulator: RunningEmulator) -> None:
        self.engine = create_engine(database_url, pool_size=2, pool_pre_ping=True)
        self.emulator = emulator
        self.partner_tenant = str(uuid.uuid4())
        self.client_id = "app-" + uuid.uuid4().hex[:8]
        emulator.add_partner(self.partner_tenant, self.client_id, PARTNER_SECRET)

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # -- the world -----------------------------------------------------------------------------------------------
    def tenant(self, *, units: int = 50, skus: Sequence[str] = (MAILBOX_SKU,), unverified: Sequence[str] = (),
               users: Sequence[dict[str, Any]] = (), mca_signed: bool = True, gdap: str = "active",
               connected: bool = True, hard_limit: int | None = None, provider_kind: str = "indirect") -> Tenant:
        """A tenant with `units` seats of each SKU; its customer connected and one user plan of all of them."""
        tag = uuid.uuid4().hex[:8]
        domain, initial = f"t{tag}.example", f"t{tag}.onmicrosoft.com"
        seeded = self.emulator.add_tenant(
            company_name=f"Tenant {tag}", initial_domain=initial,
            domains=[{"name": domain, "verified": True}, *({"name": d, "verified": False} for d in unverified)],
            skus=[{"sku_part_number": sku, "units": units} for sku in skus], mca_signed=mca_signed, gdap=gdap,
            users=list(users),
            # Connected in the database directly, past connect_tenant's consent: consented here as well.
            consented_apps=[self.client_id] if connected else [])
        rows = {s["sku_part_number"]: s for s in seeded["skus"]}
        with self.session() as s:
            b = Builder(s)
            provider = b.provider(pc_tenant_id=self.partner_tenant, client_id=self.client_id,
                                  client_secret=PARTNER_SECRET)
            provider.kind = provider_kind
            plan = b.user_plan([Licence(sku) for sku in skus], provider)
            local_skus = [Sku(sku, sku_id=rows[sku]["sku_id"], total=units, consumed=rows[sku].get("consumed", 0),
                              plans=SKU_PLANS.get(sku, ("EXCHANGE_S_STANDARD",))) for sku in skus]
            customer = b.customer(provider, tenant_id=seeded["tenant_id"], initial_domain=initial, verified=[domain],
                                  connected=connected, mca_signed=mca_signed, skus=local_skus if connected else [],
                                  plans=[(plan, hard_limit)] if connected else [])
            s.commit()
            return Tenant(seeded["tenant_id"], initial, domain, customer.id, provider.id, plan.id, tuple(skus))

    def users(self, tenant: Tenant, locals_: Iterable[str], *, domain: str | None = None,
              aliases: int = 0, passwords: dict[str, str] | None = None, created_by_role: str | None = None,
              parent_id: str | None = None, reserve: bool = True) -> list[RequestRef]:
        """One user.provision request per user, as the API accepts it; aliases `<local>.a<n>@<domain>`."""
        refs = []
        with self.session() as s:
            b = Builder(s)
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
        from shared.requests.service import create_request

        with self.session() as s:
            req = create_request(s, kind=kind, service_provider_id=tenant.provider_id, customer_id=tenant.customer_id,
                                 user_id=user_id, params=params or {})
            s.commit()
            return ref(req)

    def reprovision(self, user_id: str, plan_id: str) -> RequestRef:
        """Provision an already provisioned user again (e.g. after its domain was verified)."""
        with self.session() as s:
            b = Builder(s)
            user, plan = s.get(User, user_id), s.get(UserPlan, plan_id)
            assert user is not None and plan is not None
            req = b.provision(user, plan)
            s.commit()
            return ref(req)

    def seed(self, tenants: int, per_tenant: int, *, aliases: int = 1, skus: Sequence[str] = (MAILBOX_SKU,),
             prefix: str = "u") -> tuple[list[Tenant], list[RequestRef]]:
        """`tenants` tenants (5 spare seats each) of `per_tenant` users; the requests interleaved, as bulk calls
        mix."""
        seeded = [self.tenant(units=per_tenant + 5, skus=skus) for _ in range(tenants)]
        batches = [self.users(t, [f"{prefix}{i:03d}" for i in range(per_tenant)], aliases=aliases) for t in seeded]
        return seeded, [r for group in zip(*batches, strict=True) for r in group]

    # -- reading back --------------------------------------------------------------------------------------------
    def states(self, ids: Sequence[str]) -> dict[str, int]:
        """Request states; while the database is unreachable (a drill's outage), `{"unknown": len(ids)}`."""
        try:
            with self.session() as s:
                rows = s.execute(select(ProvisioningRequest.state, func.count())
                                 .where(ProvisioningRequest.id.in_(ids)).group_by(ProvisioningRequest.state)).all()
                return {state: n for state, n in rows}
        except OperationalError:
            return {"unknown": len(ids)}

    def current_steps(self, ids: Sequence[str]) -> dict[str, int]:
        """Unfinished requests by the step they are at (a bench's view of where the pipeline waits)."""
        try:
            with self.session() as s:
                rows = s.execute(select(ProvisioningRequest.current_step, func.count())
                                 .where(ProvisioningRequest.id.in_(ids),
                                        ProvisioningRequest.state.notin_(kinds.FINAL_STATES))
                                 .group_by(ProvisioningRequest.current_step)).all()
                return {str(step): n for step, n in rows}
        except OperationalError:
            return {}

    def wait(self, ids: Sequence[str], timeout: float, final: Iterable[str] = kinds.FINAL_STATES | {kinds.BLOCKED},
             on_tick: Callable[[dict[str, int]], None] | None = None) -> dict[str, int]:
        """Until every request is in a `final` state (or `timeout`); `on_tick` runs between looks."""
        final = set(final)
        deadline = time.monotonic() + timeout
        while True:
            states = self.states(ids)
            if sum(n for st, n in states.items() if st in final) == len(ids) or time.monotonic() > deadline:
                return states
            if on_tick:
                on_tick(states)
            time.sleep(0.5)

    def until(self, ids: Sequence[str], ready: Callable[[dict[str, int]], bool], *, timeout: float = 60,
              what: str = "the moment") -> dict[str, int]:
        """Wait for a moment in the run (e.g. a third of the requests done) before breaking something."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self.states(ids)
            if ready(states):
                return states
            time.sleep(0.2)
        raise AssertionError(f"{what} never came: {self.states(ids)}")

    def get(self, request_id: str) -> ProvisioningRequest:
        with self.session() as s:
            req = s.get(ProvisioningRequest, request_id)
            assert req is not None
            _ = req.steps
            return req

    def requests(self, ids: Iterable[str]) -> list[ProvisioningRequest]:
        with self.session() as s:
            rows = list(s.scalars(select(ProvisioningRequest).where(ProvisioningRequest.id.in_(list(ids)))))
            for r in rows:
                _ = r.steps
            return rows

    def user(self, user_id: str) -> User:
        with self.session() as s:
            user = s.get(User, user_id)
            assert user is not None
            return user

    def close(self) -> None:
        self.engine.dispose()


def done_share(states: dict[str, int], total: int) -> float:
    return states.get(kinds.SUCCEEDED, 0) / total
