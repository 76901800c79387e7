"""Claiming a request's step for one delivery: the lease, stale copies, suspects, poison, onboarding gates."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.models import ProvisioningRequest
from shared.pipeline import finish, rows
from shared.pipeline.outcomes import Verdict
from shared.requests import kinds
from shared.settings import Settings

log = logging.getLogger(__name__)
PR = ProvisioningRequest


@dataclass(frozen=True)
class Claim:
    """The lease this delivery holds on its request's step, and the step's attempt number."""

    token: str
    attempts: int


class Suspect:
    """The step's previous delivery ended without an outcome (its process may have died of it): the
    caller takes the process for itself and claims again with `suspect_ok` (shared.pipeline.isolation)."""


SUSPECT = Suspect()


def halt(reason: str) -> Verdict:
    return Verdict("halt", reason=reason)


def take(session: Session, request_id: str, step_name: str, dispatch: int | None, *, now: datetime,
         settings: Settings, suspect_ok: bool) -> Claim | Verdict | Suspect:
    """Claim and start the step in one transaction, committed here; or say why not (nothing kept).

    Every claim counts a delivery and every outcome resets the count, so a claim that counts a second
    one found the step claimed before without an outcome: a suspect. A step delivered more than
    `max_deliveries` times without an outcome fails as `poison_message`.
    """
    token = uuid.uuid4().hex
    claimed = rows.claim(session, request_id, step_name, dispatch, now=now, token=token,
                         until=now + timedelta(seconds=settings.lease_seconds))
    if claimed is None:
        session.rollback()
        return why_not(session, request_id, step_name, dispatch, now=now)
    if claimed.deliveries > 1 and not suspect_ok:
        session.rollback()  # nothing claimed, and no transaction open while this waits for the process
        return SUSPECT
    if claimed.parent_id is not None:
        gate = _parent_gate(session, request_id, claimed.parent_id, now)
        if gate is not None:
            return gate
    if claimed.deliveries > settings.max_deliveries:
        req = session.get(PR, request_id)
        assert req is not None
        finish.fail_request(session, req, "poison_message",
                            f"delivered {claimed.deliveries - 1} times without finishing", now=now)
        session.commit()
        log.error("request %s step %s failed as a poison message", request_id, step_name)
        return halt("poison")
    attempts = rows.start_step(session, request_id, step_name, now=now)
    session.commit()
    return Claim(token, attempts)


def why_not(session: Session, request_id: str, step_name: str, dispatch: int | None, *,
            now: datetime) -> Verdict:
    req = rows.glance(session, request_id)
    if req is None:
        return halt("no such request")
    if dispatch is not None and req.dispatch != dispatch:
        # A stale copy: the request's chain was published again since (a re-drive, a retry, a resume).
        # Whichever copy is current carries the chain on; this one must not walk a second one.
        return halt("superseded")
    if req.current_step != step_name:
        state = rows.step_state(session, request_id, step_name)
        return halt("step already done" if state in (kinds.STEP_SUCCEEDED, kinds.STEP_SKIPPED) else
                    f"not the current step ({req.current_step})")
    if req.state in (kinds.QUEUED, kinds.RUNNING) and req.not_before is not None and req.not_before > now:
        # The step before asked for a short pause: this link runs again when it is over.
        return Verdict("retry", reason="not before", countdown=(req.not_before - now).total_seconds())
    return halt(f"request {req.state}, lease until {req.lease_until}")


def _parent_gate(session: Session, request_id: str, parent_id: str, now: datetime) -> Verdict | None:
    """Children of an onboarding request start once it succeeded and fail when it failed: None keeps the
    claim; a verdict has undone it (and committed the child's failure)."""
    parent_state = session.scalar(select(PR.state).where(PR.id == parent_id))
    if parent_state == kinds.SUCCEEDED:
        return None
    session.rollback()  # the claim goes: a gated child is not delivered
    req = session.get(PR, request_id)
    verdict = halt("parent not finished")
    if req is not None and parent_state in (kinds.FAILED, kinds.CANCELLED, None) \
            and req.state in kinds.ACTIVE_STATES:
        finish.fail_request(session, req, "parent_failed", f"onboarding request {parent_id} did not succeed", now=now)
        verdict = halt("parent failed")
    session.commit()
    return verdict
