"""Prometheus metrics: the same counters the database keeps, plus lag and the open gaps."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from collector.store import COUNTER_NAMES

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "qr_collector_messages",
            "Messages by outcome: received = stored + duplicate + invalid (event topics)",
            ["outcome"],
            registry=r,
        )
        for name in COUNTER_NAMES:
            self.messages.labels(name)
        self.commit_latency = Histogram(
            "qr_collector_commit_latency_seconds",
            "From the arrival of a batch's oldest message at the collector to the batch's commit",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batches = Counter("qr_collector_batches", "Committed batches", registry=r)
        self.database_errors = Counter(
            "qr_collector_database_errors", "Failed database transactions (retried)", registry=r
        )
        self.sessions_lost = Counter(
            "qr_collector_sessions_lost",
            "Reconnects where the broker had no session for us (events queued meanwhile may be lost)",
            registry=r,
        )
        self.replay_requests = Counter("qr_collector_replay_requests", "cmd/replay requests sent", registry=r)
        self.known_lost = Counter(
            "qr_collector_known_lost_seqs", "Seqs the devices said are gone", registry=r
        )
        self.open_gaps = Gauge("qr_collector_open_gaps", "Gaps waiting for a replay", registry=r)
        self.queue = Gauge("qr_collector_queue", "Messages received and not yet committed", registry=r)
        self.connected = Gauge("qr_collector_broker_connected", "1 while connected to the broker", registry=r)

    def count(self, deltas: dict[str, int]) -> None:
        for name, value in deltas.items():
            if value:
                self.messages.labels(name).inc(value)

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)
