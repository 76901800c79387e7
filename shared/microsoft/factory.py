"""The process's Microsoft access: one pooled httpx.Client, token provider and limiter, built lazily."""
from __future__ import annotations

import os
import ssl
import threading
import time
from collections.abc import Callable

import httpx

from shared.microsoft.caller import Caller
from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.exchange import ExchangeClient
from shared.microsoft.graph import GraphClient
from shared.microsoft.limiter import Limiter, make_limiter
from shared.microsoft.partner_center import PartnerCenterClient
from shared.microsoft.tokens import TokenProvider
from shared.settings import Settings, get_settings

# A worker talks to a handful of hosts; these bound sockets per process.
MAX_CONNECTIONS = 100
MAX_KEEPALIVE_CONNECTIONS = 20
KEEPALIVE_EXPIRY_S = 30.0
USER_AGENT = "m365-provisioner"


def build_http_client(settings: Settings) -> httpx.Client:
    """The shared client: pooled keep-alive connections, explicit timeouts, TLS trust from MS_CA_BUNDLE."""
    verify: ssl.SSLContext | bool = (ssl.create_default_context(cafile=settings.ms_ca_bundle)
                                     if settings.ms_ca_bundle else True)
    return httpx.Client(
        verify=verify,
        timeout=httpx.Timeout(settings.ms_timeout_s, connect=settings.ms_connect_timeout_s),
        limits=httpx.Limits(max_connections=MAX_CONNECTIONS,
                            max_keepalive_connections=MAX_KEEPALIVE_CONNECTIONS,
                            keepalive_expiry=KEEPALIVE_EXPIRY_S),
        # A redirect would carry the bearer token to wherever it points.
        follow_redirects=False,
        headers={"User-Agent": USER_AGENT},
    )


class MicrosoftClients:
    """Owns the shared HTTP client, tokens and limiter; hands out cheap per-partner/tenant clients."""

    def __init__(self, settings: Settings, http_client: httpx.Client | None = None,
                 limiter: Limiter | None = None, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._owns_http = http_client is None
        self.http = http_client if http_client is not None else build_http_client(settings)
        self.tokens = TokenProvider(settings, self.http, clock=clock)
        self.limiter = limiter if limiter is not None else make_limiter(settings)
        self.caller = Caller(settings, self.http, self.tokens, self.limiter, sleep=sleep, clock=clock)

    def partner_center(self, credential: PartnerCredential,
                       correlation_id: str | None = None) -> PartnerCenterClient:
        return PartnerCenterClient(self.caller, credential, correlation_id)

    def graph(self, credential: PartnerCredential, tenant_id: str) -> GraphClient:
        return GraphClient(self.caller, credential, tenant_id)

    def exchange(self, credential: PartnerCredential, tenant_id: str) -> ExchangeClient:
        return ExchangeClient(self.caller, credential, tenant_id)

    def close(self) -> None:
        if self._owns_http:
            self.http.close()


_lock = threading.Lock()
_clients: MicrosoftClients | None = None


def get_microsoft() -> MicrosoftClients:
    """The process's MicrosoftClients, built on first use from get_settings()."""
    global _clients
    with _lock:
        if _clients is None:
            _clients = MicrosoftClients(get_settings())
        return _clients


def reset_microsoft(*, close: bool = True) -> None:
    """Forget the process's clients (tests, settings changes); the next get_microsoft() builds anew."""
    global _clients
    with _lock:
        clients, _clients = _clients, None
    if clients is not None and close:
        clients.close()


def _after_fork_in_child() -> None:
    # The child must not share pooled sockets with its parent, nor close them under it.
    global _clients, _lock
    _lock = threading.Lock()
    _clients = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
