"""The request kinds and, for each, its steps in order (the chains of DESIGN.md)."""
from __future__ import annotations

PROVIDER_AZURE_AD = "provider.azure_ad"
PROVIDER_MICROSOFT_ONLINE = "provider.microsoft_online"
CUSTOMER_AZURE_AD = "customer.azure_ad"
CUSTOMER_MICROSOFT_ONLINE = "customer.microsoft_online"
CUSTOMER_ONBOARD = "customer.onboard"
CUSTOMER_SYNC = "customer.sync"
USER_PROVISION = "user.provision"
USER_DEPROVISION = "user.deprovision"

STEPS: dict[str, tuple[str, ...]] = {
    PROVIDER_AZURE_AD: ("check_partner_center", "enable_customer_plans", "notify"),
    PROVIDER_MICROSOFT_ONLINE: ("check_partner_center", "enable_user_plans", "notify"),
    CUSTOMER_AZURE_AD: ("connect_tenant", "check_gdap", "read_agreement", "notify"),
    CUSTOMER_MICROSOFT_ONLINE: ("check_mca", "read_licences", "enable_plans", "notify"),
    CUSTOMER_ONBOARD: ("connect_tenant", "check_gdap", "check_mca", "read_licences", "enable_plans", "notify"),
    CUSTOMER_SYNC: ("sync", "notify"),
    USER_PROVISION: ("reserve_seat", "buy_seats", "ensure_user", "assign_licences", "wait_mailbox", "apply_aliases",
                     "notify"),
    USER_DEPROVISION: ("remove_licences", "disable_or_delete", "release_seat", "notify"),
}

# Request states.
QUEUED, RUNNING, WAITING, BLOCKED = "queued", "running", "waiting", "blocked"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
STATES = (QUEUED, RUNNING, WAITING, BLOCKED, SUCCEEDED, FAILED, CANCELLED)
FINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})
ACTIVE_STATES = frozenset({QUEUED, RUNNING, WAITING, BLOCKED})

# Step states.
STEP_PENDING, STEP_RUNNING, STEP_WAITING = "pending", "running", "waiting"
STEP_SUCCEEDED, STEP_FAILED, STEP_SKIPPED = "succeeded", "failed", "skipped"


def all_steps() -> tuple[str, ...]:
    """Every step some chain has, each once (the worker registers a task for each)."""
    return tuple(sorted({step for steps in STEPS.values() for step in steps}))


def steps_of(kind: str) -> tuple[str, ...]:
    try:
        return STEPS[kind]
    except KeyError:
        raise ValueError(f"unknown request kind {kind!r}") from None
