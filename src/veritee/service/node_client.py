"""HTTP client of the node agent towards the verifier, with retries and exponential backoff.

Connection failures, timeouts and the statuses that mean "not now" (429, 500, 502, 503, 504) are retried as the
:class:`~veritee.service.node_config.RetryPolicy` says; other error statuses become typed errors at once:
401/403 :class:`~veritee.errors.AuthError`, 404 :class:`~veritee.errors.NotFoundError`, 409
:class:`~veritee.errors.ConflictError`, 422 :class:`~veritee.errors.VerificationError`, other 4xx
:class:`~veritee.errors.ProtocolError`. A reply that is not JSON is a ProtocolError.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

import httpx

from veritee.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    ProtocolError,
    TransportError,
    VerificationError,
    VeriteeError,
)
from veritee.service.node_config import RetryPolicy

__all__ = ["RETRY_STATUSES", "RetryNotice", "StoppedError", "VerifierClient", "VerifierRefusedError"]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

_log = logging.getLogger("veritee.node")

RetryNotice = Callable[[int, float, str], None]
"""Called before each retry with (retry number, delay in seconds, why)."""


class StoppedError(TransportError):
    """The agent was asked to stop while it waited to retry."""


class VerifierRefusedError(VerificationError):
    """The verifier understood the request and refused it (HTTP 422)."""


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)[:500]
    return str(body)[:200]


def _status_error(method: str, url: str, response: httpx.Response) -> VeriteeError:
    status = response.status_code
    text = f"{method} {url}: HTTP {status}: {_detail(response)}"
    if status in (401, 403):
        return AuthError(text)
    if status == 404:
        return NotFoundError(text)
    if status == 409:
        return ConflictError(text)
    if status == 422:
        return VerifierRefusedError(text)
    if 400 <= status < 500:
        return ProtocolError(text)
    return TransportError(text)


class VerifierClient:
    """JSON requests to one verifier; ``stop`` (when given) interrupts a backoff wait with :class:`StoppedError`."""

    def __init__(
        self,
        base_url: str,
        *,
        retry: RetryPolicy,
        timeout: float,
        stop: threading.Event | None = None,
        rng: random.Random | None = None,
        on_retry: RetryNotice | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self._stop = stop or threading.Event()
        self._rng = rng or random.Random()
        self._on_retry = on_retry
        self._http = httpx.Client(timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> VerifierClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, body: Any = None, expect: tuple[int, ...] = (200,)) -> Any:
        """Send one request (retrying as the policy says) and return the decoded JSON reply."""
        url = self.base_url + path
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(method, url, json=body)
            except httpx.TransportError as exc:  # refused, reset, timed out: the verifier may be restarting
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code in expect:
                    return self._json(method, url, response)
                if response.status_code not in RETRY_STATUSES:
                    raise _status_error(method, url, response)
                reason = f"HTTP {response.status_code}: {_detail(response)}"
            if self.retry.attempts is not None and attempt >= self.retry.attempts:
                raise TransportError(f"{method} {url} failed {attempt} time(s); last: {reason}")
            delay = self.retry.delay(attempt, self._rng)
            _log.warning("%s %s failed (%s); retry %d in %.2f s", method, url, reason, attempt, delay)
            if self._on_retry is not None:
                self._on_retry(attempt, delay, reason)
            if self._stop.wait(delay):
                raise StoppedError(f"stopped while waiting to retry {method} {url} ({reason})")

    @staticmethod
    def _json(method: str, url: str, response: httpx.Response) -> Any:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"{method} {url}: the reply is not JSON: {exc}") from None
