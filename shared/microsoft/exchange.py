"""Exchange Online admin API (InvokeCommand) for one tenant: read a mailbox, add addresses."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from shared.microsoft.caller import Caller
from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.errors import MailboxNotReady

# Exchange routes app-only admin calls by this system mailbox of the tenant.
_ANCHOR = "APP:SystemMailbox{{bb558c35-97f1-4cb9-8ff7-d53741dc928c}}@{tenant}"


def smtp_address(address: str) -> str:
    """A secondary address as Exchange wants it: lower-case "smtp:" prefix (upper case means primary)."""
    bare = address.split(":", 1)[1] if address.lower().startswith("smtp:") else address
    return f"smtp:{bare}"


class ExchangeClient:
    """Exchange admin calls in the customer tenant `tenant_id`, throttled per tenant in every process."""

    def __init__(self, caller: Caller, credential: PartnerCredential, tenant_id: str) -> None:
        self._caller = caller
        self._credential = credential
        self.tenant_id = tenant_id
        self._url = f"{caller.apis['exchange'].base_url}/{quote(tenant_id, safe='')}/InvokeCommand"

    def _invoke(self, cmdlet: str, parameters: dict[str, Any]) -> httpx.Response:
        return self._caller.call(
            "exchange", credential=self._credential, token_tenant=self.tenant_id,
            limit_key=f"exchange:{self.tenant_id}", method="POST", url=self._url,
            json={"CmdletInput": {"CmdletName": cmdlet, "Parameters": parameters}},
            headers={"X-AnchorMailbox": _ANCHOR.format(tenant=self.tenant_id)},
            # Get-Mailbox only reads; Set-Mailbox with "Add" leaves an address already there as it is.
            idempotent=True,
            # Every cmdlet is a POST: only the Get- ones are reads, for the tenant's write slots.
            write=not cmdlet.startswith("Get-"),
        )

    def get_mailbox(self, upn: str) -> dict[str, Any]:
        """The mailbox; MailboxNotReady until Exchange Online has created it."""
        mailboxes = self._invoke("Get-Mailbox", {"Identity": upn}).json().get("value") or []
        if not mailboxes:
            raise MailboxNotReady(f"Exchange has no mailbox for {upn} yet")
        return dict(mailboxes[0])

    def add_mailbox_addresses(self, upn: str, addresses: Sequence[str]) -> None:
        """Add secondary SMTP addresses (aliases); MailboxNotReady until the mailbox exists."""
        if not addresses:
            return
        self._invoke("Set-Mailbox", {
            "Identity": upn,
            "EmailAddresses": {"@odata.type": "#Exchange.GenericHashTable",
                               "Add": [smtp_address(a) for a in addresses]},
        })
