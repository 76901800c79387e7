"""The demo reseller world of `provisioner dev`: a partner and two customer tenants in the emulator,
a service provider, plans and a customer in the database. Idempotent across restarts."""
from __future__ import annotations

import ssl
import uuid
from pathlib import Path

import httpx
from sqlalchemy import select

from shared.db.models import Customer, CustomerPlan, ServiceProvider, UserPlan, UserPlanLicence
from shared.db.uow import UnitOfWork
from shared.security import encrypt

DEMO_PROVIDER = "Demo Reseller"


def _demo_tenants(partner_app: str) -> list[dict[str, object]]:
    """Two customer tenants that already consented to the demo partner's app (CPV)."""
    return [
        {"company_name": "Contoso Ltd", "initial_domain": "contoso.onmicrosoft.com",
         "domains": [{"name": "contoso.example", "verified": True}],
         "skus": [{"sku_part_number": "O365_BUSINESS_PREMIUM", "units": 25, "service_plans": ["EXCHANGE_S_STANDARD"]},
                  {"sku_part_number": "EXCHANGESTANDARD", "units": 10, "service_plans": ["EXCHANGE_S_STANDARD"]}],
         "mca_signed": False, "gdap": "active", "consented_apps": [partner_app],
         "users": [{"userPrincipalName": "admin@contoso.example", "displayName": "Contoso Admin",
                    "mailNickname": "admin", "accountEnabled": True, "usageLocation": "GB"}]},
        {"company_name": "Fabrikam Inc", "initial_domain": "fabrikam.onmicrosoft.com",
         "domains": [{"name": "fabrikam.example", "verified": False}],
         "skus": [{"sku_part_number": "SPE_E3", "units": 5, "service_plans": ["EXCHANGE_S_ENTERPRISE"]}],
         "mca_signed": True, "gdap": "active", "consented_apps": [partner_app], "users": []},
    ]


def seed_demo(*, emulator_root: str, ca_path: str, var: Path) -> str:
    """Seed once; return the operator API key (kept in var/, readable only by the owner)."""
    key_file = var / "operator_key"
    with UnitOfWork() as uow:
        sp = uow.session.scalar(select(ServiceProvider).where(ServiceProvider.name == DEMO_PROVIDER))
        if sp is None:
            partner = {"tenant_id": str(uuid.uuid4()), "client_id": str(uuid.uuid4()),
                       "client_secret": "demo-" + uuid.uuid4().hex}
            trust = ssl.create_default_context(cafile=ca_path)
            with httpx.Client(base_url=emulator_root, verify=trust, timeout=30) as emu:
                emu.post("/_emulator/partners", json=partner).raise_for_status()
                for tenant in _demo_tenants(partner["client_id"]):
                    emu.post("/_emulator/tenants", json=tenant).raise_for_status()
            sp = ServiceProvider(name=DEMO_PROVIDER, kind="indirect", pc_tenant_id=partner["tenant_id"],
                                 pc_client_id=partner["client_id"],
                                 pc_client_secret_enc=encrypt(partner["client_secret"]))
            uow.session.add(sp)
            uow.session.add(CustomerPlan(name="Standard", description="Demo customer plan"))
            plan = UserPlan(name="Business Premium", description="Demo user plan")
            plan.licences = [UserPlanLicence(position=0, sku_part_number="O365_BUSINESS_PREMIUM",
                                             disabled_service_plans=[])]
            uow.session.add(plan)
            uow.session.flush()
            uow.session.add(Customer(service_provider_id=sp.id, name="Contoso Ltd"))
            uow.session.add(Customer(service_provider_id=sp.id, name="Fabrikam Inc"))
            uow.commit()
    if not key_file.exists():
        from shared.auth.keys import create_key

        with UnitOfWork() as uow:
            key = create_key(uow.session, role="operator", scope_id=None, name="provisioner dev")
            uow.commit()
        key_file.write_text(key)
        key_file.chmod(0o600)
    return key_file.read_text().strip()
