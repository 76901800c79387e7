"""An agreement's primary contact as the engine stores and shows it (Partner Center writes camelCase)."""
from __future__ import annotations

from typing import Any

# Partner Center's field -> ours.
_FIELDS = {"firstName": "first_name", "lastName": "last_name", "email": "email", "phoneNumber": "phone"}


def contact_view(contact: dict[str, Any] | None) -> dict[str, Any] | None:
    """Partner Center's `primaryContact`, or a stored contact in either shape, as ours; None stays None.

    Rows written before the step stored our shape may hold Partner Center's: both read the same."""
    if contact is None:
        return None
    return {ours: contact.get(ours, contact.get(theirs)) for theirs, ours in _FIELDS.items()}
