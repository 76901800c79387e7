"""The beat reconciler: Postgres is the truth, so whatever a lost message left behind is driven again."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session, aliased, lazyload

from shared.db.models import ProvisioningRequest
from shared.pipeline import finish
from shared.requests import kinds
from shared.requests.dispatch import RequestRef
from shared.requests.service import redispatch
from shared.settings import Settings

PR = ProvisioningRequest
# A request re-driven again and again without a claim (its messages wait behind a backlog longer than
# REDRIVE_AFTER_S, or no worker takes its queue) is looked at 2, 4, ... up to this many times later.
MAX_REDRIVE_BACKOFF = 16


def due_requests(session: Session, *, now: datetime, settings: Settings, limit: int) -> list[RequestRef]:
    parent = aliased(PR)
    stale = now - timedelta(seconds=settings.redrive_after_s)
    rows = session.scalars(
        select(PR)
        .where(PR.state.in_([kinds.QUEUED, kinds.RUNNING, kinds.WAITING]),
               or_(PR.lease_until.is_(None), PR.lease_until < now),
               or_(PR.next_attempt_at <= now, and_(PR.next_attempt_at.is_(None), PR.updated_at <= stale)),
               or_(PR.parent_id.is_(None),
                   exists().where(parent.id == PR.parent_id, parent.state == kinds.SUCCEEDED)))
        .order_by(PR.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True, of=PR)
        # A re-drive needs the request row only; the mapper's selectin of every step was a tenth of
        # what the reconciler cost a worker under a backlog.
        .options(lazyload(PR.steps))).all()
    refs = []
    for req in rows:
        if req.state == kinds.WAITING:
            req.state = kinds.QUEUED  # claimable again; an early duplicate could not jump the timer
        req.lease_until = req.lease_owner = None
        req.not_before = None
        # A message merely queued behind a backlog is published again too (Postgres cannot tell it from
        # a lost one): the new dispatch makes the older copy stop at its claim, and each re-drive without
        # a claim in between waits twice as long, so a deep queue is not flooded with copies.
        backoff = min(2 ** (req.redrives or 0), MAX_REDRIVE_BACKOFF)
        req.redrives = (req.redrives or 0) + 1
        req.next_attempt_at = now + timedelta(seconds=settings.redrive_after_s * backoff)
        req.updated_at = now
        refs.append(redispatch(req))
    return refs


def orphans(session: Session, *, now: datetime, limit: int) -> int:
    """Fail active children whose onboarding parent failed or was cancelled."""
    parent = aliased(PR)
    rows = session.scalars(
        select(PR)
        .where(PR.parent_id.is_not(None), PR.state.in_(list(kinds.ACTIVE_STATES)),
               or_(PR.lease_until.is_(None), PR.lease_until < now),
               exists().where(parent.id == PR.parent_id, parent.state.in_([kinds.FAILED, kinds.CANCELLED])))
        .limit(limit)
        .with_for_update(skip_locked=True, of=PR)).all()
    for req in rows:
        finish.fail_request(session, req, "parent_failed", f"onboarding request {req.parent_id} did not succeed",
                            now=now)
    return len(rows)


def reconcile(session: Session, *, now: datetime, settings: Settings) -> list[RequestRef]:
    """One pass; the caller commits, then publishes the refs (publish_after_commit).

    - due `waiting` requests (their durable timer ran out) go back to `queued` and are re-enqueued;
    - `queued`/`running` requests whose lease expired, or that nobody touched since their re-drive
      time (lost message, killed worker, flushed Redis), are re-enqueued from their current step;
    - children of a succeeded onboarding request start; children of a failed one fail (`parent_failed`).

    Rows are taken with FOR UPDATE SKIP LOCKED (Postgres), so two reconcilers never take the same one,
    and each re-enqueue pushes the row's next look `redrive_after_s` away, so it is not doubled either.
    """
    orphans(session, now=now, limit=settings.reconcile_batch)
    return due_requests(session, now=now, settings=settings, limit=settings.reconcile_batch)
