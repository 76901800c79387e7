"""ensure_user: link by UPN, create on the right domain exactly once, UPN and usage location fixes."""
from __future__ import annotations

from datetime import timedelta

import pytest

from shared.db.types import utcnow
from shared.microsoft.errors import Throttled
from shared.pipeline.outcomes import Done, RetrySoon, StepFailed
from shared.security import decrypt
from shared.users.entra import ensure_user


def _run(world, user, now=None):
    req = world.b.provision(user, world.plan)
    return req, ensure_user(world.ctx(req, "ensure_user", now))


def test_an_existing_entra_user_with_the_same_upn_is_linked_not_created(world):
    existing = world.ms.add_user(world.tenant, "Ada@contoso.com", usageLocation="GB")
    user = world.user("ada@contoso.com")
    _req, outcome = _run(world, user)
    assert isinstance(outcome, Done) and "linked" in outcome.note
    assert user.entra_id == existing["id"] and world.ms.created == []


def test_a_new_user_is_created_with_its_own_upn_when_the_domain_is_verified(world):
    user = world.user("bea@contoso.com", password="Aa1!" + "x" * 16)
    _req, outcome = _run(world, user)
    assert "created" in outcome.note and world.ms.created == ["bea@contoso.com"]
    created = world.tenant.by_upn("bea@contoso.com")
    assert created["usageLocation"] == "NL"
    assert created["passwordProfile"] == {"password": "Aa1!" + "x" * 16, "forceChangePasswordNextSignIn": True}


def test_an_unverified_domain_falls_back_to_the_onmicrosoft_domain(world):
    user = world.user("cy@later.example")
    _run(world, user)
    assert world.ms.created == ["cy@contoso.onmicrosoft.com"]
    assert user.entra_upn == "cy@contoso.onmicrosoft.com"


def test_reprovisioning_after_the_domain_was_verified_changes_the_entra_upn(world):
    user = world.user("dee@later.example")
    _run(world, user)
    world.tenant.domains["later.example"] = True
    req2 = world.b.provision(user, world.plan)
    outcome = ensure_user(world.ctx(req2, "ensure_user"))
    assert "userPrincipalName" in outcome.note
    assert user.entra_upn == "dee@later.example"
    assert world.tenant.users[user.entra_id]["userPrincipalName"] == "dee@later.example"
    assert world.ms.created == ["dee@contoso.onmicrosoft.com"]  # renamed, never created again


def test_a_duplicate_upn_not_yet_readable_is_retried_then_linked_never_created_twice(world):
    user = world.user("eli@contoso.com")
    hidden = world.ms.add_user(world.tenant, "eli@contoso.com")
    world.tenant.hidden.add(hidden["id"])  # created by a lost call, not replicated yet
    req = world.b.provision(user, world.plan)
    with pytest.raises(RetrySoon):
        ensure_user(world.ctx(req, "ensure_user"))
    assert world.ms.calls["create_user"] == 1  # it answered Conflict
    with pytest.raises(RetrySoon):  # inside the confirm window: no second create
        ensure_user(world.ctx(req, "ensure_user"))
    assert world.ms.calls["create_user"] == 1
    world.tenant.hidden.clear()
    outcome = ensure_user(world.ctx(req, "ensure_user"))
    assert user.entra_id == hidden["id"] and "confirmed" in outcome.note
    assert req.context["user_created"] is True


def test_after_a_lost_create_answer_the_user_is_found_before_any_new_create(world):
    user = world.user("fox@contoso.com")
    req = world.b.provision(user, world.plan)
    req.context = {"create_sent_at": (utcnow() - timedelta(seconds=5)).isoformat()}
    with pytest.raises(RetrySoon):
        ensure_user(world.ctx(req, "ensure_user"))
    assert world.ms.calls["create_user"] == 0
    later = utcnow() + timedelta(seconds=world.settings.create_confirm_s)
    ensure_user(world.ctx(req, "ensure_user", now=later))  # window over, nobody found: create
    assert world.ms.created == ["fox@contoso.com"]


@pytest.mark.parametrize("status", [429, None])  # Microsoft's 429, or our limiter's refusal before sending
def test_a_throttled_create_created_nothing_so_the_next_attempt_creates_at_once(world, status):
    user = world.user("gus@contoso.com")
    req = world.b.provision(user, world.plan)
    world.ms.fail["create_user"].append(Throttled("busy", retry_after=30, status=status))
    with pytest.raises(Throttled):
        ensure_user(world.ctx(req, "ensure_user"))
    assert req.context["create_sent_at"] is None
    ensure_user(world.ctx(req, "ensure_user"))  # no create_confirm_s of looking for a user never made
    assert world.ms.created == ["gus@contoso.com"] and world.ms.calls["create_user"] == 2


def test_a_linked_user_without_usage_location_gets_it_set(world):
    existing = world.ms.add_user(world.tenant, "gil@contoso.com", usageLocation=None)
    user = world.user("gil@contoso.com", usage_location="DE")
    _run(world, user)
    assert existing["usageLocation"] == "DE"


def test_a_user_without_usage_location_fails_before_touching_microsoft(world):
    user = world.user("hex@contoso.com", usage_location=None)
    with pytest.raises(StepFailed) as failed:
        _run(world, user)
    assert failed.value.code == "usage_location_missing" and sum(world.ms.calls.values()) == 0


def test_the_password_is_read_from_the_encrypted_store(world, db):
    from shared.db.models import UserService

    user = world.user("ivo@contoso.com")
    stored = db.query(UserService).filter_by(user_id=user.id).one().temp_password_enc
    _run(world, user)
    assert world.tenant.by_upn("ivo@contoso.com")["passwordProfile"]["password"] == decrypt(stored)
