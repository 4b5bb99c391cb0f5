"""A small Prometheus text-format registry, one per application (no global state)."""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence

LabelKey = tuple[tuple[str, str], ...]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
DURATION_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)


def _key(labels: dict[str, str]) -> LabelKey:
    return tuple(sorted(labels.items()))


def _fmt_labels(key: LabelKey, extra: tuple[tuple[str, str], ...] = ()) -> str:
    items = key + extra
    if not items:
        return ""
    body = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(10), " ").replace(chr(34), chr(39))}"'
        for k, v in items
    )
    return "{" + body + "}"


class Counter:
    def __init__(self, name: str, help_text: str) -> None:
        self.name, self.help = name, help_text
        self.values: dict[LabelKey, float] = defaultdict(float)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self.values[_key(labels)] += amount

    def value(self, **labels: str) -> float:
        return self.values.get(_key(labels), 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        lines += [f"{self.name}{_fmt_labels(k)} {v:g}" for k, v in sorted(self.values.items())]
        return lines


class Histogram:
    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        self.name, self.help = name, help_text
        self.buckets = tuple(buckets)
        self.counts: dict[LabelKey, list[int]] = {}
        self.sums: dict[LabelKey, float] = defaultdict(float)

    def observe(self, value: float, **labels: str) -> None:
        key = _key(labels)
        counts = self.counts.setdefault(key, [0] * (len(self.buckets) + 1))
        counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sums[key] += value

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key, counts in sorted(self.counts.items()):
            running = 0
            for bound, count in zip(self.buckets, counts, strict=False):
                running += count
                lines.append(
                    f"{self.name}_bucket{_fmt_labels(key, (('le', f'{bound:g}'),))} {running}"
                )
            running += counts[-1]
            lines.append(f"{self.name}_bucket{_fmt_labels(key, (('le', '+Inf'),))} {running}")
            lines.append(f"{self.name}_sum{_fmt_labels(key)} {self.sums[key]:g}")
            lines.append(f"{self.name}_count{_fmt_labels(key)} {running}")
        return lines


class Metrics:
    """Every metric of CONTRACT §9."""

    def __init__(self) -> None:
        self.events = Counter("cliqbot_events_total", "Inbound events by handler and outcome.")
        self.uploads = Counter("cliqbot_uploads_total", "File uploads by outcome.")
        self.bytes_uploaded = Counter("cliqbot_uploaded_bytes_total", "Bytes uploaded.")
        self.refreshes = Counter("cliqbot_token_refreshes_total", "Token refreshes by outcome.")
        self.callbacks = Counter("cliqbot_oauth_callbacks_total", "OAuth callbacks by outcome.")
        self.worker_errors = Counter(
            "cliqbot_worker_errors_total",
            "Unexpected errors in the upload worker by stage (keep, upload, claim, housekeeping).",
        )
        self.event_latency = Histogram(
            "cliqbot_event_seconds", "Inbound event handling latency.", LATENCY_BUCKETS
        )
        self.upload_duration = Histogram(
            "cliqbot_upload_seconds", "Upload duration.", DURATION_BUCKETS
        )

    def render(self) -> str:
        parts: list[str] = []
        for metric in (
            self.events,
            self.uploads,
            self.bytes_uploaded,
            self.refreshes,
            self.callbacks,
            self.worker_errors,
            self.event_latency,
            self.upload_duration,
        ):
            parts += metric.render()
        return "\n".join(parts) + "\n"
