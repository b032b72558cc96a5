"""Prometheus metrics of a verifier process, in a registry of its own (never the global one).

* ``veritee_attestations_total{result}`` — rounds committed (passed, failed) and rounds that could not be done
  (unreachable, error);
* ``veritee_attestation_duration_seconds`` — appraisal time of a round (histogram);
* ``veritee_nodes{state}`` — attestable nodes per state, counted in the database when scraped (so every replica
  reports the whole fleet);
* ``veritee_deliveries_total{kind,result}`` — webhook and TAM deliveries (delivered, retry, failed);
* ``veritee_leases_held`` — nodes this replica holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from veritee.errors import StorageError
from veritee.store.db import Database
from veritee.store.verifier_repo import node_counts

__all__ = ["AttestationResult", "VerifierMetrics"]

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class AttestationResult(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    ERROR = "error"


class _NodeStates(Collector):
    def __init__(self, db: Database) -> None:
        self._db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("veritee_nodes", "Attestable nodes per state.", labels=["state"])
        try:
            with self._db.transaction() as session:
                counts = node_counts(session)
        except StorageError:
            return
        for state, count in counts.items():
            family.add_metric([state.value], count)
        yield family


class VerifierMetrics:
    """The metrics of one verifier process."""

    def __init__(self, db: Database) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.attestations = Counter(
            "veritee_attestations", "Attestation rounds by result.", ["result"], registry=self.registry
        )
        self.duration = Histogram(
            "veritee_attestation_duration_seconds",
            "Time to appraise one round (decode, quote, boot log, IMA, EAR).",
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.deliveries = Counter(
            "veritee_deliveries", "Outbox deliveries by kind and result.", ["kind", "result"], registry=self.registry
        )
        self.leases = Gauge("veritee_leases_held", "Nodes whose lease this replica holds.", registry=self.registry)
        for result in AttestationResult:
            self.attestations.labels(result.value)
        self.registry.register(_NodeStates(db))

    def count(self, result: AttestationResult, duration_s: float | None = None) -> None:
        self.attestations.labels(result.value).inc()
        if duration_s is not None:
            self.duration.observe(duration_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)
