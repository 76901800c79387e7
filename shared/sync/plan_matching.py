"""Which user plan a user's licences look like: most SKUs in common, then fewest plan SKUs the user lacks."""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.models import PlanEnablement, ProviderUserPlan, UserPlan, UserPlanLicence


class PlanMatcher:
    """Scores every candidate plan against a licence set; answers are cached (few distinct sets per tenant)."""

    def __init__(self, plans: Iterable[tuple[str, str, Iterable[str]]]) -> None:
        # Sorted by name so that a full tie always picks the same plan.
        self._plans = sorted(((name, pid, frozenset(p.upper() for p in parts)) for pid, name, parts in plans),
                             key=lambda p: (p[0], p[1]))
        self._cache: dict[frozenset[str], str | None] = {}

    def match(self, licences: Iterable[str]) -> str | None:
        held = frozenset(p.upper() for p in licences)
        if held not in self._cache:
            self._cache[held] = self._best(held)
        return self._cache[held]

    def _best(self, held: frozenset[str]) -> str | None:
        best: tuple[int, int] | None = None
        best_id = None
        for _name, pid, parts in self._plans:
            common = len(held & parts)
            if not common:
                continue
            score = (common, -len(parts - held))
            if best is None or score > best:
                best, best_id = score, pid
        return best_id


def load_matcher(session: Session, customer_id: str, service_provider_id: str | None) -> PlanMatcher:
    """Candidates: the plans enabled for the customer, else (none enabled yet) the reseller's plans."""
    plan_ids = list(session.scalars(select(PlanEnablement.user_plan_id).where(
        PlanEnablement.customer_id == customer_id, PlanEnablement.enabled.is_(True))))
    if not plan_ids and service_provider_id:
        plan_ids = list(session.scalars(select(ProviderUserPlan.user_plan_id).where(
            ProviderUserPlan.service_provider_id == service_provider_id)))
    if not plan_ids:
        return PlanMatcher([])
    names = {pid: name for pid, name in
             session.execute(select(UserPlan.id, UserPlan.name).where(UserPlan.id.in_(plan_ids))).tuples()}
    parts: dict[str, list[str]] = {pid: [] for pid in names}
    for pid, part in session.execute(select(UserPlanLicence.user_plan_id, UserPlanLicence.sku_part_number)
                                     .where(UserPlanLicence.user_plan_id.in_(plan_ids))).tuples():
        parts[pid].append(part)
    return PlanMatcher((pid, names[pid], parts[pid]) for pid in names)
