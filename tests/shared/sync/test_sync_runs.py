"""run_sync against the emulator and Postgres: full run, delta changes, expired token, import policy, master."""
from __future__ import annotations

from shared.db.models import SyncPolicy
from shared.sync.engine import run_sync
from tests.shared.sync.builders import BASIC, PREMIUM, SyncWorld


def _tenant_with_users(w: SyncWorld) -> None:
    w.tenant()
    w.add_entra_users(
        w.entra_user(f"Alice@{w.verified}", BASIC, displayName="Alice Entra"),  # UPN differs only in case
        w.entra_user(f"bob@{w.initial}", BASIC, PREMIUM, displayName="Bob Entra"),  # fallback domain
        w.entra_user(f"carol@{w.verified}", PREMIUM, displayName="Carol Unknown"),
        w.entra_user(f"dave@{w.verified}", displayName="Dave Unlicensed", proxyAddresses=[
            f"SMTP:dave@{w.verified}", f"smtp:d@{w.verified}"]),
    )


def test_first_full_sync_links_by_upn_and_local_part_imports_unknown_and_records_licences(sync_world: SyncWorld):
    w = sync_world
    _tenant_with_users(w)
    cid = w.customer(local_users=[f"alice@{w.verified}", f"bob@{w.verified}", f"erin@{w.verified}"],
                     import_unknown=True)

    result = run_sync(cid)

    assert (result.state, result.full, result.created, result.updated, result.removed) == (
        "succeeded", True, 2, 2, 0)
    users = w.users()
    alice, bob, carol, dave = (users[f"{n}@{w.verified}"] for n in ("alice", "bob", "carol", "dave"))
    assert (alice.entra_upn, alice.source, alice.licences, alice.display_name) == (
        f"alice@{w.verified}", "local", [BASIC], "Alice Entra")
    assert alice.matched_user_plan_id == w.plan_ids[(BASIC,)]
    assert (bob.entra_upn, bob.source, bob.licences) == (f"bob@{w.initial}", "local", [BASIC, PREMIUM])
    assert bob.matched_user_plan_id == w.plan_ids[(BASIC, PREMIUM)]
    # Carol holds PREMIUM only: the BASIC plan shares nothing with her, so the BASIC+PREMIUM plan matches.
    assert (carol.source, carol.licences, carol.matched_user_plan_id) == (
        "imported", [PREMIUM], w.plan_ids[(BASIC, PREMIUM)])
    assert (dave.source, dave.licences, dave.matched_user_plan_id, dave.aliases) == (
        "imported", [], None, [f"d@{w.verified}"])
    assert users[f"erin@{w.verified}"].entra_id is None
    assert all(u.state == "active" for u in users.values())
    [run] = w.runs()
    assert (run.state, run.full, run.trigger, run.created, run.updated, run.removed, run.error) == (
        "succeeded", True, "schedule", 2, 2, 0, None)
    assert run.started_at is not None and run.finished_at is not None
    policy = w.policy()
    assert policy.delta_link and policy.running_since is None and policy.last_run_at is not None
    skus = w.skus()
    assert (skus[BASIC].total, skus[BASIC].consumed, skus[PREMIUM].consumed) == (100, 2, 2)


def test_delta_run_sees_added_user_removed_licence_and_deleted_user(sync_world: SyncWorld):
    w = sync_world
    _tenant_with_users(w)
    cid = w.customer(local_users=[f"alice@{w.verified}", f"bob@{w.verified}"], import_unknown=True)
    assert run_sync(cid).state == "succeeded"

    w.add_entra_users(w.entra_user(f"frank@{w.verified}", BASIC, displayName="Frank New"))
    w.set_licences(f"bob@{w.initial}", remove=[PREMIUM])
    w.delete_entra_user(f"carol@{w.verified}")
    result = run_sync(cid, trigger="manual")

    assert (result.state, result.full, result.created, result.updated, result.removed) == (
        "succeeded", False, 1, 1, 1)
    users = w.users()
    assert users[f"frank@{w.verified}"].licences == [BASIC]
    bob = users[f"bob@{w.verified}"]
    assert (bob.licences, bob.matched_user_plan_id) == ([BASIC], w.plan_ids[(BASIC,)])
    assert users[f"carol@{w.verified}"].state == "deleted_in_entra"
    assert users[f"alice@{w.verified}"].state == "active"
    assert [(r.full, r.trigger) for r in w.runs()] == [(True, "schedule"), (False, "manual")]
    skus = w.skus()  # bob's PREMIUM was removed and carol's freed with her: seat counts follow
    assert (skus[BASIC].consumed, skus[PREMIUM].consumed) == (3, 0)


