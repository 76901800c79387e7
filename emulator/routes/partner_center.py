"""Partner Center v1: customers (search, get, create), domains, agreements, subscribed SKUs, subscriptions,
CPV application consents."""
from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING, Any

import orjson

from .. import access, catalog
from ..clock import iso
from ..errors import ApiError
from ..http import Request, Response, empty, json_response, route
from ..tenant import Sku, Tenant
from . import guard

if TYPE_CHECKING:
    from ..app import Emulator

_SEARCH_FIELDS = {"domain": "Domain", "companyname": "CompanyName"}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _collection(items: list[dict[str, Any]], links: dict[str, Any] | None = None) -> Response:
    return json_response({"totalCount": len(items), "items": items, "links": links or {},
                          "attributes": {"objectType": "Collection"}})


def _customer(tenant: Tenant) -> dict[str, Any]:
    return {
        "id": tenant.tenant_id,
        "commerceId": catalog.stable_guid("commerce", tenant.tenant_id),
        "companyProfile": {"tenantId": tenant.tenant_id, "domain": tenant.initial_domain,
                           "companyName": tenant.company_name,
                           "attributes": {"objectType": "CustomerCompanyProfile"}},
        "relationshipToPartner": "reseller",
        "allowDelegatedAccess": tenant.gdap != "none",
        "links": {"self": {"uri": f"/customers/{tenant.tenant_id}", "method": "GET", "headers": []}},
        "attributes": {"objectType": "Customer"},
    }


def _customer_or_404(em: Emulator, customer_id: str) -> Tenant:
    tenant = em.world.tenants.get(customer_id)
    if tenant is None:
        raise ApiError(404, "1000", f"Customer {customer_id} was not found.", target="CustomerNotFound")
    return tenant


def _invalid(message: str) -> ApiError:
    return ApiError(400, "2000", message, target="InvalidInput")


async def list_customers(em: Emulator, req: Request) -> Response:
    guard.partner_center(em, req)
    size = req.query.get("size", "500")
    if not size.isdigit() or not 1 <= int(size) <= 500:
        raise _invalid("size must be between 1 and 500.")
    tenants = list(em.world.tenants.values())
    raw = req.query.get("filter")
    if raw:
        tenants = [t for t in tenants if _search(raw)(t)]
    continuation = req.header(b"ms-continuationtoken") or "0"
    offset = int(continuation) if req.query.get("seekOperation") == "Next" and continuation.isdigit() else 0
    page = tenants[offset:offset + int(size)]
    links: dict[str, Any] = {}
    if offset + len(page) < len(tenants):
        links["next"] = {"uri": f"/customers?size={size}&seekOperation=Next", "method": "GET",
                         "headers": [{"key": "MS-ContinuationToken", "value": str(offset + len(page))}]}
    return _collection([_customer(t) for t in page], links)


def _search(raw: str) -> Any:
    try:
        spec = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _invalid("The filter is not valid JSON.") from None
    field = _SEARCH_FIELDS.get(str(spec.get("Field", "")).lower()) if isinstance(spec, dict) else None
    if field is None or str(spec.get("Operator", "")).lower() != "starts_with":
        raise _invalid("Only the Domain and CompanyName fields with the starts_with operator are supported.")
    prefix = str(spec.get("Value", "")).lower()
    if field == "CompanyName":
        return lambda t: t.company_name.lower().startswith(prefix)
    return lambda t: any(name.startswith(prefix) for name in t.domains)


async def get_customer(em: Emulator, req: Request) -> Response:
    guard.partner_center(em, req)
    return json_response(_customer(_customer_or_404(em, req.params["customer"])))


_BILLING_REQUIRED = ("email", "culture", "language", "companyName", "defaultAddress")
_ADDRESS_REQUIRED = ("firstName", "lastName", "addressLine1", "city", "postalCode", "country")
_INITIAL_DOMAIN = re.compile(r"[a-z0-9]{1,27}\.onmicrosoft\.com")


def _field(obj: dict[str, Any], name: str) -> Any:
    """Partner Center binds JSON case-insensitively (its own samples send PascalCase); snake_case is unknown."""
    wanted = name.lower()
    return next((v for k, v in obj.items() if k.lower() == wanted), None)


def _object(obj: dict[str, Any], name: str) -> dict[str, Any]:
    value = _field(obj, name)
    return value if isinstance(value, dict) else {}


