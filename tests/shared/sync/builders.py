"""A sync test's world: an emulator tenant, a reseller and customer in Postgres, and ways to change Entra."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import httpx
from sqlalchemy import delete, select

from emulator.testing import RunningEmulator
from shared.db.models import AuditEvent, Customer, ServiceProvider, SyncPolicy, SyncRun, TenantSku, User, UserPlan
from shared.db.uow import UnitOfWork
from tests.builders import Builder, Licence

PARTNER_TENANT = "5a1e5a1e-0000-4000-8000-00000000a11c"
PARTNER_CLIENT = "sync-tests-app"
PARTNER_SECRET = "sync-tests-secret-value"
BASIC = "O365_BUSINESS_ESSENTIALS"
PREMIUM = "O365_BUSINESS_PREMIUM"


T = TypeVar("T")


def _detached(uow: UnitOfWork, value: T) -> T:
    """Rows stay readable after the unit of work ends (its rollback would expire them)."""
    uow.session.expunge_all()
    return value


class SyncWorld:
    """One test's tenant (`<tag>.onmicrosoft.com`, verified `<tag>.example`) and its customer."""

    def __init__(self, emulator: RunningEmulator, tag: str) -> None:
        self.em = emulator
        self.tag = tag
        self.initial = f"{tag}.onmicrosoft.com"
        self.verified = f"{tag}.example"
        self.tenant_id = ""
        self.customer_id = ""
        self.sku_ids: dict[str, str] = {}
        self._provider_ids: list[str] = []
        self._plan_ids: list[str] = []
        self.plan_ids: dict[tuple[str, ...], str] = {}
        self._http = emulator.client()

    # -- Entra (the emulator) -----------------------------------------------------------------------
    def tenant(self, skus: Sequence[str] = (BASIC, PREMIUM)) -> str:
        """The tenant, without users: add them with add_entra_users(entra_user(...)) once SKU ids are known."""
        spec = self.em.add_tenant(
            company_name=f"Tenant {self.tag}", initial_domain=self.initial, gdap="active", mca_signed=True,
            domains=[{"name": self.verified, "verified": True}],
            skus=[{"sku_part_number": part, "units": 100} for part in skus], consented_apps=[PARTNER_CLIENT])
        self.tenant_id = spec["tenant_id"]
        self.sku_ids = {s["sku_part_number"]: s["sku_id"] for s in spec["skus"]}
        return self.tenant_id

    def entra_user(self, upn: str, *licences: str, **props: Any) -> dict[str, Any]:
        """A user body for add_entra_users(), licences named by part number."""
        body: dict[str, Any] = {"userPrincipalName": upn, "usageLocation": "NL", **props}
        if licences:
            body["assignedLicenses"] = [{"skuId": self.sku_ids.get(p) or p, "disabledPlans": []} for p in licences]
        return body

    def add_entra_users(self, *bodies: dict[str, Any]) -> None:
        self._control().patch(f"/_emulator/tenants/{self.tenant_id}", json={"users": list(bodies)}).raise_for_status()

    def patch_entra_user(self, upn: str, **changes: Any) -> None:
        self._control().patch(f"/_emulator/tenants/{self.tenant_id}/users/{upn}", json=changes).raise_for_status()

    def delete_entra_user(self, upn: str) -> None:
        self._control().delete(f"/_emulator/tenants/{self.tenant_id}/users/{upn}").raise_for_status()

    def set_licences(self, upn: str, add: Sequence[str] = (), remove: Sequence[str] = ()) -> None:
        """Change a user's licences through Graph, as an admin in the tenant would."""
        token = self.em.token(self.tenant_id, PARTNER_CLIENT, PARTNER_SECRET)
        body = {"addLicenses": [{"skuId": self.sku_ids[p], "disabledPlans": []} for p in add],
                "removeLicenses": [self.sku_ids[p] for p in remove]}
        self._control().post(f"/v1.0/users/{upn}/assignLicense", json=body,
                             headers={"Authorization": f"Bearer {token}"}).raise_for_status()

    def expire_delta_links(self) -> None:
        self._control().post("/_emulator/delta/expire").raise_for_status()

    def _control(self) -> httpx.Client:
        return self._http

    # -- the engine's side (Postgres) ---------------------------------------------------------------
    def customer(self, *, local_users: Sequence[str] = (), import_unknown: bool = False, master: str = "microsoft",
                 plans: Sequence[Sequence[str]] = ((BASIC,), (BASIC, PREMIUM)), connected: bool = True,
                 tenant_id: str | None = None) -> str:
        """A connected customer on this tenant with user plans enabled, local users and a sync policy."""
        with UnitOfWork() as uow:
            b = Builder(uow.session)
            provider = b.provider(pc_tenant_id=PARTNER_TENANT, client_id=PARTNER_CLIENT, client_secret=PARTNER_SECRET)
            self._provider_ids.append(provider.id)
            user_plans = [b.user_plan([Licence(p) for p in parts], provider) for parts in plans]
            self._plan_ids += [p.id for p in user_plans]
            customer = b.customer(provider, tenant_id=tenant_id or self.tenant_id, connected=connected,
                                  initial_domain=self.initial, verified=(),
                                  plans=[(p, None) for p in user_plans])
            for upn in local_users:
                b.user(customer, upn)
            uow.session.add(SyncPolicy(customer_id=customer.id, enabled=True, interval_minutes=60,
                                       import_unknown_users=import_unknown, master=master))
            uow.commit()
            self.customer_id = customer.id
            self.plan_ids = {tuple(parts): p.id for parts, p in zip(plans, user_plans, strict=True)}
            return customer.id

    def users(self, customer_id: str | None = None) -> dict[str, User]:
        with UnitOfWork() as uow:
            rows = uow.session.scalars(select(User).where(User.customer_id == (customer_id or self.customer_id)))
            return _detached(uow, {u.upn: u for u in rows})

    def policy(self, customer_id: str | None = None) -> SyncPolicy:
        with UnitOfWork() as uow:
            row = uow.session.get(SyncPolicy, customer_id or self.customer_id)
            assert row is not None
            return _detached(uow, row)

    def runs(self, customer_id: str | None = None) -> list[SyncRun]:
        with UnitOfWork() as uow:
            return _detached(uow, list(uow.session.scalars(select(SyncRun).where(
                SyncRun.customer_id == (customer_id or self.customer_id)).order_by(SyncRun.started_at))))

    def skus(self) -> dict[str, TenantSku]:
        with UnitOfWork() as uow:
            return _detached(uow, {s.sku_part_number: s for s in uow.session.scalars(
                select(TenantSku).where(TenantSku.customer_id == self.customer_id))})

    def audit(self, action: str) -> list[AuditEvent]:
        ids = [u.id for u in self.users().values()]
        with UnitOfWork() as uow:
            return _detached(uow, list(uow.session.scalars(select(AuditEvent).where(
                AuditEvent.action == action, AuditEvent.object_id.in_(ids)))))

    def update(self, model: Any, key: str, **values: Any) -> None:
        with UnitOfWork() as uow:
            row = uow.session.get(model, key)
            for name, value in values.items():
                setattr(row, name, value)
            uow.commit()

    def cleanup(self) -> None:
        self._http.close()
        with UnitOfWork() as uow:
            s = uow.session
            customers = list(s.scalars(select(Customer.id).where(Customer.service_provider_id.in_(self._provider_ids))))
            users = list(s.scalars(select(User.id).where(User.customer_id.in_(customers))))
            if users:
                s.execute(delete(AuditEvent).where(AuditEvent.object_id.in_(users)))
            s.execute(delete(Customer).where(Customer.id.in_(customers)))
            s.execute(delete(ServiceProvider).where(ServiceProvider.id.in_(self._provider_ids)))
            s.execute(delete(UserPlan).where(UserPlan.id.in_(self._plan_ids)))
            uow.commit()
