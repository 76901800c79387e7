"""Live Microsoft calls made while an API caller waits: short retry budget, errors mapped for the caller."""
from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from shared.db.models import ServiceProvider
from shared.errors import MicrosoftUnavailable, StateConflict
from shared.microsoft import errors as ms
from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.factory import MicrosoftClients
from shared.microsoft.graph import GraphClient
from shared.microsoft.partner_center import PartnerCenterClient
from shared.security import decrypt
from shared.settings import get_settings
from shared.tenants import denials

# A caller waits for these calls, so throttling answers 503 + Retry-After quickly instead of sleeping
# out the pipeline's minute-long budget.
LIVE_RETRY_BUDGET_S = 8.0
LIVE_MAX_ATTEMPTS = 3

_lock = threading.Lock()
_clients: MicrosoftClients | None = None
_pid: int | None = None


def clients() -> MicrosoftClients:
    """This process's clients for live calls (built on first use, rebuilt after fork)."""
    global _clients, _pid
    with _lock:
        if _clients is None or _pid != os.getpid():
            settings = get_settings().model_copy(update={"retry_budget_s": LIVE_RETRY_BUDGET_S,
                                                         "retry_max_attempts": LIVE_MAX_ATTEMPTS})
            _clients, _pid = MicrosoftClients(settings), os.getpid()
        return _clients


def use_clients(replacement: MicrosoftClients | None) -> None:
    """Swap the clients (tests, settings changes); None builds fresh ones on next use."""
    global _clients, _pid
    with _lock:
        old, _clients, _pid = _clients, replacement, (os.getpid() if replacement else None)
    if old is not None and old is not replacement:
        old.close()


def credential(provider: ServiceProvider) -> PartnerCredential:
    refresh = decrypt(provider.pc_refresh_token_enc) if provider.pc_refresh_token_enc else None
    return PartnerCredential(provider.pc_tenant_id, provider.pc_client_id,
                             decrypt(provider.pc_client_secret_enc), refresh, reseller=provider.name)


def partner_center(provider: ServiceProvider) -> PartnerCenterClient:
    return clients().partner_center(credential(provider))


def graph(provider: ServiceProvider, tenant_id: str) -> GraphClient:
    return clients().graph(credential(provider), tenant_id)


@contextmanager
def microsoft_call(what: str) -> Iterator[None]:
    """Map Microsoft's typed errors to what the API caller should see."""
    try:
        yield
    except (ms.Throttled, ms.Transient) as exc:
        retry_after = getattr(exc, "retry_after", None)
        raise MicrosoftUnavailable(f"{what}: Microsoft is busy or unavailable ({exc.message})",
                                   retry_after=retry_after or 5.0, status=503) from None
    except ms.ConsentMissing as exc:
        raise StateConflict("consent_missing", f"{what}: Microsoft issues the reseller's app no token for the "
                                               f"tenant ({exc.code}). {denials.FIXES[denials.CONSENT_MISSING]}") \
            from None
    except ms.CredentialsRejected as exc:
        raise MicrosoftUnavailable(f"{what}: Microsoft refuses the reseller's sign-in ({exc.code}). "
                                   f"{denials.FIXES[denials.PARTNER_CREDENTIALS_INVALID]}") from None
    except ms.AuthFailed as exc:
        raise MicrosoftUnavailable(f"{what}: sign-in with the reseller's Partner Center app failed "
                                   f"({exc.message})") from None
    except ms.Forbidden as exc:
        raise StateConflict("gdap_missing", f"{what}: the partner lacks delegated (GDAP) access to "
                                            f"the tenant ({exc.message})") from None
    except ms.NotFound as exc:
        raise StateConflict("tenant_not_connected", f"{what}: Microsoft does not know this tenant for the "
                                                    f"reseller ({exc.message})") from None
    except ms.MicrosoftError as exc:
        raise MicrosoftUnavailable(f"{what}: Microsoft refused the call ({exc.message})") from None
