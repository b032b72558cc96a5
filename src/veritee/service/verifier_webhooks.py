"""The outbox dispatcher: delivers webhook events and TAM block calls, with retries and exponential back-off.

Deliveries are claimed (``SKIP LOCKED``, with a claim that expires) so several replicas share the work and a
delivery interrupted by a crash is picked up again: delivery is at least once, and each request carries an
``Idempotency-Key`` (the event id for webhooks) for the receiver to drop repeats.

* webhook: ``POST {url}`` with the event JSON (``X-Veritee-Event: node.untrusted`` etc.);
* TAM block: ``POST {tam_url}/admin/devices/{device}/block`` with ``Authorization: Bearer {tam_token}`` and
  ``{"reason": ...}``; 2xx or 409 (already blocked) is success.

2xx is delivered; 408, 425, 429, 5xx and transport errors are retried after ``backoff * 2^(attempts-1)`` seconds
(at most ``backoff_max``); any other status fails at once; after ``max_attempts`` the delivery is given up
(``failed_at`` set, kept for inspection).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy import select

from veritee.errors import StorageError
from veritee.service.verifier_config import VerifierConfig
from veritee.service.verifier_events import event_json
from veritee.service.verifier_metrics import VerifierMetrics
from veritee.store.base import utcnow
from veritee.store.db import Database
from veritee.store.verifier_models import DeliveryKind, VerifierOutbox
from veritee.store.verifier_repo import claim_deliveries

__all__ = ["Delivery", "DeliveryReport", "OutboxDispatcher"]

_RETRY_STATUSES = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class Delivery:
    """A claimed outbox row, detached from the database."""

    id: int
    kind: DeliveryKind
    url: str
    body: dict[str, Any]
    headers: dict[str, str]
    attempts: int


@dataclass(frozen=True, slots=True)
class _Result:
    delivery: Delivery
    ok: bool
    retry: bool
    error: str | None
    attempted: bool = True


@dataclass
class DeliveryReport:
    delivered: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


class OutboxDispatcher:
    """Delivers what the outbox holds; ``run_once`` is one pass, ``run`` loops until stopped."""

    def __init__(
        self,
        db: Database,
        config: VerifierConfig,
        metrics: VerifierMetrics,
        *,
        now: Callable[[], datetime] = utcnow,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.metrics = metrics
        self._now = now
        self._transport = transport

    def _claim(self, limit: int) -> list[Delivery]:
        now = self._now()
        until = now + timedelta(seconds=self.config.delivery_timeout_s * 3)
        out: list[Delivery] = []
        with self.db.transaction() as session:
            for row in claim_deliveries(session, self.config.replica_id, now, until, limit):
                out.append(self._describe(row))
        return out

    def _describe(self, row: VerifierOutbox) -> Delivery:
        kind = DeliveryKind(row.kind)
        if kind is DeliveryKind.TAM_BLOCK:
            device = str(row.payload.get("device_id", ""))
            url = f"{row.url.rstrip('/')}/admin/devices/{quote(device, safe='')}/block"
            headers = {"Authorization": f"Bearer {self.config.tam_token or ''}", "Idempotency-Key": f"veritee-{row.id}"}
            return Delivery(row.id, kind, url, {"reason": row.payload.get("reason", "")}, headers, row.attempts)
        body = event_json(row.event) if row.event is not None else dict(row.payload)
        headers = {
            "X-Veritee-Event": str(body.get("kind", "")),
            "X-Veritee-Delivery": str(row.id),
            "Idempotency-Key": f"veritee-event-{body.get('id', row.id)}",
        }
        return Delivery(row.id, kind, row.url, body, headers, row.attempts)

    async def _deliver(self, client: httpx.AsyncClient, delivery: Delivery) -> _Result:
        try:
            response = await client.post(delivery.url, json=delivery.body, headers=delivery.headers)
        except httpx.HTTPError as exc:
            return _Result(delivery, False, True, f"{type(exc).__name__}: {exc}")
        status = response.status_code
        if 200 <= status < 300 or (delivery.kind is DeliveryKind.TAM_BLOCK and status == 409):
            return _Result(delivery, True, False, None)
        retry = status >= 500 or status in _RETRY_STATUSES
        return _Result(delivery, False, retry, f"HTTP {status}: {response.text[:200]}")

    def _record(self, results: list[_Result]) -> DeliveryReport:
        report = DeliveryReport()
        if not results:
            return report
        now = self._now()
        by_id = {result.delivery.id: result for result in results}
        with self.db.transaction() as session:
            rows = session.scalars(select(VerifierOutbox).where(VerifierOutbox.id.in_(sorted(by_id))))
            for row in rows:
                result = by_id[row.id]
                row.claimed_by = None
                row.claimed_until = None
                if not result.attempted:  # after an earlier delivery to its URL failed: its turn comes later
                    continue
                row.attempts += 1
                row.last_error = result.error
                kind = DeliveryKind(row.kind).value
                if result.ok:
                    row.delivered_at = now
                    report.delivered.append(row.id)
                    self.metrics.deliveries.labels(kind, "delivered").inc()
                elif result.retry and row.attempts < self.config.delivery_max_attempts:
                    delay = min(
                        self.config.delivery_backoff_max_s, self.config.delivery_backoff_s * 2 ** (row.attempts - 1)
                    )
                    row.next_attempt_at = now + timedelta(seconds=delay)
                    report.retrying.append(row.id)
                    self.metrics.deliveries.labels(kind, "retry").inc()
                else:
                    row.failed_at = now
                    report.failed.append(row.id)
                    self.metrics.deliveries.labels(kind, "failed").inc()
        return report

    async def run_once(self, client: httpx.AsyncClient | None = None, *, limit: int = 100) -> DeliveryReport:
        deliveries = await asyncio.to_thread(self._claim, limit)
        if not deliveries:
            return DeliveryReport()
        if client is None:
            async with self._client() as own:
                results = await self._deliver_all(own, deliveries)
        else:
            results = await self._deliver_all(client, deliveries)
        return await asyncio.to_thread(self._record, results)

    async def _deliver_all(self, client: httpx.AsyncClient, deliveries: list[Delivery]) -> list[_Result]:
        """Receivers in parallel; each receiver's deliveries one after the other, in order, until one fails."""
        queues: dict[str, list[Delivery]] = {}
        for delivery in deliveries:
            queues.setdefault(delivery.url if delivery.kind is DeliveryKind.WEBHOOK else "tam", []).append(delivery)

        async def in_order(queue: list[Delivery]) -> list[_Result]:
            results: list[_Result] = []
            for index, delivery in enumerate(queue):
                result = await self._deliver(client, delivery)
                results.append(result)
                if not result.ok:
                    results.extend(_Result(d, False, True, None, attempted=False) for d in queue[index + 1 :])
                    break
            return results

        grouped = await asyncio.gather(*(in_order(queue) for queue in queues.values()))
        return [result for group in grouped for result in group]

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.config.delivery_timeout_s, transport=self._transport)

    async def run(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        async with self._client() as client:
            while not stop.is_set():
                try:
                    report = await self.run_once(client)
                except StorageError:  # the database is away: try again after the poll interval
                    report = DeliveryReport()
                if report.delivered or report.retrying or report.failed:
                    continue
                wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=self.config.delivery_poll_s)
