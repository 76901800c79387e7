"""The one typed settings object, read from the environment once per process."""
from __future__ import annotations

import sys
from functools import lru_cache
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_DB_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")
_BROKER_SCHEMES = ("redis", "rediss", "sqla+sqlite", "sqla+postgresql", "sqla+postgresql+psycopg",
                   "memory", "amqp", "pyamqp")


class ConfigError(Exception):
    """A setting is wrong or missing: one line per setting, naming its variable. The entry points print it
    and exit 2 (`provisioner`'s main(), `settings_or_exit()`)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    environment: Literal["dev", "test", "production"] = "production"
    database_url: str = "sqlite:///var/provisioner.db"
    broker_url: str = "sqla+sqlite:///var/broker.db"
    # Unset: limiter and throttling state stay inside the process (embedded default only).
    redis_url: str | None = None
    secret_key: str | None = Field(default=None, min_length=16)
    # Key rotation: comma separated, newest first; the newest encrypts, every one decrypts. Wins over SECRET_KEY.
    secret_keys: str | None = None

    ms_login_url: str = "https://login.microsoftonline.com"
    ms_graph_url: str = "https://graph.microsoft.com"
    ms_partner_center_url: str = "https://api.partnercenter.microsoft.com"
    ms_exchange_url: str = "https://outlook.office365.com"
    ms_ca_bundle: str | None = None
    # Token scopes stay Microsoft's resource ids whatever the roots are; override for sovereign clouds.
    ms_graph_scope: str = "https://graph.microsoft.com/.default"
    ms_partner_center_scope: str = "https://api.partnercenter.microsoft.com/.default"
    ms_exchange_scope: str = "https://outlook.office365.com/.default"
    ms_timeout_s: float = 30.0
    ms_connect_timeout_s: float = 5.0

    # Throttling etiquette, per tenant (Graph, Exchange) and per partner (Partner Center). The rates are
    # ceilings: the allowed rate is learned from Microsoft's 429s (shared/microsoft/adaptive.py).
    graph_rate_per_tenant: float = Field(default=300.0, gt=0)
    graph_burst_per_tenant: float = Field(default=60.0, gt=0)
    partner_center_rate: float = Field(default=50.0, gt=0)
    partner_center_burst: float = Field(default=10.0, ge=1)
    exchange_rate_per_tenant: float = Field(default=50.0, gt=0)
    exchange_burst_per_tenant: float = Field(default=10.0, ge=1)
    # Calls in flight per tenant (per partner for Partner Center) across all processes, and how many of
    # them may be writes: a 429 can only catch the few calls already on the wire.
    ms_concurrency_per_tenant: int = Field(default=4, ge=1, le=64)
    ms_write_concurrency_per_tenant: int = Field(default=2, ge=1, le=64)
    retry_max_attempts: int = Field(default=6, ge=1)
    retry_max_wait_s: float = Field(default=30.0, gt=0)
    # No single wait inside a call is longer than this (Retry-After, backoff, a busy tenant): a longer
    # one ends the attempt with Throttled/Transient(retry_after) and the pipeline reschedules the step.
    retry_inline_wait_s: float = Field(default=2.0, ge=0)
    # All the waiting inside one call stays within this.
    retry_budget_s: float = Field(default=10.0, gt=0)

    # Mailbox readiness: a durable timer on a growing interval.
    mailbox_first_delay_s: float = Field(default=5.0, gt=0)
    mailbox_backoff_factor: float = Field(default=2.0, ge=1)
    mailbox_max_delay_s: float = Field(default=900.0, gt=0)
    mailbox_deadline_s: float = Field(default=86400.0, gt=0)

    # Durable requests.
    lease_seconds: int = Field(default=300, ge=5)
    reconcile_interval_s: float = Field(default=5.0, gt=0)
    # A message whose task crashed its worker this many times is failed, not redelivered again.
    max_deliveries: int = Field(default=3, ge=1)
    # Countdowns above this become durable timers (Redis redelivers after its visibility timeout).
    max_countdown_s: float = Field(default=120.0, gt=0)
    sync_dispatch_interval_s: float = Field(default=60.0, gt=0)
    # A sync claim not renewed for this long belongs to a dead process and may be taken over.
    sync_stale_claim_s: float = Field(default=900.0, gt=0)
    # Users reconciled per statement; Graph delta pages are asked for at most sync_page_size users.
    sync_batch_size: int = Field(default=1000, ge=1, le=5000)
    sync_page_size: int = Field(default=999, ge=1, le=999)
    # A queued or running request nobody claimed for this long lost its message (or waits behind a backlog):
    # the reconciler publishes its chain again, with a new dispatch; again without a claim, twice as late.
    redrive_after_s: float = Field(default=300.0, gt=0)
    reconcile_batch: int = Field(default=500, ge=1)
    # Consecutive short retries (throttling, transient errors) of one step before the request fails.
    max_step_retries: int = Field(default=30, ge=1)
    # After a user create whose answer was lost, look for the user this long before creating again.
    create_confirm_s: float = Field(default=120.0, gt=0)
    # A new tenant's tokens may be refused for a few minutes after Partner Center creates it.
    tenant_ready_poll_s: float = Field(default=30.0, gt=0)
    tenant_ready_deadline_s: float = Field(default=1800.0, gt=0)
    # After the partner app's consent is granted on connect, tokens for the tenant are tried on a growing
    # interval (consent propagates over minutes) until this deadline, then the request is blocked.
    consent_poll_first_s: float = Field(default=10.0, gt=0)
    consent_poll_max_s: float = Field(default=120.0, gt=0)
    consent_deadline_s: float = Field(default=900.0, gt=0)
    # Requests blocked on access (consent, GDAP roles, the reseller's credential): beat looks every
    # access_resume_interval_s at up to access_resume_batch of them, each at most every access_recheck_s.
    access_resume_interval_s: float = Field(default=60.0, gt=0)
    access_resume_batch: int = Field(default=50, ge=1)
    access_recheck_s: float = Field(default=300.0, gt=0)
    # Seat purchases (direct resellers): Graph is asked every purchase_poll_s whether bought seats show;
    # requests needing the same SKU within purchase_batch_s share one purchase; beat looks every
    # purchase_resume_interval_s for purchase_limit blocks the policy or a new day now allows.
    purchase_poll_s: float = Field(default=30.0, gt=0)
    purchase_batch_s: float = Field(default=60.0, gt=0)
    purchase_resume_interval_s: float = Field(default=300.0, gt=0)

    # API.
    api_max_body_bytes: int = Field(default=2_000_000, gt=0)
    # Threads per API process for the routes that block (database, live Microsoft calls).
    api_threads: int = Field(default=4, ge=1, le=256)
    bulk_max_users: int = Field(default=1000, gt=0)
    # Fair use: token buckets in Redis (REDIS_URL) per API key and per customer; tokens/s and burst, 0 = off.
    api_rate_per_key: float = Field(default=50.0, ge=0)
    api_burst_per_key: int = Field(default=200, ge=0)
    api_rate_per_customer: float = Field(default=100.0, ge=0)
    api_burst_per_customer: int = Field(default=400, ge=0)
    # Live reads costing Microsoft calls (agreement, tenant search, licences): cached this long per customer
    # (per API process), at most this many at once per customer (0 = no bound).
    live_read_cache_s: float = Field(default=5.0, ge=0)
    live_reads_per_customer: int = Field(default=4, ge=0)

    # Bearer token GET /metrics requires. Unset: open in dev and test; closed in production (401 naming the
    # setting), where the API still starts, so a deployment missing it loses its metrics, not its API.
    metrics_token: str | None = Field(default=None, min_length=16)
    # Flower basic auth "user:password"; unset in dev means no auth on 127.0.0.1.
    flower_basic_auth: str | None = None

    # Notifications.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_from: str = "provisioner@localhost"
    notify_email_to: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    webhook_timeout_s: float = Field(default=10.0, gt=0)
    # Outbox sending: a message failing this many times is dead; retries back off exponentially.
    outbox_max_attempts: int = Field(default=10, ge=1)
    outbox_retry_base_s: float = Field(default=30.0, gt=0)
    outbox_retry_max_s: float = Field(default=3600.0, gt=0)
    # A claimed message whose sender died is due again after this long.
    outbox_claim_s: float = Field(default=300.0, gt=0)
    log_json: bool = False
    log_level: str = "INFO"

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, v: str) -> str:
        scheme = v.split("://", 1)[0] if "://" in v else ""
        if scheme not in _DB_SCHEMES:
            raise ValueError(f"must start with one of {', '.join(s + '://' for s in _DB_SCHEMES)}")
        if scheme == "postgresql":  # psycopg 3 is the driver we ship
            v = "postgresql+psycopg://" + v.split("://", 1)[1]
        return v

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, v: str) -> str:
        scheme = v.split("://", 1)[0] if "://" in v else ""
        if scheme not in _BROKER_SCHEMES:
            raise ValueError(f"must start with one of {', '.join(s + '://' for s in _BROKER_SCHEMES)}")
        return v

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, v: str | None) -> str | None:
        if v and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return v or None

    @field_validator("ms_login_url", "ms_graph_url", "ms_partner_center_url", "ms_exchange_url")
    @classmethod
    def _https_root(cls, v: str) -> str:
        if not v.startswith("https://"):
            raise ValueError("must be an https:// root (msal refuses anything else)")
        return v.rstrip("/")

    @field_validator("secret_keys")
    @classmethod
    def _key_ring(cls, v: str | None) -> str | None:
        if v is not None and any(len(k.strip()) < 16 for k in v.split(",")):
            raise ValueError("every key must have at least 16 characters (comma separated, newest first)")
        return v

    @model_validator(mode="after")
    def _secret_required(self) -> Settings:
        if self.environment == "production" and not self.secret_key_ring and not _secret_optional:
            raise ValueError("SECRET_KEY (or SECRET_KEYS) is required outside dev (it encrypts secrets at rest)")
        return self

    @model_validator(mode="after")
    def _smtp_login_encrypted(self) -> Settings:
        # A username means a password goes over the wire: never in clear text.
        if self.smtp_host and self.smtp_username and not (self.smtp_starttls or self.smtp_ssl):
            raise ValueError("SMTP_USERNAME needs SMTP_STARTTLS=true or SMTP_SSL=true (the login must not "
                             "cross the network in clear text)")
        return self

    @property
    def secret_key_ring(self) -> list[str]:
        """Keys for secrets at rest, newest (the one that encrypts) first."""
        if self.secret_keys:
            return [k.strip() for k in self.secret_keys.split(",") if k.strip()]
        return [self.secret_key] if self.secret_key else []

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _explain(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p]
        name = loc[0].upper() if loc else ""
        msg = err.get("msg", "invalid").removeprefix("Value error, ")
        if not name and "SECRET_KEY" in msg:
            name = "SECRET_KEY"
        if not name and "SMTP_USERNAME" in msg:
            name = "SMTP_USERNAME"
        lines.append(f"configuration error: {name or 'settings'}: {msg}")
    return "\n".join(lines)


def load_settings() -> Settings:
    """Build and validate settings now; a bad value exits with a line naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(_explain(exc)) from None


