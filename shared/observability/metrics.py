"""Prometheus metrics read at scrape time from the truth: Postgres (requests, steps), Redis (queues, counters)."""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from shared.db.models import ProvisioningRequest, Purchase, RequestStep
from shared.db.types import utcnow
from shared.db.uow import UnitOfWork
from shared.observability import counters, queues
from shared.settings import get_settings

log = logging.getLogger(__name__)
# Tenant keys whose learned rate one scrape reports at most (bounds the scrape's Redis SCAN).
MAX_RATE_KEYS = 5000
# `<api>:<12 hex>` (shared.microsoft.limiter.key_label); older releases counted raw tenant ids: left out.
_HASHED = re.compile(r"^[a-z_]+:[0-9a-f]{12}$")
STEP_WINDOW = timedelta(hours=1)


class ProvisionerCollector(Collector):
    """Cheap aggregate queries; a scrape never writes and never fails the endpoint."""

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._from_database()
        except Exception:
            log.warning("metrics: database collection failed", exc_info=True)
        try:
            yield from self._from_redis()
        except Exception:
            log.warning("metrics: broker collection failed", exc_info=True)

    def _from_database(self) -> Iterator[Metric]:
        now = utcnow()
        with UnitOfWork() as uow:
            s = uow.session
            by_state = GaugeMetricFamily("provisioner_requests", "Requests by kind and state",
                                         labels=["kind", "state"])
            for kind, state, n in s.execute(select(ProvisioningRequest.kind, ProvisioningRequest.state, func.count())
                                            .group_by(ProvisioningRequest.kind, ProvisioningRequest.state)):
                by_state.add_metric([kind, state], n)
            yield by_state

            waiting = s.execute(select(func.count(), func.min(ProvisioningRequest.updated_at))
                                .where(ProvisioningRequest.state == "waiting")).one()
            yield GaugeMetricFamily("provisioner_waiting_requests", "Requests waiting on a durable timer",
                                    value=waiting[0])
            oldest = (now - waiting[1]).total_seconds() if waiting[1] else 0.0
            yield GaugeMetricFamily("provisioner_oldest_waiting_seconds", "Age of the oldest waiting request",
                                    value=oldest)

            steps = GaugeMetricFamily("provisioner_step_duration_ms_avg",
                                      "Mean step duration over the last hour", labels=["step"])
            count = CounterMetricFamily("provisioner_step_runs", "Finished steps over the last hour",
                                        labels=["step", "state"])
            rows = s.execute(select(RequestStep.name, RequestStep.state, func.count(),
                                    func.avg(RequestStep.duration_ms))
                             .where(RequestStep.finished_at >= now - STEP_WINDOW)
                             .group_by(RequestStep.name, RequestStep.state))
            for name, state, n, avg in rows:
                count.add_metric([name, state], n)
                if state == "succeeded" and avg is not None:
                    steps.add_metric([name], float(avg))
            yield steps
            yield count

            bought = CounterMetricFamily("provisioner_seats_bought", "Seat units Partner Center confirmed buying",
                                         labels=["sku"])
            for sku, units in s.execute(select(Purchase.sku_part_number, func.sum(Purchase.units))
                                        .where(Purchase.state.in_(("confirmed", "visible")))
                                        .group_by(Purchase.sku_part_number)):
                bought.add_metric([sku], float(units or 0))
            yield bought

    def _from_redis(self) -> Iterator[Metric]:
        yield from throttling_metrics()
        retries = CounterMetricFamily("provisioner_step_retries", "Step retries by step", labels=["step"])
        for step, n in counters.read(counters.RETRIES_KEY).items():
            retries.add_metric([step], n)
        yield retries
        depths = queues.read()
        if depths:
            depth = GaugeMetricFamily("provisioner_queue_depth", "Messages waiting per queue", labels=["queue"])
            for q, n in depths.items():
                depth.add_metric([q], n)
            yield depth


def throttling_metrics() -> Iterator[Metric]:
    """Per tenant key (``api`` and a hash of the tenant or partner id): 429s, seconds closed by
    Retry-After windows, and the allowed rate learned so far (the configured ceiling until a 429)."""
    from shared.microsoft.limiter import key_label
    from shared.microsoft.limiter_redis import RedisLimiter
    from shared.redis import get_redis

    throttled = CounterMetricFamily("provisioner_throttled_calls", "Microsoft 429 answers by tenant key",
                                    labels=["api", "tenant"])
    for label, n in counters.read(counters.THROTTLED_KEY).items():
        if _HASHED.match(label):
            throttled.add_metric(label.split(":", 1), n)
    yield throttled
    blocked = CounterMetricFamily("provisioner_throttled_seconds", "Seconds tenant keys were closed by Retry-After",
                                  labels=["api", "tenant"])
    for label, seconds in counters.read(counters.BLOCKED_KEY).items():
        if _HASHED.match(label):
            blocked.add_metric(label.split(":", 1), seconds)
    yield blocked
    settings = get_settings()
    ceilings = {"graph": settings.graph_rate_per_tenant, "exchange": settings.exchange_rate_per_tenant,
                "partner_center": settings.partner_center_rate}
    if not settings.redis_url:
        return  # the in-process limiter lives in the worker, not here
    rate = GaugeMetricFamily("provisioner_allowed_rate", "Calls/s a tenant key may make now (learned from 429s)",
                             labels=["api", "tenant"])
    for n, (key, learned) in enumerate(RedisLimiter(get_redis()).allowed_rates()):
        if n >= MAX_RATE_KEYS:
            break
        api = key.split(":", 1)[0]
        ceiling = ceilings.get(api)
        if ceiling is not None:
            rate.add_metric(key_label(key).split(":", 1), min(ceiling, learned) if learned is not None else ceiling)
    yield rate