def test_expired_delta_link_falls_back_to_a_full_run_that_still_sees_deletions(sync_world: SyncWorld):
    w = sync_world
    _tenant_with_users(w)
    cid = w.customer(local_users=[f"alice@{w.verified}"], import_unknown=True)
    assert run_sync(cid).state == "succeeded"
    old_link = w.policy().delta_link

    w.delete_entra_user(f"dave@{w.verified}")
    w.patch_entra_user(f"Alice@{w.verified}", displayName="Alice Renamed")
    w.expire_delta_links()
    result = run_sync(cid)

    assert (result.state, result.full, result.created, result.updated, result.removed) == (
        "succeeded", True, 0, 1, 1)
    users = w.users()
    assert users[f"dave@{w.verified}"].state == "deleted_in_entra"
    assert users[f"alice@{w.verified}"].display_name == "Alice Renamed"
    assert users[f"carol@{w.verified}"].state == "active"
    new_link = w.policy().delta_link
    assert new_link and new_link != old_link
    # The new link works: the next run is a delta again, with nothing to do.
    again = run_sync(cid)
    assert (again.full, again.created, again.updated, again.removed) == (False, 0, 0, 0)


def test_unknown_users_are_ignored_when_the_policy_does_not_import_them(sync_world: SyncWorld):
    w = sync_world
    _tenant_with_users(w)
    cid = w.customer(local_users=[f"alice@{w.verified}"], import_unknown=False)

    result = run_sync(cid)

    assert (result.state, result.created, result.updated, result.ignored) == ("succeeded", 0, 1, 3)
    assert set(w.users()) == {f"alice@{w.verified}"}


def test_master_decides_whose_names_win_and_local_master_records_the_differences(sync_world: SyncWorld):
    w = sync_world
    _tenant_with_users(w)
    cid = w.customer(local_users=[f"alice@{w.verified}"], master="local")

    assert run_sync(cid).state == "succeeded"

    alice = w.users()[f"alice@{w.verified}"]
    assert (alice.display_name, alice.entra_upn, alice.licences) == ("Alice Tester", f"alice@{w.verified}", [BASIC])
    [event] = w.audit("user.sync.differs")
    assert event.detail["fields"]["display_name"] == {"local": "Alice Tester", "entra": "Alice Entra"}

    w.update(SyncPolicy, cid, master="microsoft")
    assert run_sync(cid, full=True).state == "succeeded"
    assert w.users()[f"alice@{w.verified}"].display_name == "Alice Entra"


def test_a_failing_tenant_fails_the_run_with_the_reason_and_frees_the_claim(sync_world: SyncWorld):
    w = sync_world
    w.tenant()
    cid = w.customer(tenant_id="00000000-0000-4000-8000-00000000dead")

    result = run_sync(cid)

    assert result.state == "failed" and result.error
    assert "secret" not in result.error.lower()
    [run] = w.runs()
    assert (run.state, run.error) == ("failed", result.error)
    policy = w.policy()
    assert policy.running_since is None and policy.delta_link is None


def test_a_customer_whose_tenant_is_not_connected_fails_clearly(sync_world: SyncWorld):
    w = sync_world
    w.tenant()
    cid = w.customer(connected=False)
    result = run_sync(cid)
    assert (result.state, result.error) == ("failed", "TenantNotConnected: the customer's tenant is not connected "
                                                      "(Azure AD service)")


def test_users_the_sync_links_or_imports_are_provisioned_with_their_plan_and_count(sync_world: SyncWorld):
    from sqlalchemy import select

    from shared.db.models import User, UserService
    from shared.db.uow import UnitOfWork
    from shared.plans import limits

    w = sync_world
    _tenant_with_users(w)
    cid = w.customer(import_unknown=True)
    with UnitOfWork() as uow:  # a local user never provisioned through the engine: no service yet
        uow.session.add(User(customer_id=cid, upn=f"alice@{w.verified}", display_name="Alice", aliases=[]))
        uow.commit()

    assert run_sync(cid).state == "succeeded"

    users = w.users()
    with UnitOfWork() as uow:
        services = {upn: (svc.state, svc.user_plan_id) for upn, svc in (
            (next(u for u in users.values() if u.id == s.user_id).upn, s) for s in uow.session.scalars(
                select(UserService).where(UserService.user_id.in_([u.id for u in users.values()]))))}
        used = limits.in_use(uow.session, cid, list(w.plan_ids.values()))
    basic, both = w.plan_ids[(BASIC,)], w.plan_ids[(BASIC, PREMIUM)]
    assert services == {f"alice@{w.verified}": ("provisioned", basic),  # linked by UPN
                        f"bob@{w.initial}": ("provisioned", both),  # imported
                        f"carol@{w.verified}": ("provisioned", both)}  # imported; dave holds no licence
    assert used == {basic: 1, both: 2}
    assert {u.upn: u.entra_origin for u in users.values()} == {
        f"alice@{w.verified}": "synced", f"bob@{w.initial}": "synced", f"carol@{w.verified}": "synced",
        f"dave@{w.verified}": "synced"}
    again = run_sync(cid, full=True)  # a second round changes nothing
    assert again.state == "succeeded" and again.created == 0


def test_the_default_policy_imports_unknown_users(sync_world: SyncWorld):
    from sqlalchemy import delete

    from shared.db.uow import UnitOfWork

    w = sync_world
    _tenant_with_users(w)
    cid = w.customer()
    with UnitOfWork() as uow:  # a customer that never stored a policy: the sync gives it the default
        uow.session.execute(delete(SyncPolicy).where(SyncPolicy.customer_id == cid))
        uow.commit()
    result = run_sync(cid)
    assert (result.state, result.created) == ("succeeded", 4)
    assert w.policy().import_unknown_users is True
