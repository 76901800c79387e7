"""The beat reconciler: Postgres is the truth, so whatever a lost message left behind is driven again."""
from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, and_, exists, or_, select, update
from sqlalchemy.orm import Session, aliased, lazyload

from shared.db.models import ProvisioningRequest
from shared.pipeline import finish
from shared.requests import kinds
from shared.requests.dispatch import RequestRef
from shared.requests.service import ref
from shared.settings import Settings

PR = ProvisioningRequest
UNKNOWN = "?"


class Watermark:
    """Which unclaimed requests may still have their message waiting in a queue (so are not lost).

    Queues are FIFO: when the oldest message still waiting in a queue belongs to a request last
    touched (published, or its previous step recorded) at T, every message sent for that queue
    before T has been taken. An unclaimed request touched before T lost its message and is
    re-driven; one touched at or after T may be waiting behind a backlog and is left alone, so a
    queue deeper than REDRIVE_AFTER_S no longer doubles its messages. An empty queue holds nothing:
    every due request lost its message. Unknown (another broker, Redis unreachable): re-drive, as
    without a watermark. Errors of this kind only ever re-drive (a duplicate copy halts at its claim).
    """

    def __init__(self, queue_for: Callable[[str, str], str], oldest: Mapping[str, datetime | str | None]) -> None:
        # oldest[queue]: the touch time of the request of the oldest waiting message, None if the
        # queue is empty, UNKNOWN if it cannot be told.
        self.queue_for = queue_for
        self.oldest = oldest

    def may_be_queued(self, req: ProvisioningRequest) -> bool:
        if req.lease_until is not None or req.state not in (kinds.QUEUED, kinds.RUNNING) or not req.current_step:
            return False  # claimed (its delivery died) or waiting on a timer: not a queued message
        oldest = self.oldest.get(self.queue_for(req.kind, req.current_step), UNKNOWN)
        if oldest is None or isinstance(oldest, str):
            return False
        return req.updated_at >= oldest


def oldest_touched(session: Session, oldest_request_ids: Mapping[str, str | None]) -> dict[str, datetime | str | None]:
    """{queue: touch time of the request whose message waits longest} from {queue: its request id}."""
    ids = [i for i in oldest_request_ids.values() if i and i != UNKNOWN]
    touched = dict(session.execute(select(PR.id, PR.updated_at).where(PR.id.in_(ids))).tuples().all()) if ids else {}
    out: dict[str, datetime | str | None] = {}
    for queue, request_id in oldest_request_ids.items():
        if request_id is None:
            out[queue] = None
        else:
            out[queue] = touched.get(request_id, UNKNOWN)
    return out


def due_requests(session: Session, *, now: datetime, settings: Settings, limit: int,
                 watermark: Watermark | None = None) -> list[RequestRef]:
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
    refs, waiting_in_queue = [], []
    for req in rows:
        if watermark is not None and watermark.may_be_queued(req):
            waiting_in_queue.append(req.id)
            continue
        if req.state == kinds.WAITING:
            req.state = kinds.QUEUED  # claimable again; an early duplicate could not jump the timer
        req.lease_until = req.lease_owner = None
        req.next_attempt_at = now + timedelta(seconds=settings.redrive_after_s)
        req.updated_at = now
        refs.append(ref(req))
    if waiting_in_queue:
        # Look again later; `updated_at` kept as it is (not the ORM's onupdate): it is the time the
        # message was sent, which the watermark compares.
        table = cast(Table, PR.__table__)
        session.execute(update(table).where(table.c.id.in_(waiting_in_queue))
                        .values(next_attempt_at=now + timedelta(seconds=settings.redrive_after_s),
                                updated_at=table.c.updated_at))
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


def reconcile(session: Session, *, now: datetime, settings: Settings,
              watermark: Watermark | None = None) -> list[RequestRef]:
    """One pass; the caller commits, then publishes the refs (publish_after_commit).

    - due `waiting` requests (their durable timer ran out) go back to `queued` and are re-enqueued;
    - `queued`/`running` requests whose lease expired, or that nobody touched since their re-drive
      time (lost message, killed worker, flushed Redis), are re-enqueued from their current step;
    - children of a succeeded onboarding request start; children of a failed one fail (`parent_failed`).

    Rows are taken with FOR UPDATE SKIP LOCKED (Postgres), so two reconcilers never take the same one,
    and each re-enqueue pushes the row's next look `redrive_after_s` away, so it is not doubled either.
    """
    orphans(session, now=now, limit=settings.reconcile_batch)
    return due_requests(session, now=now, settings=settings, limit=settings.reconcile_batch, watermark=watermark)
