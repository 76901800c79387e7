"""ensure_user: link by UPN, create on the right domain exactly once, UPN and usage location fixes."""
from __future__ import annotations

from datetime import timedelta

import pytest

from shared.db.types import utcnow
from shared.microsoft.errors import Throttled
from shared.pipeline.outcomes import Done, RetrySoon, StepFailed
from shared.security import decrypt
from shared.users.entra import ensure_user
from shared.users.replication import NEW_USER_SETTLE_S


def _run(world, user, now=None):
    req = world.b.provision(user, world.plan)
    return req, ensure_user(world.ctx(req, "ensure_user", now))


def test_an_existing_entra_user_with_the_same_upn_is_linked_not_created(world):
    existing = world.ms.add_user(world.tenant, "Ada@contoso.com", usageLocation="GB")
    user = world.user("ada@contoso.com")
    _req, outcome = _run(world, user)
    assert isinstance(outcome, Done) and "linked" in outcome.note
    assert user.entra_id == existing["id"] and world.ms.created == []
    assert outcome.not_before is None  # readable already: its licences come at once


def test_a_new_user_is_created_with_its_own_upn_when_the_domain_is_verified(world):
    user = world.user("bea@contoso.com", password="Aa1!" + "x" * 16)
    _req, outcome = _run(world, user)
    assert "created" in outcome.note and world.ms.created == ["bea@contoso.com"]
    # Licensing a user the moment after its create mostly meets a 404 (replication): it waits a moment.
    assert outcome.not_before is not None
    assert 0 < (outcome.not_before - utcnow()).total_seconds() <= NEW_USER_SETTLE_S
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


def test_the_looks_for_a_lost_create_grow_apart_and_end_with_the_confirm_window(world):
    """Every look is a call against the tenant's throttling budget: a create that never happened costs
    about fifteen reads over the two-minute window, not sixty."""
    user = world.user("fay@contoso.com")
    req = world.b.provision(user, world.plan)
    sent = utcnow()
    req.context = {"create_sent_at": sent.isoformat()}
    waited, looks = 0.0, 0
    while waited < world.settings.create_confirm_s:
        try:
            ensure_user(world.ctx(req, "ensure_user", now=sent + timedelta(seconds=waited)))
        except RetrySoon as wait:
            assert 2.0 <= wait.delay <= 30.0 and wait.delay >= waited / 4 - 1e-3
            waited, looks = waited + wait.delay, looks + 1
            continue
        break
    assert 10 <= looks <= 20 and world.ms.calls["create_user"] == 0
    ensure_user(world.ctx(req, "ensure_user", now=sent + timedelta(seconds=waited)))
    assert world.ms.created == ["fay@contoso.com"]


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


# -- never adopt a stranger; adoption needs a reseller; passwords (issues 15 and 18) --------------------------
def _audit(db, user, action):
    from sqlalchemy import select

    from shared.db.models import AuditEvent

    return db.scalars(select(AuditEvent).where(AuditEvent.object_id == user.id, AuditEvent.action == action)).all()


def test_a_stranger_holding_the_fallback_upn_is_never_linked(world):
    stranger = world.ms.add_user(world.tenant, "kim@contoso.onmicrosoft.com", usageLocation="GB")
    user = world.user("kim@later.example")  # its own domain is not verified: the fallback name is looked up
    req = world.b.provision(user, world.plan)
    with pytest.raises(StepFailed) as failed:
        ensure_user(world.ctx(req, "ensure_user"))
    assert failed.value.code == "upn_conflict"
    assert "kim@contoso.onmicrosoft.com" in failed.value.message and stranger["id"] in failed.value.message
    assert user.entra_id is None and world.ms.created == [] and world.ms.calls["update_user"] == 0


def test_a_stranger_taking_the_fallback_name_during_our_create_is_not_ours(world):
    user = world.user("lou@later.example")
    req = world.b.provision(user, world.plan)
    stranger = world.ms.add_user(world.tenant, "lou@contoso.onmicrosoft.com",
                                 createdDateTime=(utcnow() - timedelta(hours=2)).isoformat())
    world.tenant.hidden.add(stranger["id"])  # not readable when we look: our create meets a conflict
    with pytest.raises(RetrySoon):
        ensure_user(world.ctx(req, "ensure_user"))
    world.tenant.hidden.clear()
    later = utcnow() + timedelta(seconds=world.settings.create_confirm_s)
    with pytest.raises(StepFailed) as failed:
        ensure_user(world.ctx(req, "ensure_user", now=later))
    assert failed.value.code == "upn_conflict" and user.entra_id is None


def test_our_own_create_on_the_fallback_domain_is_recognised_after_its_answer_was_lost(world):
    user = world.user("max@later.example")
    req = world.b.provision(user, world.plan)
    sent = utcnow() - timedelta(seconds=3)
    req.context = {"create_sent_at": sent.isoformat(), "create_attempts": [sent.isoformat()]}
    ours = world.ms.add_user(world.tenant, "max@contoso.onmicrosoft.com", usageLocation="NL")  # made by that create
    outcome = ensure_user(world.ctx(req, "ensure_user"))
    assert user.entra_id == ours["id"] and user.entra_origin == "created" and "confirmed" in outcome.note
    assert req.context["user_created"] is True and req.context["result"] == {"user": "created", "password": "set"}
    assert world.ms.created == []


