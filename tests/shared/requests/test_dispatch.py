"""Publishing: the core has no publisher of its own; a process that publishes must have installed one."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import sessionmaker

from shared.db.uow import UnitOfWork
from shared.requests import dispatch
from shared.requests.dispatch import NoPublisher, RequestRef

REF = RequestRef("r1", "user.provision", "reserve_seat")


@pytest.fixture
def no_publisher() -> Iterator[None]:
    dispatch.set_publisher(None)
    yield
    dispatch.set_publisher(None)


def test_without_a_publisher_the_error_says_what_to_call(no_publisher: None) -> None:
    with pytest.raises(NoPublisher, match=r"shared\.requests\.dispatch\.set_publisher"):
        dispatch.get_publisher()


def test_publishing_unwired_fails_in_the_caller_before_the_commit(no_publisher: None) -> None:
    uow = UnitOfWork()
    with pytest.raises(NoPublisher):
        dispatch.publish_after_commit(uow, [REF])


def test_an_installed_publisher_gets_the_refs_after_the_commit(pg_engine: Engine, no_publisher: None) -> None:
    sent: list[RequestRef] = []
    dispatch.set_publisher(sent.extend)
    with UnitOfWork(sessionmaker(bind=pg_engine)) as uow:
        dispatch.publish_after_commit(uow, [REF])
        assert sent == []  # not before the commit
        uow.commit()
    assert sent == [REF]
