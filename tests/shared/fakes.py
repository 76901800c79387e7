"""An in-memory Microsoft (Partner Center, Graph, Exchange) with the method names of shared.microsoft."""
from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from emulator.users import DEFAULT_PROPERTIES
from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.errors import (
    Conflict,
    Forbidden,
    InvalidUsageLocation,
    MailboxNotReady,
    NoFreeLicences,
    NotFound,
    Transient,
    UnverifiedDomain,
)

EXCHANGE_STANDARD = ("9aaf7827-d63c-4b61-89c3-182f06f82e5c", "EXCHANGE_S_STANDARD")
# User, License and Exchange Administrator: what a relationship grants unless a test says otherwise.
ENGINE_ROLES = ("fe930be7-5e62-47db-91af-98c3a49a38b1", "4d6ac14f-3453-41d0-bef9-a3e0c569773a",
                "29232cdf-9323-42fd-ade2-1d097af3e4de")
TEAMS = ("57ff2da0-773e-42df-b2af-ffb7a2317929", "TEAMS1")


@dataclass
class FakeSku:
    part: str
    units: int
    plans: Sequence[tuple[str, str]] = (EXCHANGE_STANDARD, TEAMS)
    sku_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    consumed: int = 0
    subscription_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def graph(self) -> dict[str, Any]:
        return {"skuId": self.sku_id, "skuPartNumber": self.part, "consumedUnits": self.consumed,
                "subscriptionIds": [self.subscription_id],
                "prepaidUnits": {"enabled": self.units, "suspended": 0, "warning": 0},
                "servicePlans": [{"servicePlanId": i, "servicePlanName": n} for i, n in self.plans]}


@dataclass
class FakeTenant:
    tenant_id: str
    initial_domain: str
    domains: dict[str, bool] = field(default_factory=dict)
    skus: dict[str, FakeSku] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    mca: list[dict[str, Any]] = field(default_factory=list)
    gdap: str = "active"
    gdap_roles: tuple[str, ...] = ENGINE_ROLES
    gdap_ends: str = "2030-01-01T00:00:00Z"
    consents: set[str] = field(default_factory=set)  # client ids granted through Partner Center
    mailboxes: set[str] = field(default_factory=set)  # user ids whose mailbox exists
    hidden: set[str] = field(default_factory=set)  # user ids not replicated yet
    roles: dict[str, list[str]] = field(default_factory=dict)  # user id -> directory role names

    def by_upn(self, upn: str) -> dict[str, Any] | None:
        return next((u for u in self.users.values() if u["userPrincipalName"].lower() == upn.lower()), None)


class FakeMicrosoft:
    """`fail[method]` is a list of exceptions raised by the next calls of that method, in order."""

    def __init__(self) -> None:
        self.tenants: dict[str, FakeTenant] = {}
        self.calls: Counter[str] = Counter()
        self.fail: defaultdict[str, list[Exception]] = defaultdict(list)
        self.created: list[str] = []
        self.assigned: list[tuple[str, str]] = []
        self.connection_ok = True
        # Partner Center purchases: (subscription id, quantity, MS-RequestId) applied; answers to lose.
        self.purchases: list[tuple[str, int, str]] = []
        self.lose_answers = 0
        self.created_bodies: list[dict[str, Any]] = []  # Partner Center Create customer bodies
        self.new_tenant_password = "Nt1!" + uuid.uuid4().hex

    def tenant(self, initial_domain: str = "contoso.onmicrosoft.com", *, tenant_id: str | None = None,
               verified: Sequence[str] = ("contoso.com",), unverified: Sequence[str] = (),
               skus: Sequence[FakeSku] = (), mca: bool = True, gdap: str = "active") -> FakeTenant:
        t = FakeTenant(tenant_id or str(uuid.uuid4()), initial_domain)
        t.domains = {initial_domain: True, **dict.fromkeys(verified, True), **dict.fromkeys(unverified, False)}
        t.skus = {s.part: s for s in skus}
        t.mca = [{"type": "MicrosoftCustomerAgreement", "dateAgreed": "2025-01-01"}] if mca else []
        t.gdap = gdap
        self.tenants[t.tenant_id] = t
        return t

    def add_user(self, tenant: FakeTenant, upn: str, **props: Any) -> dict[str, Any]:
        user = {"id": str(uuid.uuid4()), "userPrincipalName": upn, "accountEnabled": True, "usageLocation": None,
                "assignedLicenses": [], "createdDateTime": datetime.now(UTC).isoformat(), **props}
        tenant.users[user["id"]] = user
        return user

    def hit(self, method: str) -> None:
        self.calls[method] += 1
        if self.fail[method]:
            raise self.fail[method].pop(0)

    def partner_center(self, credential: PartnerCredential) -> FakePartnerCenter:
        return FakePartnerCenter(self)

    def graph(self, credential: PartnerCredential, tenant_id: str) -> FakeGraph:
        return FakeGraph(self, tenant_id)

    def exchange(self, credential: PartnerCredential, tenant_id: str) -> FakeExchange:
        return FakeExchange(self, self.tenants[tenant_id])