def _new_customer(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The initial domain and the billing profile of a Create customer body, checked as Microsoft does."""
    domain = str(_field(_object(body, "companyProfile"), "domain") or "").strip().lower()
    if not domain:
        raise _invalid("companyProfile.domain is required.")
    if not _INITIAL_DOMAIN.fullmatch(domain):
        raise _invalid(f"The domain {domain} is not a valid <prefix>.onmicrosoft.com domain.")
    billing = _object(body, "billingProfile")
    for name in _BILLING_REQUIRED:
        if not _field(billing, name):
            raise _invalid(f"billingProfile.{name} is required.")
    address = _object(billing, "defaultAddress")
    for name in _ADDRESS_REQUIRED:
        if not str(_field(address, name) or "").strip():
            raise _invalid(f"billingProfile.defaultAddress.{name} is required.")
    if not re.fullmatch(r"[A-Za-z]{2}", str(_field(address, "country"))):
        raise _invalid("billingProfile.defaultAddress.country must be a two-letter ISO country code.")
    return domain, billing


async def create_customer(em: Emulator, req: Request) -> Response:
    guard.partner_center(em, req)
    domain, billing = _new_customer(req.json_object())
    address = _object(billing, "defaultAddress")
    async with em.create_lock:
        if em.world.domain_taken(domain):
            raise ApiError(409, "1002", f"The domain {domain} is already in use.", target="DomainAlreadyExists")
        now = em.clock.time()
        tenant = em.world.create_tenant({"company_name": _field(billing, "companyName"), "initial_domain": domain},
                                        now=now)
        tenant.token_ready_at = now + float(em.faults.values["new_tenant_token_delay_s"])
        password = "A1!" + secrets.token_urlsafe(12)
        em.world.seed_user(tenant, {"userPrincipalName": f"admin@{domain}", "displayName": "admin",
                                    "usageLocation": str(_field(address, "country")).upper()}, now=now)
    profile = {"email": _field(billing, "email"), "culture": _field(billing, "culture"),
               "language": _field(billing, "language"), "companyName": _field(billing, "companyName"),
               "firstName": _field(billing, "firstName"), "lastName": _field(billing, "lastName"),
               "defaultAddress": {k[:1].lower() + k[1:]: v for k, v in address.items()},
               "attributes": {"objectType": "CustomerBillingProfile"}}
    answer = {**_customer(tenant), "billingProfile": {k: v for k, v in profile.items() if v is not None},
              "userCredentials": {"userName": "admin", "password": password}}
    return json_response(answer, 201)


async def domain_exists(em: Emulator, req: Request) -> Response:
    guard.partner_center(em, req)
    return empty(200 if em.world.domain_taken(req.params["domain"]) else 404)


async def agreement_templates(em: Emulator, req: Request) -> Response:
    guard.partner_center(em, req)
    wanted = req.query.get("agreementType", "MicrosoftCloudAgreement")
    templates = [
        {"templateId": catalog.MCA_TEMPLATE_ID, "agreementType": "MicrosoftCustomerAgreement",
         "agreementLink": catalog.MCA_LINK, "versionRank": 0},
        {"templateId": catalog.stable_guid("agreement", "MicrosoftCloudAgreement"),
         "agreementType": "MicrosoftCloudAgreement", "agreementLink": "https://aka.ms/microsoftcloudagreement",
         "versionRank": 0},
    ]
    items = [{**t, "attributes": {"objectType": "AgreementMetaData"}} for t in templates
             if wanted == "*" or t["agreementType"] == wanted]
    return _collection(items)


async def list_agreements(em: Emulator, req: Request) -> Response:
    guard.partner_center(em, req)
    tenant = _customer_or_404(em, req.params["customer"])
    wanted = req.query.get("agreementType", "MicrosoftCustomerAgreement")
    items = [tenant.mca] if tenant.mca and wanted in ("*", "MicrosoftCustomerAgreement") else []
    return _collection([{**i, "attributes": {"objectType": "Agreement"}} for i in items if i])


async def record_agreement(em: Emulator, req: Request) -> Response:
    guard.partner_center(em, req)
    tenant = _customer_or_404(em, req.params["customer"])
    body = req.json_object()
    contact = body.get("primaryContact") or {}
    for name in ("firstName", "lastName", "email"):
        if not contact.get(name):
            raise _invalid(f"primaryContact.{name} is required.")
    if body.get("templateId") != catalog.MCA_TEMPLATE_ID:
        raise _invalid("templateId is not the Microsoft Customer Agreement template.")
    if body.get("type", "MicrosoftCustomerAgreement") != "MicrosoftCustomerAgreement":
        raise _invalid("type must be MicrosoftCustomerAgreement.")
    date_agreed = str(body.get("dateAgreed") or iso(em.clock.time()))
    if not _DATE.match(date_agreed):
        raise _invalid("dateAgreed must be an ISO 8601 date.")
    async with tenant.lock:
        if tenant.mca is not None:
            # Status unconfirmed at Microsoft; 409 with the documented code 600061 (see the report).
            raise ApiError(409, "600061", "A partner confirmed agreement already exists.",
                           target="PartnerConfirmedAgreementAlreadyExists")
        tenant.mca = {"primaryContact": {k: contact.get(k) for k in ("firstName", "lastName", "email",
                                                                       "phoneNumber")},
                      "templateId": catalog.MCA_TEMPLATE_ID, "dateAgreed": date_agreed,
                      "type": "MicrosoftCustomerAgreement", "agreementLink": catalog.MCA_LINK}
    return json_response({**tenant.mca, "attributes": {"objectType": "Agreement"}}, 201)


async def subscribed_skus(em: Emulator, req: Request) -> Response:
    guard.partner_center(em, req)
    tenant = _customer_or_404(em, req.params["customer"])
    items = [{
        "availableUnits": sku.free, "activeUnits": sku.enabled, "consumedUnits": sku.consumed,
        "suspendedUnits": 0, "totalUnits": sku.enabled, "warningUnits": 0, "capabilityStatus": "Enabled",
        "productSku": {"id": sku.sku_id, "name": catalog.sku_name(sku.part_number),
                       "skuPartNumber": sku.part_number, "targetType": "User", "licenseGroupId": "group1"},
        "servicePlans": [{"displayName": name, "serviceName": name, "id": pid, "capabilityStatus": "Enabled",
                          "targetType": "User"} for pid, name in sku.plans],
        "attributes": {"objectType": "SubscribedSku"},
    } for sku in tenant.skus.values()]
    return _collection(items)


def subscription_id(tenant: Tenant, sku: Sku) -> str:
    return catalog.stable_guid("subscription", f"{tenant.tenant_id}:{sku.sku_id}")


def subscription(tenant: Tenant, sku: Sku) -> dict[str, Any]:
    """The Partner Center subscription behind one SKU: its quantity is the SKU's units."""
    start = iso(tenant.created_at)
    end = iso(tenant.created_at + 365 * 86400)
    sub_id = subscription_id(tenant, sku)
    return {
        "id": sub_id,
        "offerId": catalog.stable_guid("offer", sku.part_number).upper(),
        "offerName": catalog.sku_name(sku.part_number),
        "friendlyName": catalog.sku_name(sku.part_number), "quantity": sku.units, "unitType": "Licenses",
        "creationDate": start, "effectiveStartDate": start, "commitmentEndDate": end, "status": "active",
        "autoRenewEnabled": True, "isTrial": False, "billingType": "license", "billingCycle": "monthly",
        "termDuration": "P1Y", "contractType": "subscription",
        "links": {"self": {"uri": f"/customers/{tenant.tenant_id}/subscriptions/{sub_id}", "method": "GET",
                           "headers": []}},
        "attributes": {"objectType": "Subscription"},
    }


async def subscriptions(em: Emulator, req: Request) -> Response:
    guard.partner_center(em, req)
    tenant = _customer_or_404(em, req.params["customer"])
    return _collection([subscription(tenant, sku) for sku in tenant.skus.values()])


async def grant_consent(em: Emulator, req: Request) -> Response:
    """CPV application consent: the partner's app gets a service principal and grants in the customer tenant."""
    partner = guard.partner_center(em, req)
    tenant = _customer_or_404(em, req.params["customer"])
    body = req.json_object()
    app_id = str(body.get("applicationId") or "")
    app = em.world.partners.get(app_id)
    if app is None or app.tenant_id != partner.tenant_id:
        raise _invalid(f"The application {app_id or '(none)'} is not an application of this partner.")
    grants = body.get("applicationGrants")
    if not isinstance(grants, list) or not grants or not all(
            isinstance(g, dict) and g.get("enterpriseApplicationId") and g.get("scope") for g in grants):
        raise _invalid("applicationGrants must list {enterpriseApplicationId, scope} items.")
    async with tenant.lock:
        if app_id in tenant.consents:
            raise ApiError(409, "2001", f"Application consent for {app_id} already exists.",
                           target="ApplicationConsentAlreadyExists")
        now = em.clock.time()
        tenant.consents[app_id] = access.Consent(
            now, now + float(em.faults.values["consent_delay_s"]),
            frozenset(str(g["enterpriseApplicationId"]).lower() for g in grants))
    em.stats.count("consents", tenant.tenant_id)
    return json_response({"applicationId": app_id, "applicationGrants": grants,
                          "attributes": {"objectType": "ApplicationConsent"}}, 201)


async def remove_consent(em: Emulator, req: Request) -> Response:
    guard.partner_center(em, req)
    tenant = _customer_or_404(em, req.params["customer"])
    async with tenant.lock:
        if tenant.consents.pop(req.params["app"], None) is None:
            raise ApiError(404, "1000", f"No application consent for {req.params['app']}.", target="NotFound")
    return empty(204)


ROUTES = [
    route("GET", "/v1/customers", list_customers, "partner_center"),
    route("POST", "/v1/customers", create_customer, "partner_center"),
    route("GET", "/v1/customers/{customer}", get_customer, "partner_center"),
    route("HEAD", "/v1/domains/{domain}", domain_exists, "partner_center"),
    route("GET", "/v1/agreements", agreement_templates, "partner_center"),
    route("GET", "/v1/customers/{customer}/agreements", list_agreements, "partner_center"),
    route("POST", "/v1/customers/{customer}/agreements", record_agreement, "partner_center"),
    route("GET", "/v1/customers/{customer}/subscribedskus", subscribed_skus, "partner_center"),
    route("GET", "/v1/customers/{customer}/subscriptions", subscriptions, "partner_center"),
    route("POST", "/v1/customers/{customer}/applicationconsents", grant_consent, "partner_center"),
    route("DELETE", "/v1/customers/{customer}/applicationconsents/{app}", remove_consent, "partner_center"),
]
