"""The claim and the outcome on SQLite (the embedded default): one statement per row, the same effects."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models import Base, ProvisioningRequest, RequestStep
from shared.db.types import utcnow
from shared.pipeline import rows
from shared.pipeline.claim import LeaseLost, adopt, claim_next, try_claim
from shared.pipeline.rows import StepRow
from shared.requests import kinds
from shared.requests.service import create_request

PR = ProvisioningRequest


@pytest.fixture
def session(tmp_path) -> Iterator[Session]:  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path / 'rows.db'}")
    Base.metadata.create_all(engine)
    with sessionmaker(engine, expire_on_commit=False)() as s:
        yield s
    engine.dispose()


def _steps(s: Session, req_id: str) -> dict[str, tuple[str, int]]:
    return {name: (state, attempts) for name, state, attempts in s.execute(
        select(RequestStep.name, RequestStep.state, RequestStep.attempts).where(RequestStep.request_id == req_id))}


def test_claim_run_on_and_lease_check_on_sqlite(session: Session) -> None:
    req = create_request(session, kind=kinds.USER_PROVISION, customer_id="c", user_id="u")
    session.commit()
    rid = req.id
    session.expunge_all()
    now = utcnow()
    claim = try_claim(session, rid, "reserve_seat", now=now, lease_seconds=60, max_deliveries=3)
    assert claim is not None and (claim.deliveries, claim.attempts, claim.row) == (1, 1, None)
    assert adopt(session, claim) is None  # no returned row here: the step loads the request
    session.commit()
    loaded = session.get(PR, rid)
    assert loaded is not None and loaded.lease_owner == claim.token

    # A step run on: its outcome, the next step's lease and start, written row by row.
    step = StepRow(rid, "reserve_seat", claim.attempts)
    step.set(state=kinds.STEP_SUCCEEDED, finished_at=now)
    loaded.current_step = "ensure_user"
    following = claim_next(loaded, now=now, lease_seconds=60)
    assert rows.write_outcome(session, loaded, step, now=now, lease=claim.token, start="ensure_user") == 1
    session.commit()
    assert _steps(session, rid)["reserve_seat"] == (kinds.STEP_SUCCEEDED, 1)
    assert _steps(session, rid)["ensure_user"] == (kinds.STEP_RUNNING, 1)

    # Under a lease that is no longer ours, nothing is written.
    loaded.context = {"late": True}
    with pytest.raises(LeaseLost):
        rows.write_outcome(session, loaded, StepRow(rid, "ensure_user", 1), now=now, lease=claim.token)
    session.rollback()
    assert session.scalar(select(PR.context).where(PR.id == rid)) == {}
    assert session.scalar(select(PR.lease_owner).where(PR.id == rid)) == following.token
