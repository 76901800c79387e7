"""Step names (as in shared.requests.kinds) to the functions of the capability modules."""
from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import Outcome

StepFunction = Callable[[StepContext], Outcome]


@lru_cache(maxsize=1)
def table() -> dict[str, StepFunction]:
    # Imported here: the capability modules import the engine's types, not the other way round.
    from shared.agreements import steps as agreements
    from shared.mailboxes import steps as mailboxes
    from shared.notifications import steps as notifications
    from shared.plans import steps as plans
    from shared.providers import steps as providers
    from shared.purchases import buying
    from shared.tenants import steps as tenants
    from shared.users import steps as users

    return {
        "check_partner_center": providers.check_partner_center,
        "enable_customer_plans": providers.enable_customer_plans,
        "enable_user_plans": providers.enable_user_plans,
        "connect_tenant": tenants.connect_tenant,
        "check_gdap": tenants.check_gdap,
        "read_agreement": agreements.read_agreement,
        "check_mca": agreements.check_mca,
        "read_licences": plans.read_licences,
        "enable_plans": plans.enable_plans,
        "reserve_seat": users.reserve_seat,
        "ensure_user": users.ensure_user,
        "assign_licences": users.assign_licences,
        "remove_licences": users.remove_licences,
        "disable_or_delete": users.disable_or_delete,
        "release_seat": users.release_seat,
        "wait_mailbox": mailboxes.wait_mailbox,
        "apply_aliases": mailboxes.apply_aliases,
        "sync": tenants.sync_tenant,
        "notify": notifications.notify,
        "buy_seats": buying.buy_seats,
    }


def step_function(name: str) -> StepFunction:
    try:
        return table()[name]
    except KeyError:
        raise LookupError(f"no step function for {name!r}") from None
