"""run_sync: one customer's sync — claim, domains and SKUs, users through users/delta, reconcile, release."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models import Customer, SyncPolicy, SyncRun, TenantConnection
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.errors import DeltaTokenExpired, MicrosoftError
from shared.providers.credentials import partner_credential
from shared.settings import Settings, get_settings
from shared.sync import bulk, runs
from shared.sync import claim as claims
from shared.sync.dispatch import dispatch_due_syncs
from shared.sync.plan_matching import load_matcher
from shared.sync.read_ahead import ReadAhead
from shared.sync.reconcile import ENTRA_SELECT, Reconciler, SyncScope
from shared.sync.runs import Counts, SyncRunResult
from shared.sync.tenant import refresh_tenant

# Transactions: the claim and the run row commit first (the API shows the run as running); every
# batch of users commits on its own (short locks, flat memory); the last transaction stores the
# new delta link together with the finished run and frees the claim. A run that fails part-way
# leaves its batches (each is idempotent) but not its delta link, so the next run starts from the
# previous link and sees those changes again.
#
# `dispatch_due_syncs` (shared.sync.dispatch) is re-exported here: the two entry points of sync.

__all__ = ["SyncRunResult", "dispatch_due_syncs", "run_sync"]

log = logging.getLogger(__name__)
CONNECTED = "connected"
# A run that imported this many users refreshes the table's statistics, so later runs plan well.
ANALYZE_AFTER_CREATED = 1000


class DeltaPagesLike(Protocol):
    delta_link: str | None

    def __iter__(self) -> Any: ...


class SyncGraph(Protocol):
    def domains(self) -> list[dict[str, Any]]: ...
    def subscribed_skus(self) -> list[dict[str, Any]]: ...
    def users_delta(self, delta_link: str | None = None, select: Sequence[str] | None = None,
                    page_size: int | None = None) -> DeltaPagesLike: ...


class SyncMicrosoft(Protocol):
    def graph(self, credential: PartnerCredential, tenant_id: str) -> Any: ...


class TenantNotConnected(Exception):
    """The customer has no connected tenant (Azure AD service), so there is nothing to read."""


@dataclass(frozen=True)
class _Job:
    customer_id: str
    run_id: str
    service_provider_id: str
    tenant_id: str | None
    connected: bool
    delta_link: str | None
    full: bool
    import_unknown: bool
    master: str


def run_sync(customer_id: str, *, trigger: str = "schedule", run_id: str | None = None, full: bool = False,
             session_factory: sessionmaker[Session] | None = None, microsoft: SyncMicrosoft | None = None,
             clock: Callable[[], datetime] = utcnow) -> SyncRunResult:
    """Sync one customer now, unless another sync of it is running (then state "skipped", nothing done).

    `full` ignores the stored delta link. `run_id` names the SyncRun row (created if absent); a run
    that already finished is answered from its row, so a redelivered task does not sync twice.
    Never raises for Microsoft or data problems: the run row and the result carry the reason.
    """
    return _Sync(customer_id, session_factory, microsoft, clock, get_settings()).run(trigger, run_id, full)


class _Sync:
    def __init__(self, customer_id: str, factory: sessionmaker[Session] | None, microsoft: SyncMicrosoft | None,
                 clock: Callable[[], datetime], settings: Settings) -> None:
        self.customer_id = customer_id
        self.factory = factory
        self.microsoft = microsoft
        self.clock = clock
        self.settings = settings
        self.counts = Counts()

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.factory)

    def run(self, trigger: str, run_id: str | None, full: bool) -> SyncRunResult:
        if run_id:
            with self.uow() as uow:
                existing = uow.session.get(SyncRun, run_id)
                if existing is not None and existing.state in runs.FINISHED:
                    return runs.result_of(existing)
        started = self._claim(trigger, run_id, full)
        if isinstance(started, SyncRunResult):
            return started
        job, claim = started
        try:
            return self._work(job, claim)
        except Exception as exc:  # the run row must say why, whatever went wrong
            log.warning("sync of customer %s failed: %s", self.customer_id, runs.describe(exc),
                        exc_info=not isinstance(exc, MicrosoftError | TenantNotConnected))
            return self._fail(job, claim, exc)

    # -- claim -------------------------------------------------------------------------------------
    def _claim(self, trigger: str, run_id: str | None, full: bool) -> tuple[_Job, claims.Claim] | SyncRunResult:
        now = self.clock()
        with self.uow() as uow:
            s = uow.session
            customer = s.get(Customer, self.customer_id)
            if customer is None:
                return SyncRunResult(self.customer_id, run_id, runs.FAILED, error="no such customer")
            claims.ensure_policies(s, [self.customer_id], now)
            claim = claims.try_claim(s, self.customer_id, now, self.settings.sync_stale_claim_s)
            if claim is None:
                if run_id:
                    runs.mark_skipped(s, run_id, now)
                uow.commit()
                return SyncRunResult(self.customer_id, run_id, runs.SKIPPED, error=runs.BUSY)
            runs.abandon_stale(s, self.customer_id, now, keep=run_id)
            policy = s.get(SyncPolicy, self.customer_id)
            assert policy is not None
            conn = s.scalar(select(TenantConnection).where(TenantConnection.customer_id == self.customer_id))
            full = full or not policy.delta_link
            run = runs.start(s, self.customer_id, run_id=run_id, trigger=trigger, full=full, now=now)
            job = _Job(self.customer_id, run.id, customer.service_provider_id, conn.tenant_id if conn else None,
                       conn is not None and conn.state == CONNECTED, policy.delta_link, full,
                       policy.import_unknown_users, policy.master)
            uow.commit()
            return job, claim

    # -- the work ----------------------------------------------------------------------------------
    def _work(self, job: _Job, claim: claims.Claim) -> SyncRunResult:
        if not job.connected or not job.tenant_id:
            raise TenantNotConnected("the customer's tenant is not connected (Azure AD service)")
        with self.uow() as uow:
            credential = partner_credential(uow.session, job.service_provider_id)
        if self.microsoft is None:
            from shared.microsoft.factory import get_microsoft
            self.microsoft = get_microsoft()
        graph: SyncGraph = self.microsoft.graph(credential, job.tenant_id)
        domains, skus = graph.domains(), graph.subscribed_skus()
        round_started = self.clock()
        with self.uow() as uow:
            s = uow.session
            sku_parts = refresh_tenant(s, job.customer_id, domains, skus, round_started)
            initial = s.scalar(select(TenantConnection.initial_domain)
                               .where(TenantConnection.customer_id == job.customer_id))
            scope = SyncScope(job.customer_id, (initial or "").lower() or None, sku_parts,
                              load_matcher(s, job.customer_id, job.service_provider_id), job.import_unknown,
                              job.master)
            reconciler = Reconciler.load(s, scope, round_started)
            self._renew(uow, claim)
        link = None if job.full else job.delta_link
        full = link is None
        try:
            new_link = self._users(graph, link, reconciler, claim)
        except DeltaTokenExpired:
            if full:
                raise
            log.info("delta link of customer %s expired: full sync", job.customer_id)
            full = True
            reconciler.begin_round(self.clock())
            new_link = self._users(graph, None, reconciler, claim)
        return self._finish(job, claim, reconciler, new_link, full)

    def _users(self, graph: SyncGraph, link: str | None, reconciler: Reconciler, claim: claims.Claim) -> str:
        """One users/delta round, reconciled in batches; returns the round's new delta link."""
        pages = graph.users_delta(link, select=ENTRA_SELECT, page_size=self.settings.sync_page_size)
        size = self.settings.sync_batch_size
        buffer: list[dict[str, Any]] = []
        with ReadAhead[list[dict[str, Any]]](pages) as ahead:
            for page in ahead:
                buffer.extend(page)
                while len(buffer) >= size:
                    self._apply(reconciler, buffer[:size], claim)
                    del buffer[:size]
        if buffer:
            self._apply(reconciler, buffer, claim)
        if not pages.delta_link:
            raise MicrosoftError("users/delta ended without a delta link")
        return pages.delta_link

    def _apply(self, reconciler: Reconciler, batch: Iterable[dict[str, Any]], claim: claims.Claim) -> None:
        with self.uow() as uow:
            counts = reconciler.apply(uow.session, batch)
            self._renew(uow, claim)
        self.counts.add(counts)

    def _renew(self, uow: UnitOfWork, claim: claims.Claim) -> None:
        """Heartbeat, then commit: the batch and the renewed claim become durable together."""
        now = self.clock()
        claims.renew(uow.session, claim, now)
        uow.commit()
        claim.token = now

    def _finish(self, job: _Job, claim: claims.Claim, reconciler: Reconciler, new_link: str,
                full: bool) -> SyncRunResult:
        now = self.clock()
        with self.uow() as uow:
            s = uow.session
            if full:
                self.counts.removed += reconciler.sweep(s)
            run = s.get(SyncRun, job.run_id)
            assert run is not None
            runs.finish(run, self.counts, full=full, now=now)
            # The delta link is stored only with the finished run: a failed run never skips changes.
            if not claims.release(s, claim, delta_link=new_link, last_run_at=now):
                raise claims.ClaimLost(f"the sync claim of customer {job.customer_id} was taken over")
            uow.commit()
            result = runs.result_of(run, self.counts.ignored)
        if self.counts.created >= ANALYZE_AFTER_CREATED:
            self._analyze()
        return result

    def _analyze(self) -> None:
        try:
            with self.uow() as uow:
                bulk.analyze_users(uow.session)
                uow.commit()
        except SQLAlchemyError as exc:  # only a planner hint: a refused ANALYZE must not fail the sync
            log.info("ANALYZE users after the sync of customer %s failed: %s", self.customer_id,
                     runs.describe(exc))

    def _fail(self, job: _Job, claim: claims.Claim, exc: BaseException) -> SyncRunResult:
        now, error = self.clock(), runs.describe(exc)
        with self.uow() as uow:
            s = uow.session
            run = runs.fail(s, job.run_id, error, self.counts, now)
            claims.release(s, claim, last_run_at=now)
            uow.commit()
            if run is not None:
                return runs.result_of(run, self.counts.ignored)
        return SyncRunResult(job.customer_id, job.run_id, runs.FAILED, error=error)
