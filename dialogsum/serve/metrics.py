"""Prometheus metrics of the service, on a registry of its own (one per app)."""

from __future__ import annotations

#: The ``adapter`` label of the base model's dialogues (no adapter name has parentheses).
BASE_LABEL = "(base)"


class ServeMetrics:
    """Requests, latency, queue depth, batch sizes, tokens, truncation and adapters."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dialogsum_requests",
            "HTTP requests by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "dialogsum_request_seconds",
            "Request latency.",
            ["route"],
            registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.queue_depth = Gauge(
            "dialogsum_queue_depth",
            "Requests waiting for a batch (continuous batching: dialogues waiting to join).",
            registry=self.registry,
        )
        self.decoding = Gauge(
            "dialogsum_decoding_dialogues",
            "Dialogues decoding now, under continuous batching (their steps are shared).",
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "dialogsum_batch_dialogues",
            "Dialogues per model call (micro-batching).",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
        )
        self.batch_requests = Histogram(
            "dialogsum_batch_requests",
            "Requests per model call (micro-batching).",
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64),
        )
        self.input_tokens = Counter(
            "dialogsum_input_tokens", "Prompted input tokens.", registry=self.registry
        )
        self.output_tokens = Counter(
            "dialogsum_output_tokens", "Summary tokens.", registry=self.registry
        )
        self.truncated = Counter(
            "dialogsum_truncated_inputs",
            "Inputs cut to the model's length.",
            registry=self.registry,
        )
        self.adapter_dialogues = Counter(
            "dialogsum_adapter_dialogues",
            "Dialogues summarized, by adapter ('(base)': the base model).",
            ["adapter"],
            registry=self.registry,
        )
        self.adapter_loads = Counter(
            "dialogsum_adapter_loads",
            "Adapter loads through PUT /v1/adapters/NAME, by outcome (loaded, replaced, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self.adapter_unloads = Counter(
            "dialogsum_adapter_unloads",
            "Adapters unloaded through DELETE /v1/adapters/NAME.",
            registry=self.registry,
        )

    def observe_batch(self, requests: int, dialogues: int) -> None:
        """Record one model call."""
        self.batch_requests.observe(requests)
        self.batch_size.observe(dialogues)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
