"""The task base: ids only, acks late, explicit limits, and every step of every kind has a function."""
from __future__ import annotations

import pytest

from shared.pipeline.registry import table
from shared.requests.kinds import STEPS
from worker.base import ProvisionerTask, provisioner_task


def test_the_base_acks_late_and_rejects_on_worker_loss():
    assert ProvisionerTask.acks_late and ProvisionerTask.reject_on_worker_lost and ProvisionerTask.typing


def test_a_task_refuses_anything_but_ids():
    from worker.tasks.steps import TASKS

    with pytest.raises(TypeError, match="ids only"):
        TASKS["ensure_user"]("request-id", {"password": "x"})


def test_the_decorator_wants_sane_explicit_limits():
    with pytest.raises(ValueError):
        provisioner_task(soft_time_limit=10, time_limit=5)
    with pytest.raises(TypeError):
        provisioner_task(soft_time_limit=1, time_limt=5)  # type: ignore[call-arg]  # a typo fails loudly


def test_every_step_of_every_kind_has_a_function():
    assert {name for steps in STEPS.values() for name in steps} <= set(table())
