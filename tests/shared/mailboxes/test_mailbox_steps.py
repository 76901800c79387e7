"""wait_mailbox and apply_aliases: skip without Exchange, growing interval, deadline, idempotent aliases."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from shared.db.types import utcnow
from shared.mailboxes.steps import apply_aliases, wait_mailbox
from shared.pipeline.outcomes import Done, StepFailed, Wait
from shared.users.entra import ensure_user
from shared.users.licensing import assign_licences


def _licensed(world, upn="mo@contoso.com", aliases=("mo.alias@contoso.com",)):
    user = world.user(upn, aliases=list(aliases))
    req = world.b.provision(user, world.plan)
    ensure_user(world.ctx(req, "ensure_user"))
    now = utcnow()
    licensed = assign_licences(world.ctx(req, "assign_licences", now))
    # A licence assigned just now: the next step (the first probe) waits for the first delay.
    assert (licensed.not_before - now).total_seconds() == world.settings.mailbox_first_delay_s
    return user, req


def test_no_exchange_licence_means_nothing_to_wait_for(world):
    user = world.user("nox@contoso.com")
    req = world.b.provision(user, world.plan)
    outcome = wait_mailbox(world.ctx(req, "wait_mailbox"))
    assert isinstance(outcome, Done) and outcome.skipped and world.ms.calls["mailbox_ready"] == 0


def test_probes_grow_by_the_factor_up_to_the_cap_then_the_deadline_fails(world):
    _user, req = _licensed(world)
    now = utcnow()
    delays = []
    for _ in range(5):
        outcome = wait_mailbox(world.ctx(req, "wait_mailbox", now))
        assert isinstance(outcome, Wait)
        delays.append((outcome.until - now).total_seconds())
    assert delays == [10, 20, 30, 30, 30]  # after the first 5 s: factor 2, capped at 30 s
    assert world.ms.calls["mailbox_ready"] == 5
    late = datetime.fromisoformat(req.context["licensed_at"]) + timedelta(seconds=world.settings.mailbox_deadline_s)
    with pytest.raises(StepFailed) as failed:
        wait_mailbox(world.ctx(req, "wait_mailbox", late))
    assert failed.value.code == "mailbox_timeout"


def test_a_ready_mailbox_lets_the_chain_go_on(world):
    user, req = _licensed(world)
    assert isinstance(wait_mailbox(world.ctx(req, "wait_mailbox")), Wait)
    world.tenant.mailboxes.add(user.entra_id)
    assert isinstance(wait_mailbox(world.ctx(req, "wait_mailbox")), Done)


def test_the_probe_asks_for_the_entra_user_the_request_linked(world):
    user, req = _licensed(world)
    linked = req.context["entra_id"]
    assert linked == user.entra_id
    world.tenant.mailboxes.add(linked)
    user.entra_id = None  # e.g. unlinked meanwhile: the mailbox this request waits for is still that one
    assert isinstance(wait_mailbox(world.ctx(req, "wait_mailbox")), Done)


def test_aliases_wait_while_exchange_refuses_then_are_added_once(world):
    user, req = _licensed(world, aliases=["one@contoso.com", "two@contoso.com"])
    outcome = apply_aliases(world.ctx(req, "apply_aliases"))
    assert isinstance(outcome, Wait)  # back to waiting, not failed
    world.tenant.mailboxes.add(user.entra_id)
    reads = world.ms.calls["get_mailbox"]
    assert "added 2" in apply_aliases(world.ctx(req, "apply_aliases")).note
    assert world.ms.calls["get_mailbox"] == reads + 1  # one read of the mailbox for both aliases
    assert "added 0" in apply_aliases(world.ctx(req, "apply_aliases")).note
    assert world.ms.calls["add_mailbox_addresses"] == 1
    assert world.tenant.users[user.entra_id]["aliases"] == ["smtp:one@contoso.com", "smtp:two@contoso.com"]