def test_an_earlier_requests_lost_create_is_still_the_engines_own(world):
    user = world.user("ned@contoso.com")
    earlier = world.b.provision(user, world.plan)
    sent = utcnow() - timedelta(minutes=1)
    earlier.context = {"create_sent_at": sent.isoformat()}
    earlier.state = "failed"
    ours = world.ms.add_user(world.tenant, "ned@contoso.com", usageLocation="NL",
                             createdDateTime=(sent + timedelta(seconds=2)).isoformat())
    key = world.b.api_key("customer", world.customer.id)
    req = world.b.provision(user, world.plan, created_by=key.id)  # a customer key may: the account is ours
    ensure_user(world.ctx(req, "ensure_user"))
    assert user.entra_id == ours["id"] and user.entra_origin == "created" and user.source == "local"
    assert req.context["result"] == {"user": "linked", "password": "kept"}  # the earlier request set it


def test_a_customer_key_may_not_adopt_an_account_that_existed(world, db):
    world.ms.add_user(world.tenant, "ola@contoso.com", usageLocation="GB")
    user = world.user("ola@contoso.com")
    key = world.b.api_key("customer", world.customer.id)
    req = world.b.provision(user, world.plan, created_by=key.id)
    with pytest.raises(StepFailed) as failed:
        ensure_user(world.ctx(req, "ensure_user"))
    assert failed.value.code == "adoption_requires_reseller"
    assert user.entra_id is None and user.source == "local" and _audit(db, user, "user.adopted") == []


def test_a_reseller_adopts_an_existing_account_and_it_is_audited(world, db):
    existing = world.ms.add_user(world.tenant, "pia@contoso.com", usageLocation="GB")
    user = world.user("pia@contoso.com")
    key = world.b.api_key("service-provider", world.provider.id)
    req = world.b.provision(user, world.plan, created_by=key.id)
    ensure_user(world.ctx(req, "ensure_user"))
    assert (user.entra_id, user.entra_origin, user.source) == (existing["id"], "adopted", "adopted")
    [event] = _audit(db, user, "user.adopted")
    assert event.actor == f"key:{key.id}" and event.detail["entra_id"] == existing["id"]
    assert world.ms.calls["member_of"] == 1


def test_an_account_holding_a_directory_role_is_never_adopted(world):
    admin = world.ms.add_user(world.tenant, "root@contoso.com", usageLocation="GB")
    world.tenant.roles[admin["id"]] = ["Global Administrator"]
    user = world.user("root@contoso.com")
    req = world.b.provision(user, world.plan)  # not even by an operator
    with pytest.raises(StepFailed) as failed:
        ensure_user(world.ctx(req, "ensure_user"))
    assert failed.value.code == "privileged_account" and "Global Administrator" in failed.value.message
    assert user.entra_id is None and world.ms.calls["update_user"] == 0


def test_an_existing_account_keeps_its_password_unless_a_reset_is_asked(world):
    existing = world.ms.add_user(world.tenant, "quy@contoso.com", usageLocation="GB")
    user = world.user("quy@contoso.com", password="Cc3#" + "z" * 16)
    req = world.b.provision(user, world.plan)
    ensure_user(world.ctx(req, "ensure_user"))
    assert "passwordProfile" not in existing and world.ms.calls["update_user"] == 0
    assert req.context["result"] == {"user": "linked", "password": "kept"}
    again = world.b.provision(user, world.plan, params={"reset_password": True})
    outcome = ensure_user(world.ctx(again, "ensure_user"))
    assert existing["passwordProfile"] == {"password": "Cc3#" + "z" * 16, "forceChangePasswordNextSignIn": True}
    assert again.context["result"] == {"user": "linked", "password": "set"} and "passwordProfile" in outcome.note


def test_a_created_user_reports_created_and_set(world):
    user = world.user("rae@contoso.com")
    req, _ = _run(world, user)
    assert req.context["result"] == {"user": "created", "password": "set"} and user.entra_origin == "created"


def test_a_disabled_account_is_enabled_again(world):
    user = world.user("sam@contoso.com")
    _run(world, user)
    world.tenant.users[user.entra_id]["accountEnabled"] = False  # what deprovisioning did
    req = world.b.provision(user, world.plan)
    outcome = ensure_user(world.ctx(req, "ensure_user"))
    assert world.tenant.users[user.entra_id]["accountEnabled"] is True and "accountEnabled" in outcome.note
    assert world.ms.created == ["sam@contoso.com"]


def test_a_link_the_sync_made_to_another_name_is_not_trusted(world):
    stranger = world.ms.add_user(world.tenant, "tia@contoso.onmicrosoft.com", usageLocation="GB")
    user = world.user("tia@later.example")
    user.entra_id, user.entra_upn, user.entra_origin = stranger["id"], "tia@contoso.onmicrosoft.com", "synced"
    req = world.b.provision(user, world.plan)
    with pytest.raises(StepFailed) as failed:
        ensure_user(world.ctx(req, "ensure_user"))
    assert failed.value.code == "upn_conflict" and world.ms.calls["update_user"] == 0
