"""The GDAP roles the engine's work needs in a customer tenant, by name and Entra role template id.

From Microsoft's pages (../shared/MICROSOFT.md, "Access to customer tenants", and Graph's assignLicense page):
users need User Administrator; licences License Administrator, which User Administrator and Directory Writers
also cover; aliases (Exchange admin cmdlets) Exchange Administrator; Global Administrator covers everything.
Unconfirmed, kept here: which role a step needs is judged by its main write (a step that only reads needs
any role of the relationship), and the emulator holds app-only calls to the same roles (emulator/access.py).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    name: str
    template_id: str

    def __str__(self) -> str:
        return f"{self.name} ({self.template_id})"


USER_ADMIN = Role("User Administrator", "fe930be7-5e62-47db-91af-98c3a49a38b1")
LICENSE_ADMIN = Role("License Administrator", "4d6ac14f-3453-41d0-bef9-a3e0c569773a")
EXCHANGE_ADMIN = Role("Exchange Administrator", "29232cdf-9323-42fd-ade2-1d097af3e4de")
GLOBAL_ADMIN = Role("Global Administrator", "62e90394-69f5-4237-9190-012177145e10")
DIRECTORY_READERS = Role("Directory Readers", "88d8e3e3-8f55-4a1e-953a-9b9898b8876b")
DIRECTORY_WRITERS = Role("Directory Writers", "9360feb5-f418-4baa-8175-e2a00bac4301")
KNOWN = {r.template_id: r for r in (USER_ADMIN, LICENSE_ADMIN, EXCHANGE_ADMIN, GLOBAL_ADMIN, DIRECTORY_READERS,
                                    DIRECTORY_WRITERS)}


@dataclass(frozen=True)
class Need:
    """One kind of work and the role it asks for; `also` are the broader roles that cover it."""

    work: str
    role: Role
    also: tuple[Role, ...] = (GLOBAL_ADMIN,)

    def met_by(self, template_ids: Iterable[str]) -> bool:
        held = {t.lower() for t in template_ids}
        return any(r.template_id in held for r in (self.role, *self.also))

    def __str__(self) -> str:
        return f"{self.role} for {self.work}"


USERS = Need("users", USER_ADMIN)
LICENCES = Need("licences", LICENSE_ADMIN, (USER_ADMIN, DIRECTORY_WRITERS, GLOBAL_ADMIN))
ALIASES = Need("aliases", EXCHANGE_ADMIN)

# The step whose call Microsoft refused -> the work it does (steps that only read are not listed).
_STEP_NEEDS = {
    "ensure_user": USERS,
    "disable_or_delete": USERS,
    "assign_licences": LICENCES,
    "remove_licences": LICENCES,
    "apply_aliases": ALIASES,
}


def for_step(step: str) -> Need | None:
    return _STEP_NEEDS.get(step)


def for_connection(*, aliases: bool) -> list[Need]:
    """What connecting a tenant must find granted: users and their licences, which is what the engine does
    with every tenant; aliases too when the onboarding's users have some."""
    return [USERS, LICENCES, ALIASES] if aliases else [USERS, LICENCES]


def missing(needs: Iterable[Need], template_ids: Iterable[str]) -> list[Need]:
    held = list(template_ids)
    return [n for n in needs if not n.met_by(held)]


def names(template_ids: Iterable[str]) -> list[str]:
    """Role names for display; an id the engine does not know shows as itself."""
    return [KNOWN[t.lower()].name if t.lower() in KNOWN else t for t in template_ids]
