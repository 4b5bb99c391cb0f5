"""The metrics of CONTRACT §9, on ``prometheus_client``, one registry per application.

Each :class:`Metrics` owns a :class:`~prometheus_client.CollectorRegistry` (never the library's
global one: tests build many applications in one process), with the process collector (CPU,
memory, open files) and the garbage-collector collector registered on it. The facade keeps the
call sites small and free of the library: ``metrics.uploads.inc(outcome="ok")``,
``metrics.event_latency.observe(seconds, handler=...)``, ``metrics.render()``.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, GCCollector, ProcessCollector
from prometheus_client import Counter as _Counter
from prometheus_client import Histogram as _Histogram
from prometheus_client.exposition import generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)


class Counter:
    """A counter whose label values are given as keywords: ``inc(2, outcome="ok")``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        name: str,
        help_text: str,
        labels: Sequence[str] = (),
    ) -> None:
        self._metric = _Counter(name, help_text, labelnames=labels, registry=registry)
        self._labelled = bool(labels)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if self._labelled:
            self._metric.labels(**labels).inc(amount)
        else:
            self._metric.inc(amount)


class Histogram:
    """A histogram whose label values are given as keywords: ``observe(0.2, handler="x")``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        name: str,
        help_text: str,
        buckets: Sequence[float],
        labels: Sequence[str] = (),
    ) -> None:
        self._metric = _Histogram(
            name, help_text, labelnames=labels, buckets=buckets, registry=registry
        )
        self._labelled = bool(labels)

    def observe(self, value: float, **labels: str) -> None:
        if self._labelled:
            self._metric.labels(**labels).observe(value)
        else:
            self._metric.observe(value)


class Metrics:
    """Every metric of CONTRACT §9, plus process and GC metrics."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        GCCollector(registry=registry)
        self.events = Counter(
            registry,
            "cliqbot_events_total",
            "Inbound events by handler and outcome.",
            ("handler", "outcome"),
        )
        self.uploads = Counter(
            registry, "cliqbot_uploads_total", "File uploads by outcome.", ("outcome",)
        )
        self.bytes_uploaded = Counter(registry, "cliqbot_uploaded_bytes_total", "Bytes uploaded.")
        self.refreshes = Counter(
            registry, "cliqbot_token_refreshes_total", "Token refreshes by outcome.", ("outcome",)
        )
        self.callbacks = Counter(
            registry, "cliqbot_oauth_callbacks_total", "OAuth callbacks by outcome.", ("outcome",)
        )
        self.worker_errors = Counter(
            registry,
            "cliqbot_worker_errors_total",
            "Unexpected errors in the upload worker by stage (keep, upload, claim, housekeeping).",
            ("stage",),
        )
        self.event_latency = Histogram(
            registry,
            "cliqbot_event_seconds",
            "Inbound event handling latency.",
            LATENCY_BUCKETS,
            ("handler",),
        )
        self.upload_duration = Histogram(
            registry, "cliqbot_upload_seconds", "Upload duration.", DURATION_BUCKETS
        )

    def render(self) -> str:
        """The Prometheus text exposition of every metric in this application's registry."""
        return generate_latest(self.registry).decode("utf-8")