class FakePartnerCenter:
    def __init__(self, ms: FakeMicrosoft) -> None:
        self.ms = ms

    def check_connection(self) -> None:
        self.ms.hit("check_connection")

    def get_customer(self, tenant_id: str) -> dict[str, Any]:
        self.ms.hit("get_customer")
        t = self.ms.tenants.get(tenant_id)
        if t is None:
            raise NotFound("Partner Center 404: customer not found", status=404)
        return {"id": t.tenant_id, "companyProfile": {"tenantId": t.tenant_id, "domain": t.initial_domain,
                                                      "companyName": "Contoso"}}

    def create_customer(self, body: dict[str, Any]) -> dict[str, Any]:
        self.ms.hit("create_customer")
        self.ms.created_bodies.append(body)
        domain = body["companyProfile"]["domain"]
        assert domain.endswith(".onmicrosoft.com"), "Partner Center wants the whole initial domain"
        t = self.ms.tenant(domain, verified=())
        return {"id": t.tenant_id, "companyProfile": {"tenantId": t.tenant_id, "domain": domain},
                "userCredentials": {"userName": "admin", "password": self.ms.new_tenant_password}}

    def get_agreements(self, customer_tenant_id: str) -> list[dict[str, Any]]:
        self.ms.hit("get_agreements")
        return list(self.ms.tenants[customer_tenant_id].mca)

    def record_agreement(self, customer_tenant_id: str, primary_contact: dict[str, Any],
                         date_agreed: str | None = None) -> None:
        self.ms.tenants[customer_tenant_id].mca.append({"type": "MicrosoftCustomerAgreement"})

    def subscribed_skus(self, customer_tenant_id: str) -> list[dict[str, Any]]:
        return [s.graph() for s in self.ms.tenants[customer_tenant_id].skus.values()]

    def list_subscriptions(self, customer_tenant_id: str) -> list[dict[str, Any]]:
        self.ms.hit("list_subscriptions")
        return [{"id": s.subscription_id, "offerId": s.part, "quantity": s.units, "status": "active"}
                for s in self.ms.tenants[customer_tenant_id].skus.values()]

    def update_subscription_quantity(self, customer_tenant_id: str, subscription: dict[str, Any], quantity: int,
                                     request_id: str) -> dict[str, Any]:
        """Partner Center's idempotency: a request id already applied changes nothing again. `lose_answers`:
        the change is applied, the caller gets an ambiguous failure."""
        self.ms.hit("update_subscription_quantity")
        tenant = self.ms.tenants[customer_tenant_id]
        if not tenant.mca:
            raise Forbidden("Partner Center 403: the customer has not accepted the MCA", status=403)
        sku = next(s for s in tenant.skus.values() if s.subscription_id == subscription["id"])
        if not any(rid == request_id for _, _, rid in self.ms.purchases):
            self.ms.purchases.append((sku.subscription_id, quantity, request_id))
            sku.units = quantity
        if self.ms.lose_answers:
            self.ms.lose_answers -= 1
            raise Transient("Partner Center PATCH unreachable (ReadTimeout)", request_id=request_id, ambiguous=True)
        return {"id": sku.subscription_id, "quantity": sku.units}

    def grant_application_consent(self, customer_tenant_id: str, application_id: str,
                                  grants: Sequence[tuple[str, str]]) -> bool:
        """True when granted now, False when it was already there (Partner Center's 409)."""
        self.ms.hit("grant_application_consent")
        tenant = self.ms.tenants[customer_tenant_id]
        if application_id in tenant.consents:
            return False
        tenant.consents.add(application_id)
        return True


