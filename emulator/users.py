"""A directory user and the rules Entra applies to creating and changing one."""
from __future__ import annotations

import re
import uuid
from typing import Any

from . import catalog
from .errors import bad_request

# Properties Graph v1.0 returns for a user when the caller sends no $select.
DEFAULT_PROPERTIES = ("businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
                      "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id")
REQUIRED_ON_CREATE = ("accountEnabled", "displayName", "mailNickname", "userPrincipalName")
READ_ONLY = frozenset({"id", "assignedLicenses", "assignedPlans", "proxyAddresses", "createdDateTime",
                       "lastPasswordChangeDateTime"})
_NULL_PROPERTIES = ("givenName", "surname", "jobTitle", "mail", "mobilePhone", "officeLocation",
                    "preferredLanguage", "usageLocation")

MSG_DUPLICATE_UPN = "Another object with the same value for property userPrincipalName already exists."
MSG_BAD_DOMAIN = ("The domain portion of the userPrincipalName property is invalid. You must use one of the "
                  "verified domain names in your organization.")
MSG_WEAK_PASSWORD = ("The specified password does not comply with password complexity requirements. "
                     "Please provide a different password.")
_PASSWORD_CLASSES = (re.compile(r"[a-z]"), re.compile(r"[A-Z]"), re.compile(r"[0-9]"), re.compile(r"[^a-zA-Z0-9]"))


class User:
    """Graph properties in `data` (Graph's own names), plus what only the emulator needs to know."""

    __slots__ = ("created_seq", "data", "mailbox", "mailbox_ready_at", "password", "roles", "seq", "visible_at")

    def __init__(self, data: dict[str, Any], *, seq: int, visible_at: float, password: str | None) -> None:
        self.data = data
        self.seq = seq
        self.created_seq = seq
        self.visible_at = visible_at
        self.password = password
        self.mailbox = "none"
        self.mailbox_ready_at = 0.0
        self.roles: list[str] = []  # template ids of the directory roles the user is a member of

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def upn(self) -> str:
        return str(self.data["userPrincipalName"])

    def visible(self, now: float) -> bool:
        return self.visible_at <= now

    def select(self, properties: tuple[str, ...] | None) -> dict[str, Any]:
        data = self.data
        return {name: data.get(name) for name in (properties or DEFAULT_PROPERTIES)}

    def control_view(self) -> dict[str, Any]:
        return {**self.data, "mailbox": self.mailbox, "directory_roles": list(self.roles)}


def role_templates(names: Any) -> list[str]:
    """Control API `directory_roles` (display names or template ids) as template ids; ValueError if unknown."""
    if not isinstance(names, list):
        raise ValueError("directory_roles must be a list of role names or template ids")
    found = []
    for name in names:
        template = catalog.role_template(str(name))
        if template is None:
            raise ValueError(f"unknown directory role {name!r}")
        found.append(template)
    return list(dict.fromkeys(found))


def new_user_data(body: dict[str, Any], created: str) -> dict[str, Any]:
    """Graph's shape for a new user: defaults first, then what the caller sent (minus read-only bits)."""
    data: dict[str, Any] = {"id": str(body.get("id") or uuid.uuid4()), "businessPhones": []}
    data.update(dict.fromkeys(_NULL_PROPERTIES))
    data.update({"accountEnabled": True, "assignedLicenses": [], "proxyAddresses": [], "createdDateTime": created,
                 "lastPasswordChangeDateTime": created})
    for key, value in body.items():
        if key.startswith("@odata") or key in ("id", "passwordProfile"):
            continue
        data[key] = value
    data["assignedLicenses"] = [
        {"disabledPlans": list(lic.get("disabledPlans") or []), "skuId": str(lic["skuId"])}
        for lic in data.get("assignedLicenses") or []
    ]
    data["proxyAddresses"] = list(data.get("proxyAddresses") or [])
    return data


def check_create(body: dict[str, Any]) -> str:
    """Validate a Graph create-user body; returns the password."""
    for name in REQUIRED_ON_CREATE:
        if body.get(name) in (None, ""):
            raise bad_request(f"Invalid value specified for property '{name}' of resource 'User'.",
                              detail_code="InvalidValue", target=name)
    profile = body.get("passwordProfile")
    if not isinstance(profile, dict) or not profile.get("password"):
        raise bad_request("Invalid value specified for property 'passwordProfile' of resource 'User'.",
                          detail_code="InvalidValue", target="passwordProfile")
    password = str(profile["password"])
    check_password(password)
    return password


def check_password(password: str) -> None:
    strong = 8 <= len(password) <= 256 and sum(bool(c.search(password)) for c in _PASSWORD_CLASSES) >= 3
    if not strong:
        raise bad_request(MSG_WEAK_PASSWORD, detail_code="InvalidValue", target="passwordProfile")


def check_writable(body: dict[str, Any]) -> None:
    for key in body:
        if key in READ_ONLY:
            raise bad_request(f"Property '{key}' is read-only and cannot be set.", detail_code="ReadOnly",
                              target=key)


def upn_domain(upn: str) -> str:
    _, sep, domain = upn.rpartition("@")
    if not sep or not _ or not domain:
        raise bad_request(MSG_BAD_DOMAIN, detail_code="InvalidValue", target="userPrincipalName")
    return domain.lower()
