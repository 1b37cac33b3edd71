"""Per-process Prometheus counters (SPEC §7), recorded from the places where things happen.

Recording is a no-op until `enable()` runs (only `seqwatch run` with `[metrics] listen` calls it),
so one-shot commands never import prometheus_client. Gauges that describe shared state
(pending, dead letters, tracked, last success) are not here: worker/ops/metrics_http.py reads them
from Redis at scrape time, so every worker reports the same values.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx
    from prometheus_client import CollectorRegistry, Counter, Histogram

# The source whose poll is running in this task: lets the shared HTTP client's response hook
# label provider requests without every source knowing about metrics.
polling_source: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "polling_source", default=None
)


class Counters:
    """The per-process metrics of SPEC §7, in their own registry."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry: CollectorRegistry = CollectorRegistry()
        self.polls: Counter = Counter(
            "seqwatch_polls", "Polls of a source by outcome (ok, failed).",
            ["source", "outcome"], registry=self.registry,
        )  # fmt: skip
        self.poll_duration: Histogram = Histogram(
            "seqwatch_poll_duration_seconds", "Duration of one poll of a source.",
            ["source"], registry=self.registry,
            buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
        )  # fmt: skip
        self.quarantined: Counter = Counter(
            "seqwatch_records_quarantined", "Records skipped because they could not be read.",
            ["source"], registry=self.registry,
        )  # fmt: skip
        self.provider_requests: Counter = Counter(
            "seqwatch_provider_requests", "Provider API responses by HTTP status code.",
            ["source", "code"], registry=self.registry,
        )  # fmt: skip
        self.events: Counter = Counter(
            "seqwatch_events", "Events emitted by this process, by source and type.",
            ["source", "type"], registry=self.registry,
        )  # fmt: skip
        self.deliveries: Counter = Counter(
            "seqwatch_deliveries", "Delivery attempts by outcome (delivered, retry, dead).",
            ["destination", "outcome"], registry=self.registry,
        )  # fmt: skip


_counters: Counters | None = None


def enable() -> Counters:
    """Start recording in this process (idempotent); returns the registry holder."""
    global _counters
    if _counters is None:
        from prometheus_client import disable_created_metrics

        # No *_created series: exactly the names of SPEC §7.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        _counters = Counters()
    return _counters


def poll_finished(
    source: str,
    *,
    ok: bool,
    seconds: float,
    events: Mapping[str, int] | None = None,
    quarantined: int = 0,
) -> None:
    if _counters is None:
        return
    _counters.polls.labels(source, "ok" if ok else "failed").inc()
    _counters.poll_duration.labels(source).observe(seconds)
    for event_type, count in (events or {}).items():
        _counters.events.labels(source, event_type).inc(count)
    if quarantined:
        _counters.quarantined.labels(source).inc(quarantined)
    else:
        _counters.quarantined.labels(source)  # the series exists from the first poll


def event_emitted(source: str, event_type: str) -> None:
    if _counters is not None:
        _counters.events.labels(source, event_type).inc()


def deliveries_settled(destination: str, *, delivered: int, retrying: int, dead: int) -> None:
    if _counters is None:
        return
    for outcome, count in (("delivered", delivered), ("retry", retrying), ("dead", dead)):
        if count:
            _counters.deliveries.labels(destination, outcome).inc(count)


async def on_provider_response(response: httpx.Response) -> None:
    """httpx response hook: counts the response under the source polling in this task."""
    source = polling_source.get()
    if _counters is not None and source is not None:
        _counters.provider_requests.labels(source, str(response.status_code)).inc()
