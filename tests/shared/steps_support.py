"""Fixtures for engine and step tests: a fake Microsoft, a seeded world, sessions on savepoints."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from shared.db.models import ProvisioningRequest, RequestStep
from shared.db.types import utcnow
from shared.pipeline.context import StepContext
from shared.pipeline.engine import Engine
from shared.pipeline.outcomes import Verdict
from shared.pipeline.rows import StepRow
from shared.requests import dispatch
from shared.requests.dispatch import RequestRef
from shared.settings import Settings
from shared.users.replication import NEW_USER_SETTLE_S
from tests.builders import Builder, Licence, Sku
from tests.shared.fakes import FakeMicrosoft, FakeSku, FakeTenant

__all__ = ["World", "engine", "maker", "ms", "published", "settings", "world"]


@pytest.fixture
def settings() -> Settings:
    return Settings(environment="test", secret_key="test-secret-key-" + "x" * 16, max_deliveries=3,
                    max_step_retries=5, max_countdown_s=60, create_confirm_s=30, lease_seconds=60,
                    mailbox_first_delay_s=5, mailbox_backoff_factor=2, mailbox_max_delay_s=30,
                    mailbox_deadline_s=600, redrive_after_s=120)


@pytest.fixture
def maker(db: Session) -> sessionmaker[Session]:
    """Sessions on the test's connection: their commits are savepoints, rolled back after the test."""
    return sessionmaker(bind=db.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False)


@pytest.fixture
def ms() -> FakeMicrosoft:
    return FakeMicrosoft()


@pytest.fixture
def published() -> Iterator[list[RequestRef]]:
    sent: list[RequestRef] = []
    dispatch.set_publisher(sent.extend)
    yield sent
    dispatch.set_publisher(None)


@pytest.fixture
def engine(ms: FakeMicrosoft, settings: Settings, maker: sessionmaker[Session],
           published: list[RequestRef]) -> Engine:
    return Engine(ms, settings=settings, session_factory=maker)


def run_link(engine: Engine, request_id: str, step: str) -> Verdict:
    """Run one link as a worker would, waiting out a short pause before it (a new user's replication, before
    its licences) as the worker's countdown would; the mailbox's longer first wait is left to the test."""
    verdict = engine.run(request_id, step)
    if verdict.action == "retry" and verdict.reason == "not before" and verdict.countdown <= NEW_USER_SETTLE_S:
        with engine.session_factory() as s:
            s.execute(update(ProvisioningRequest).where(ProvisioningRequest.id == request_id).values(not_before=None))
            s.commit()
        verdict = engine.run(request_id, step)
    return verdict


@dataclass
class World:
    db: Session
    ms: FakeMicrosoft
    settings: Settings
    b: Builder
    tenant: FakeTenant
    fake_sku: FakeSku
    provider: Any
    customer: Any
    plan: Any

    def user(self, upn: str, **kw: Any) -> Any:
        return self.b.user(self.customer, upn, plan=self.plan, **kw)

    def ctx(self, req: ProvisioningRequest, step: str | None = None, now: datetime | None = None) -> StepContext:
        """A context for calling one step directly (no engine: no claim, no outcome recording)."""
        name = step or req.current_step
        row = next(s for s in req.steps if s.name == name)
        return StepContext(self.db, req, StepRow(req.id, row.name, row.attempts), self.settings, self.ms,
                           now or utcnow())

    def steps(self, req: ProvisioningRequest) -> dict[str, RequestStep]:
        self.db.expire_all()
        return {s.name: s for s in self.db.get(ProvisioningRequest, req.id).steps}  # type: ignore[union-attr]


@pytest.fixture
def world(db: Session, ms: FakeMicrosoft, settings: Settings) -> World:
    """A connected customer whose tenant has 3 Business Basic seats, and a user plan granting it."""
    fake_sku = FakeSku("O365_BUSINESS_ESSENTIALS", units=3)
    tenant = ms.tenant(verified=("contoso.com",), unverified=("later.example",), skus=[fake_sku])
    b = Builder(db)
    provider = b.provider()
    plan = b.user_plan([Licence("O365_BUSINESS_ESSENTIALS")], provider)
    customer = b.customer(provider, tenant_id=tenant.tenant_id, initial_domain=tenant.initial_domain,
                          verified=("contoso.com",), plans=[(plan, None)],
                          skus=[Sku("O365_BUSINESS_ESSENTIALS", sku_id=fake_sku.sku_id, total=3)])
    return World(db, ms, settings, b, tenant, fake_sku, provider, customer, plan)
