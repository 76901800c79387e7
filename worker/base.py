"""ProvisionerTask and `provisioner_task`: the options every task shares, declared once."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from celery import Task, shared_task

F = TypeVar("F", bound=Callable[..., Any])


class ProvisionerTask(Task):
    """Acks late, requeued if its worker dies, no results kept; arguments are ids only (strings).

    Never secrets, never objects. Time limits are explicit; worker.canvas also sets them per message
    from the lease, so a step always ends before its lease does.
    """

    acks_late = True
    reject_on_worker_lost = True
    ignore_result = True
    typing = True  # Celery checks the call against the signature when the message is sent

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            if value is not None and not isinstance(value, str):
                raise TypeError(f"{self.name} takes ids only, got a {type(value).__name__}")
        return super().__call__(*args, **kwargs)


def provisioner_task(*, soft_time_limit: float, time_limit: float, bind: bool = False,
                     max_retries: int | None = 0, name: str | None = None) -> Callable[[F], Any]:
    """Keyword-only on purpose: a misspelt option is a TypeError at import, not a silent default."""
    if soft_time_limit >= time_limit:
        raise ValueError("soft_time_limit must be below time_limit")

    def register(fn: F) -> Any:
        return shared_task(base=ProvisionerTask, name=name or f"{fn.__module__}.{fn.__name__}", bind=bind,
                           soft_time_limit=soft_time_limit, time_limit=time_limit, max_retries=max_retries)(fn)

    return register