_secret_optional = False


def secret_key_not_needed() -> None:
    """Declared by a process that never reads or writes a secret at rest (Flower): SECRET_KEY is not required."""
    global _secret_optional
    _secret_optional = True
    get_settings.cache_clear()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def settings_or_exit() -> Settings:
    """The settings, for the entry points a server loads (uvicorn's app factory, `celery -A worker.app:app`):
    a bad configuration prints its line and exits 2, as `provisioner` does, instead of the server's traceback."""
    try:
        return get_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def metrics_closed(settings: Settings) -> bool:
    """/metrics tells every tenant's request counts and error rates to whoever asks: in production it is
    served only behind METRICS_TOKEN, and without one it is closed. Workers never serve it."""
    return settings.environment == "production" and not settings.metrics_token


def api_settings_warnings(settings: Settings) -> list[str]:
    """What the API process says at start about settings it works without."""
    if metrics_closed(settings):
        return ["METRICS_TOKEN is not set: /metrics answers 401 until it is (required for metrics in production)"]
    return []


def api_settings_or_exit() -> Settings:
    """settings_or_exit for the API process, its warnings on stderr (one line each)."""
    settings = settings_or_exit()
    for line in api_settings_warnings(settings):
        print(f"warning: {line}", file=sys.stderr)
    return settings


def reset_settings() -> None:
    """Forget the cached settings (tests and `provisioner dev` change the environment)."""
    get_settings.cache_clear()