class FakeGraph:
    def __init__(self, ms: FakeMicrosoft, tenant_id: str) -> None:
        self.ms = ms
        self.tenant_id = tenant_id

    @property
    def t(self) -> FakeTenant:
        return self.ms.tenants[self.tenant_id]

    def _user(self, id_or_upn: str) -> dict[str, Any]:
        user = self.t.users.get(id_or_upn) or self.t.by_upn(id_or_upn)
        if user is None or user["id"] in self.t.hidden:
            raise NotFound("Graph 404: Request_ResourceNotFound", status=404)
        return user

    def gdap_relationships(self, customer_tenant_id: str) -> list[dict[str, Any]]:
        self.ms.hit("gdap_relationships")
        t = self.ms.tenants[customer_tenant_id]
        return [] if t.gdap == "none" else [{
            "id": "rel", "displayName": "CSP relationship", "status": t.gdap, "endDateTime": t.gdap_ends,
            "accessDetails": {"unifiedRoles": [{"roleDefinitionId": r} for r in t.gdap_roles]}}]

    def domains(self) -> list[dict[str, Any]]:
        self.ms.hit("domains")
        return [{"id": name, "isVerified": ok, "isInitial": name == self.t.initial_domain}
                for name, ok in self.t.domains.items()]

    def subscribed_skus(self) -> list[dict[str, Any]]:
        self.ms.hit("subscribed_skus")
        return [s.graph() for s in self.t.skus.values()]

    def find_user_by_upn(self, upn: str, select: Sequence[str] | None = None) -> dict[str, Any] | None:
        self.ms.hit("find_user_by_upn")
        user = self.t.by_upn(upn)
        return dict(user) if user and user["id"] not in self.t.hidden else None

    def get_user(self, id_or_upn: str, select: Sequence[str] | None = None) -> dict[str, Any]:
        self.ms.hit("get_user")
        return dict(self._user(id_or_upn))

    def create_user(self, body: Mapping[str, Any]) -> dict[str, Any]:
        self.ms.hit("create_user")
        upn = body["userPrincipalName"]
        if not self.t.domains.get(upn.split("@")[1]):
            raise UnverifiedDomain("Graph 400: domain portion of the userPrincipalName is invalid", status=400)
        if self.t.by_upn(upn):
            raise Conflict("Graph 400: Another object with the same value for property userPrincipalName",
                           status=400)
        user = self.ms.add_user(self.t, upn, usageLocation=body.get("usageLocation"),
                                passwordProfile=dict(body["passwordProfile"]))
        self.ms.created.append(upn)
        # What Graph answers a create with: the default properties (no licences, no usage location).
        return {k: user.get(k) for k in DEFAULT_PROPERTIES}

    def update_user(self, user_id: str, changes: Mapping[str, Any]) -> None:
        self.ms.hit("update_user")
        user = self._user(user_id)
        if "userPrincipalName" in changes and not self.t.domains.get(changes["userPrincipalName"].split("@")[1]):
            raise UnverifiedDomain("Graph 400: domain portion of the userPrincipalName is invalid", status=400)
        user.update(changes)

    def member_of(self, user_id: str) -> list[dict[str, Any]]:
        self.ms.hit("member_of")
        user = self._user(user_id)
        return [{"@odata.type": "#microsoft.graph.group", "id": "all-users", "displayName": "All Users"},
                *({"@odata.type": "#microsoft.graph.directoryRole", "id": str(uuid.uuid4()), "displayName": name,
                   "roleTemplateId": None} for name in self.t.roles.get(user["id"], []))]

    def delete_user(self, user_id: str) -> None:
        self.ms.hit("delete_user")
        user = self._user(user_id)
        del self.t.users[user["id"]]

    def assign_licences(self, user_id: str, add: Sequence[Mapping[str, Any]], remove: Sequence[str]) -> None:
        self.ms.hit("assign_licences")
        user = self._user(user_id)
        if add and not user.get("usageLocation"):
            raise InvalidUsageLocation("Graph 400: invalid usage location", status=400)
        skus = {s.sku_id: s for s in self.t.skus.values()}
        have = {lic["skuId"] for lic in user["assignedLicenses"]}
        for item in add:
            sku = skus[item["skuId"]]
            if item["skuId"] not in have and sku.units - sku.consumed < 1:
                raise NoFreeLicences("Graph 400: does not have any available licenses", status=400)
        for item in add:
            if item["skuId"] not in have:
                skus[item["skuId"]].consumed += 1
                user["assignedLicenses"].append({"skuId": item["skuId"], "disabledPlans": item["disabledPlans"]})
                self.ms.assigned.append((user["id"], item["skuId"]))
        for sku_id in remove:
            skus[sku_id].consumed -= 1
            user["assignedLicenses"] = [lic for lic in user["assignedLicenses"] if lic["skuId"] != sku_id]

    def mailbox_ready(self, user_id: str) -> bool:
        self.ms.hit("mailbox_ready")
        return user_id in self.t.mailboxes


class FakeExchange:
    def __init__(self, ms: FakeMicrosoft, tenant: FakeTenant) -> None:
        self.ms = ms
        self.t = tenant

    def _mailbox_user(self, upn: str) -> dict[str, Any]:
        user = self.t.by_upn(upn)
        if user is None or user["id"] not in self.t.mailboxes:
            raise MailboxNotReady("Exchange: ManagementObjectNotFoundException", status=404)
        return user

    def get_mailbox(self, upn: str) -> dict[str, Any]:
        self.ms.hit("get_mailbox")
        user = self._mailbox_user(upn)
        return {"EmailAddresses": [f"SMTP:{upn}", *user.setdefault("aliases", [])]}

    def add_mailbox_addresses(self, upn: str, addresses: Sequence[str]) -> None:
        self.ms.hit("add_mailbox_addresses")
        user = self._mailbox_user(upn)
        user.setdefault("aliases", []).extend(f"smtp:{a}" for a in addresses)
