"""Exchange Online admin API `InvokeCommand`: Get-Mailbox and Set-Mailbox (EmailAddresses Add/Remove)."""
from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from ..errors import ApiError
from ..http import Request, Response, json_response, route
from ..tenant import Tenant
from ..users import User
from . import guard

if TYPE_CHECKING:
    from ..app import Emulator

_NOT_FOUND = "Microsoft.Exchange.Configuration.Tasks.ManagementObjectNotFoundException"
_INVALID = "Microsoft.Exchange.Configuration.Tasks.TaskArgumentException"
_IN_USE = "Microsoft.Exchange.Management.Tasks.ProxyAddressExistsException"


def _context(code: str) -> str:
    return f"Ex{uuid.uuid4().hex[:6].upper()}|{code}|"


def _not_found(identity: str) -> ApiError:
    return ApiError(404, _NOT_FOUND, _context(_NOT_FOUND) + f"The operation couldn't be performed because object "
                    f"'{identity}' couldn't be found on 'AM0PR01A001DC01.EURPR01A001.PROD.OUTLOOK.COM'.")


def _bad(kind: str, message: str) -> ApiError:
    return ApiError(400, kind, _context(kind) + message)


def _find_mailbox(tenant: Tenant, identity: str) -> User:
    """Identity may be the UPN, the object id, the alias, or any SMTP address; only ready mailboxes exist."""
    key = identity.lower()
    user = tenant.find_user(identity) or next(
        (u for u in tenant.users.values()
         if str(u.data.get("mailNickname") or "").lower() == key
         or any(a.lower() == f"smtp:{key}" for a in u.data["proxyAddresses"])), None)
    if user is None or user.mailbox != "ready":
        raise _not_found(identity)
    return user


def _mailbox(tenant: Tenant, user: User) -> dict[str, Any]:
    primary = next((a[5:] for a in user.data["proxyAddresses"] if a.startswith("SMTP:")), user.upn)
    return {
        "ExternalDirectoryObjectId": user.id, "UserPrincipalName": user.upn,
        "Alias": user.data.get("mailNickname"), "DisplayName": user.data.get("displayName"),
        "Name": user.data.get("mailNickname"), "Identity": user.data.get("mailNickname"),
        "Guid": str(uuid.uuid5(uuid.NAMESPACE_OID, user.id)), "PrimarySmtpAddress": primary,
        "WindowsEmailAddress": primary, "EmailAddresses": list(user.data["proxyAddresses"]),
        "RecipientType": "UserMailbox", "RecipientTypeDetails": "UserMailbox", "IsMailboxEnabled": True,
        "OrganizationId": tenant.initial_domain,
    }


def _set_addresses(tenant: Tenant, user: User, change: Any) -> None:
    if not isinstance(change, dict):
        raise _bad(_INVALID, "EmailAddresses must be a hashtable with Add and/or Remove.")
    addresses: list[str] = list(user.data["proxyAddresses"])
    for raw in change.get("Remove") or []:
        address = _normalise(str(raw))
        addresses = [a for a in addresses if a.lower() != address.lower() or a.startswith("SMTP:")]
    for raw in change.get("Add") or []:
        address = _normalise(str(raw))
        domain = address.rpartition("@")[2].lower()
        if domain not in tenant.domains or not tenant.domains[domain].verified:
            raise _bad(_INVALID, f"The domain '{domain}' isn't an accepted domain for your organization.")
        owner = next((u for u in tenant.users.values() if u is not user
                      and any(a.lower() == address.lower() for a in u.data["proxyAddresses"])), None)
        if owner is not None:
            raise _bad(_IN_USE, f"The proxy address \"{address}\" is already being used by the proxy addresses "
                       f"or LegacyExchangeDN of \"{owner.data.get('mailNickname')}\". Please choose another "
                       "proxy address.")
        if any(a.lower() == address.lower() for a in addresses):
            continue  # already there: adding again changes nothing
        if address.startswith("SMTP:"):
            addresses = ["smtp:" + a[5:] if a.startswith("SMTP:") else a for a in addresses]
            addresses.insert(0, address)
        else:
            addresses.append(address)
    if addresses != user.data["proxyAddresses"]:
        user.data["proxyAddresses"] = addresses
        user.data["mail"] = next((a[5:] for a in addresses if a.startswith("SMTP:")), user.data.get("mail"))
        tenant.touch(user)


def _normalise(address: str) -> str:
    """`smtp:` is a secondary address, `SMTP:` the primary; no prefix means a secondary SMTP address."""
    prefix, sep, rest = address.partition(":")
    if sep and prefix.lower() == "smtp":
        return ("SMTP:" if prefix == "SMTP" else "smtp:") + rest
    return f"smtp:{address}"


async def invoke_command(em: Emulator, req: Request) -> Response:
    tenant = guard.exchange_tenant(em, req, req.params["tenant"])
    cmdlet_input = req.json_object().get("CmdletInput") or {}
    name = str(cmdlet_input.get("CmdletName") or "")
    params = cmdlet_input.get("Parameters") or {}
    context = f"{req.root}/adminapi/beta/{tenant.tenant_id}/$metadata#Collection(Exchange.GenericHashTable)"
    if name == "Get-Mailbox":
        identity = params.get("Identity")
        if identity:
            rows = [_mailbox(tenant, _find_mailbox(tenant, str(identity)))]
        else:
            rows = [_mailbox(tenant, u) for u in tenant.users.values() if u.mailbox == "ready"]
    elif name == "Set-Mailbox":
        if not params.get("Identity"):
            raise _bad(_INVALID, "Cannot bind argument to parameter 'Identity' because it is null.")
        async with tenant.lock:
            user = _find_mailbox(tenant, str(params["Identity"]))
            if "EmailAddresses" in params:
                _set_addresses(tenant, user, params["EmailAddresses"])
        rows = []
    else:
        raise _bad("System.Management.Automation.CommandNotFoundException",
                   f"The term '{name}' is not recognized as a name of a cmdlet.")
    return json_response({"@odata.context": context, "adminapi.warnings@odata.type": "#Collection(String)",
                          "@adminapi.warnings": [], "value": rows})


ROUTES = [route("POST", "/adminapi/beta/{tenant}/InvokeCommand", invoke_command, "exchange")]
