"""CPV consent on connect: grant the partner app's consent in the tenant, then wait until it takes effect.

Partner Center's application consent (`POST /v1/customers/{id}/applicationconsents`) gives the partner's app
a service principal with these grants in the customer tenant; a second one answers 409, which is success.
Tokens for the tenant keep failing with AADSTS700016 for a while after (Microsoft does not say how long;
../shared/MICROSOFT.md plans for about 15 minutes): the step waits as a durable timer on a growing interval,
and past `consent_deadline_s` the request is blocked `consent_pending` (the beat resumes it once sign-in works).
Which permissions the engine asks for is its own choice (unconfirmed against Microsoft's least-privilege
lists): what its steps call, in Graph and in Exchange's admin API.
"""
from __future__ import annotations

from shared.backoff import backoff
from shared.db.models import TenantConnection
from shared.microsoft.credentials import PartnerCredential
from shared.microsoft.errors import ConsentMissing, MicrosoftError
from shared.pipeline.context import StepContext
from shared.pipeline.outcomes import Blocked, Wait
from shared.pipeline.ports import Graph
from shared.tenants import denials

GRAPH_APP = "00000003-0000-0000-c000-000000000000"
EXCHANGE_APP = "00000002-0000-0ff1-ce00-000000000000"
GRANTS = (
    (GRAPH_APP, "User.ReadWrite.All,Directory.Read.All,Domain.Read.All,Organization.Read.All,MailboxSettings.Read"),
    (EXCHANGE_APP, "Exchange.ManageAsApp"),
)


def grant(ctx: StepContext, cred: PartnerCredential, conn: TenantConnection) -> None:
    """Ask Partner Center for the consent, once per wait: a retry or a second connect sees 409 and goes on."""
    if ctx.context.get("consent_asked_at"):
        return
    ctx.microsoft.partner_center(cred).grant_application_consent(conn.tenant_id, cred.client_id, GRANTS)
    conn.consented_at = conn.consented_at or ctx.now
    ctx.remember(consent_asked_at=ctx.now.isoformat(), consent_probes=0)


def issued(graph: Graph) -> bool:
    """Whether Microsoft issues the app a token for the client's tenant: any answer but a consent refusal
    says yes (a 403 is about GDAP roles, not consent); other failures raise."""
    try:
        graph.domains()
    except ConsentMissing:
        return False
    except MicrosoftError as exc:
        if exc.status == 403:
            return True
        raise
    return True


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def not_yet(ctx: StepContext, cred: PartnerCredential, exc: ConsentMissing, *, deadline_s: float) -> Wait | Blocked:
    """Sign-in still refused since the consent was asked: look again later, or block past the deadline."""
    ctx.note_error(exc)
    waited = ctx.seconds_since(ctx.context.get("consent_asked_at"))
    if waited >= deadline_s:
        # The next run (a resume, a retry) asks again and waits afresh.
        ctx.remember(consent_asked_at=None, consent_probes=0)
        return denials.blocked(denials.CONSENT_PENDING,
                               f"{cred.app}: tenant {exc.tenant_id} still refuses the app a token "
                               f"({exc.code}) {_minutes(waited)} after its consent was granted")
    probes = int(ctx.context.get("consent_probes") or 0) + 1
    ctx.remember(consent_probes=probes)
    pause = backoff(probes, base=ctx.settings.consent_poll_first_s, cap=ctx.settings.consent_poll_max_s)
    return Wait(ctx.after(min(pause, max(1.0, deadline_s - waited))),
                f"waiting for the app's consent in tenant {exc.tenant_id} to take effect ({exc.code})")

