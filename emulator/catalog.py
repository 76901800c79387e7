"""Known Microsoft SKU and service plan identifiers, so seeded tenants carry Microsoft's real GUIDs."""
from __future__ import annotations

import uuid

# Plans whose licence gives the user an Exchange Online mailbox (EXCHANGE_S_FOUNDATION does not).
MAILBOX_PLANS = frozenset({"EXCHANGE_S_STANDARD", "EXCHANGE_S_ENTERPRISE", "EXCHANGE_S_DESKLESS",
                           "EXCHANGE_S_ESSENTIALS"})

SERVICE_PLANS: dict[str, str] = {
    "EXCHANGE_S_STANDARD": "9aaf7827-d63c-4b61-89c3-182f06f82e5c",
    "EXCHANGE_S_ENTERPRISE": "efb87545-963c-4e0d-99df-69c6916d9eb0",
    "EXCHANGE_S_DESKLESS": "4a82b400-a79f-41a4-b4e2-e94f5787b113",
    "EXCHANGE_S_ESSENTIALS": "1126bef5-da20-4f07-b45e-ad25d2581aa8",
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
    "EXCHANGEDESKLESS": ("80b2d799-d2ba-4d2a-8842-fb0d0f3a4b82", "Exchange Online Kiosk", ("EXCHANGE_S_DESKLESS",)),
    "EXCHANGE_S_ESSENTIALS": ("e8f81a67-bd96-4074-b108-cf193eb9433b", "Exchange Online Essentials",
                              ("EXCHANGE_S_ESSENTIALS",)),
    "O365_BUSINESS": ("cdd28e44-67e3-425e-be4c-737fab2899d3", "Microsoft 365 Apps for business",
                      ("EXCHANGE_S_FOUNDATION", "OFFICESUBSCRIPTION")),
    "FLOW_FREE": ("f30db892-07e9-47e9-837c-80727f46fd3d", "Microsoft Power Automate Free",
                  ("EXCHANGE_S_FOUNDATION",)),
}

# Built-in Entra directory roles: role template id -> (display name, description).
DIRECTORY_ROLES: dict[str, tuple[str, str]] = {
    "62e90394-69f5-4237-9190-012177145e10": ("Global Administrator",
                                             "Can manage all aspects of Microsoft Entra ID and Microsoft services "
                                             "that use Microsoft Entra identities."),
    "fe930be7-5e62-47db-91af-98c3a49a38b1": ("User Administrator",
                                             "Can manage all aspects of users and groups, including resetting "
                                             "passwords for limited admins."),
    "4d6ac14f-3453-41d0-bef9-a3e0c569773a": ("License Administrator",
                                             "Can manage product licenses on users and groups."),
    "29232cdf-9323-42fd-ade2-1d097af3e4de": ("Exchange Administrator",
                                             "Can manage all aspects of the Exchange product."),
    "729827e3-9c14-49f7-bb1b-9608f156bbb8": ("Helpdesk Administrator",
                                             "Can reset passwords for non-administrators and Helpdesk Administrators."),
    "88d8e3e3-8f55-4a1e-953a-9b9898b8876b": ("Directory Readers", "Can read basic directory information."),
}


def role_template(name_or_id: str) -> str | None:
    """A built-in role's template id, from its id or its display name (any case)."""
    if name_or_id in DIRECTORY_ROLES:
        return name_or_id
    return next((tid for tid, (name, _) in DIRECTORY_ROLES.items() if name.lower() == name_or_id.lower()), None)


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


def catalog_item_id(part_number: str) -> str:
    """The Partner Center catalog item (`<product>:<sku>:<availability>`) that sells `part_number`."""
    product = stable_guid("product", part_number).replace("-", "")[:12].upper()
    availability = stable_guid("availability", part_number).replace("-", "")[:12].upper()
    return f"{product}:0001:{availability}"


def part_for_catalog_item(item_id: str) -> str | None:
    """The known SKU a catalog item sells (its product and SKU segments decide; availability may vary)."""
    wanted = item_id.upper().split(":")[:2]
    return next((part for part in SKUS if catalog_item_id(part).split(":")[:2] == wanted), None)


def default_plans(part_number: str) -> tuple[str, ...]:
    known = SKUS.get(part_number)
    return known[2] if known else ()

# Partner Center's template id for the Microsoft Customer Agreement.
MCA_TEMPLATE_ID = "117a77b0-9360-443b-8795-c6dedc750cf9"
MCA_LINK = "https://aka.ms/customeragreement"
