"""Microsoft access: the only code that speaks HTTP to Partner Center, Graph, Exchange and sign-in."""
from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.errors import (
    AgreementAlreadyExists,
    AuthFailed,
    BadRequest,
    Conflict,
    DeltaTokenExpired,
    Forbidden,
    InvalidUsageLocation,
    MailboxNotReady,
    MicrosoftError,
    NoFreeLicences,
    NotFound,
    Throttled,
    Transient,
    UnverifiedDomain,
)
from shared.microsoft.factory import MicrosoftClients, get_microsoft, reset_microsoft

__all__ = [
    "AgreementAlreadyExists",
    "AuthFailed",
    "BadRequest",
    "Conflict",
    "DeltaTokenExpired",
    "Forbidden",
    "InvalidUsageLocation",
    "MailboxNotReady",
    "MicrosoftClients",
    "MicrosoftError",
    "NoFreeLicences",
    "NotFound",
    "PartnerCredential",
    "Throttled",
    "Transient",
    "UnverifiedDomain",
    "get_microsoft",
    "reset_microsoft",
]
