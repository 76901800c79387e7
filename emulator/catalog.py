"""Known Microsoft SKU and service plan identifiers, so seeded tenants carry Microsoft's real GUIDs."""
from __future__ import annotations

import uuid

# Plans whose licence gives the user an Exchange Online mailbox (EXCHANGE_S_FOUNDATION does not).
MAILBOX_PLANS = frozenset({"EXCHANGE_S_STANDARD", "EXCHANGE_S_ENTERPRISE", "EXCHANGE_S_DESKLESS"})

SERVICE_PLANS: dict[str, str] = {
    "EXCHANGE_S_STANDARD": "9aaf7827-d63c-4b61-89c3-182f06f82e5c",
    "EXCHANGE_S_ENTERPRISE": "efb87545-963c-4e0d-99df-69c6916d9eb0",
    "EXCHANGE_S_DESKLESS": "4a82b400-a79f-41a4-b4e2-e94f5787b113",
    "EXCHANGE_S_FOUNDATION": "113feb6c-3fe4-4440-bddc-54d774bf0318",
    "SHAREPOINTSTANDARD": "c7699d2e-19aa-44de-8edf-1736da088ca1",
    "SHAREPOINTENTERPRISE": "5dbe027f-2339-4123-9542-606e4d348a72",
    "TEAMS1": "57ff2da0-773e-42df-b2af-ffb7a2317929",
    "MCOSTANDARD": "0feaeb32-d00e-4d66-bd5a-43b5b83db82c",
    "OFFICESUBSCRIPTION": "43de0ff5-c92c-492b-9116-175376d08c38",
}

# part number -> (skuId, display name, default service plans)
SKUS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "O365_BUSINESS_ESSENTIALS": ("3b555118-da6a-4418-894f-7df1e2096870", "Microsoft 365 Business Basic",
                                 ("EXCHANGE_S_STANDARD", "SHAREPOINTSTANDARD", "TEAMS1", "MCOSTANDARD")),
    "O365_BUSINESS_PREMIUM": ("f245ecc8-75af-4f8e-b61f-27d8114de5c3", "Microsoft 365 Business Standard",
                              ("EXCHANGE_S_STANDARD", "SHAREPOINTSTANDARD", "TEAMS1", "MCOSTANDARD",
                               "OFFICESUBSCRIPTION")),
    "SPB": ("cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46", "Microsoft 365 Business Premium",
            ("EXCHANGE_S_STANDARD", "SHAREPOINTSTANDARD", "TEAMS1", "MCOSTANDARD", "OFFICESUBSCRIPTION")),
    "ENTERPRISEPACK": ("6fd2c87f-b296-42f0-b197-1e91e994b900", "Office 365 E3",
                       ("EXCHANGE_S_ENTERPRISE", "SHAREPOINTENTERPRISE", "TEAMS1", "OFFICESUBSCRIPTION")),
    "SPE_E3": ("05e9a617-0261-4cee-bb44-138d3ef5d965", "Microsoft 365 E3",
               ("EXCHANGE_S_ENTERPRISE", "SHAREPOINTENTERPRISE", "TEAMS1", "OFFICESUBSCRIPTION")),
    "EXCHANGESTANDARD": ("4b9405b0-7788-4568-add1-99614e613b69", "Exchange Online (Plan 1)",
                         ("EXCHANGE_S_STANDARD",)),
    "O365_BUSINESS": ("cdd28e44-67e3-425e-be4c-737fab2899d3", "Microsoft 365 Apps for business",
                      ("EXCHANGE_S_FOUNDATION", "OFFICESUBSCRIPTION")),
    "FLOW_FREE": ("f30db892-07e9-47e9-837c-80727f46fd3d", "Microsoft Power Automate Free",
                  ("EXCHANGE_S_FOUNDATION",)),
}

# Invented identifiers must stay the same across runs and processes, hence name-based UUIDs.
_NAMESPACE = uuid.UUID("6f1c1d2e-8a53-4c1b-9d7e-2c3f4a5b6c7d")


def stable_guid(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{name}"))


def service_plan_id(name: str) -> str:
    return SERVICE_PLANS.get(name) or stable_guid("plan", name)


def sku_id(part_number: str) -> str:
    known = SKUS.get(part_number)
    return known[0] if known else stable_guid("sku", part_number)


def sku_name(part_number: str) -> str:
    known = SKUS.get(part_number)
    return known[1] if known else part_number


def default_plans(part_number: str) -> tuple[str, ...]:
    known = SKUS.get(part_number)
    return known[2] if known else ()

# Partner Center's template id for the Microsoft Customer Agreement.
MCA_TEMPLATE_ID = "117a77b0-9360-443b-8795-c6dedc750cf9"
MCA_LINK = "https://aka.ms/customeragreement"
