"""Prometheus metrics of one app (its own registry, so several apps can live in one process)."""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("model", "endpoint", "status")
        self.requests = Counter("nncbridge_requests", "Requests answered, by model, endpoint and HTTP status",
                                labels, registry=self.registry)
        self.errors = Counter("nncbridge_request_errors", "Requests answered with a 4xx or 5xx status",
                              labels, registry=self.registry)
        self.latency = Histogram("nncbridge_request_duration_seconds", "Time from request to response",
                                 ("model", "endpoint"), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("nncbridge_batch_size", "Samples per model call (adaptive batching)",
                                    ("model",), buckets=BATCH_BUCKETS, registry=self.registry)

    def observe(self, model: str, endpoint: str, status: int, seconds: float) -> None:
        self.requests.labels(model, endpoint, str(status)).inc()
        if status >= 400:
            self.errors.labels(model, endpoint, str(status)).inc()
        self.latency.labels(model, endpoint).observe(seconds)

    def batch_observer(self, model: str) -> Callable[[int], None]:
        self.batch_size.labels(model)  # listed from the start, with zero counts
        return partial(self.observe_batch, model)

    def observe_batch(self, model: str, rows: int) -> None:
        self.batch_size.labels(model).observe(rows)

    def __reduce__(self) -> tuple[Any, ...]:
        # Copies (an app shipped to another process, as Ray Serve does) start counting afresh.
        return (Metrics, ())

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
