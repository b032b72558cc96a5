"""The TEEP Broker: the HTTP client side of TEEP over HTTP (draft-ietf-teep-otrp-over-http) for a TEEP Agent.

A session (:meth:`Broker.run_session`): an HTTP POST with an empty body and ``Accept: application/teep+cbor`` opens
it; each non-empty reply goes to the Agent (:meth:`TeepAgent.receive`) and the Agent's answer is POSTed with Accept
and Content-Type ``application/teep+cbor``; an empty reply (204, or 2xx without a body) or an Agent with nothing to
send ends it. RFC 9397's entry points :meth:`Broker.request_ta`, :meth:`Broker.unrequest_ta` and
:meth:`Broker.request_policy_check` tell the Agent and run a session.

Strict binding rules, each failure a typed :class:`~veritee.errors.TransportError`: redirects are never followed
(:class:`RedirectRefusedError`), cookies are never stored or sent, a non-empty reply must be
``application/teep+cbor`` (:class:`ContentTypeError`) and at most ``max_message_size`` bytes
(:class:`MessageTooLargeError`), other statuses are :class:`HttpStatusError`. Network errors and 5xx answers are
retried with exponential backoff and full jitter, at most ``RetryPolicy.attempts`` tries per request
(:class:`RetriesExhaustedError`). Re-sending a TEEP message is safe: it is signed and bound to a single-use token, so
a TAM that already processed it refuses the copy rather than applying it twice.
"""

from __future__ import annotations

import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Final
from urllib.parse import urlsplit

import httpx

from veritee import __version__
from veritee.errors import ConfigError, ProtocolError, TransportError, VeriteeError
from veritee.teep.agent import AgentState, TeepAgent
from veritee.teep.events import ErrorSent, Event, UpdateApplied, UpdateFailed
from veritee.teep.fields import ComponentId

__all__ = [
    "TEEP_MEDIA_TYPE",
    "Broker",
    "ContentTypeError",
    "HttpStatusError",
    "MessageTooLargeError",
    "RedirectRefusedError",
    "RetriesExhaustedError",
    "RetryPolicy",
    "SessionEnd",
    "SessionOutcome",
    "TlsError",
]

TEEP_MEDIA_TYPE: Final = "application/teep+cbor"
_USER_AGENT: Final = f"veritee-teep-broker/{__version__}"
_log = logging.getLogger(__name__)


class HttpStatusError(TransportError):
    """The TAM answered with an HTTP status outside the binding (4xx, or 5xx after the retries)."""

    def __init__(self, status: int, detail: str = "") -> None:
        self.status = status
        super().__init__(f"the TAM answered HTTP {status}" + (f": {detail}" if detail else ""))


class RedirectRefusedError(TransportError):
    """The TAM answered with a redirect; TEEP over HTTP here never follows one."""

    def __init__(self, status: int, location: str | None) -> None:
        self.status = status
        self.location = location
        super().__init__(f"the TAM answered HTTP {status} (redirect to {location!r}); redirects are not followed")


class TlsError(TransportError):
    """The TLS handshake failed (certificate not trusted, wrong name, ...): not retried."""


class ContentTypeError(TransportError):
    """A non-empty reply that is not application/teep+cbor."""


class MessageTooLargeError(TransportError):
    """A reply larger than the Broker accepts."""


class RetriesExhaustedError(TransportError):
    """Every attempt of a request failed with a retryable error; ``last`` is the final one."""

    def __init__(self, attempts: int, last: TransportError) -> None:
        self.attempts = attempts
        self.last = last
        super().__init__(f"the TAM could not be reached after {attempts} attempts: {last}")


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one HTTP request: ``attempts`` tries in all; before try n+1 wait a uniformly random time in
    [0, min(max_delay, base_delay * 2**(n-1))] ("full jitter"), and at least a 503's Retry-After (capped)."""

    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 8.0
    statuses: frozenset[int] = frozenset({500, 502, 503, 504})

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ConfigError("retry policy: attempts >= 1 and 0 <= base_delay <= max_delay")

    def delay(self, failed_attempts: int, rand: float, retry_after: float | None = None) -> float:
        ceiling = min(self.max_delay, self.base_delay * float(2 ** max(0, failed_attempts - 1)))
        wait = ceiling * min(max(rand, 0.0), 1.0)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_delay))
        return wait


class SessionEnd(Enum):
    TAM_DONE = "tam-done"  # the TAM answered with an empty body (204)
    AGENT_DONE = "agent-done"  # the Agent had nothing to send


@dataclass(frozen=True)
class SessionOutcome:
    """What one TEEP session did. ``ok`` when the Agent sent no Error (every Update applied)."""

    events: tuple[Event, ...]
    ended_by: SessionEnd
    exchanges: int  # HTTP requests that got an answer
    retries: int
    duration: float
    installed: tuple[ComponentId, ...] = ()
    unlinked: tuple[ComponentId, ...] = ()
    errors_sent: tuple[ErrorSent, ...] = ()
    failed_updates: tuple[UpdateFailed, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors_sent

    @classmethod
    def collect(
        cls, events: list[Event], ended_by: SessionEnd, exchanges: int, retries: int, duration: float
    ) -> SessionOutcome:
        applied = [e for e in events if isinstance(e, UpdateApplied)]
        return cls(
            events=tuple(events),
            ended_by=ended_by,
            exchanges=exchanges,
            retries=retries,
            duration=duration,
            installed=tuple(c for e in applied for c in e.installed),
            unlinked=tuple(c for e in applied for c in e.unlinked),
            errors_sent=tuple(e for e in events if isinstance(e, ErrorSent)),
            failed_updates=tuple(e for e in events if isinstance(e, UpdateFailed)),
        )


def _ssl_context(verify: ssl.SSLContext | str | Path | bool) -> ssl.SSLContext | bool:
    if isinstance(verify, ssl.SSLContext) or verify is True:
        return verify
    if verify is False:
        raise ConfigError("TLS certificate checks cannot be disabled (RFC 2818 checks are required for HTTPS)")
    try:
        return ssl.create_default_context(cafile=str(verify))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the CA file {verify}: {exc}") from exc


@dataclass
class _Counters:
    exchanges: int = 0
    retries: int = 0
    events: list[Event] = field(default_factory=list)


class Broker:
    """A TEEP/HTTP client for one Agent and one TAM URI. Not thread-safe: one session at a time.

    ``verify``: True (the system CAs), an SSLContext, or a CA file (PEM); checks cannot be turned off. ``clock`` is the
    ``now`` given to the Agent; ``sleep`` and ``rand`` drive the backoff (tests pass their own). ``transport`` replaces
    the network (httpx.MockTransport); ``proxy`` is an explicit HTTP(S) proxy (the environment is never read).
    """

    def __init__(
        self,
        tam_url: str,
        agent: TeepAgent,
        *,
        verify: ssl.SSLContext | str | Path | bool = True,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        max_message_size: int = 16 * 1024 * 1024,
        max_exchanges: int = 64,
        transport: httpx.BaseTransport | None = None,
        proxy: str | None = None,
    ) -> None:
        parts = urlsplit(tam_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"the TAM URI must be an http(s) URL, not {tam_url!r}")
        if timeout <= 0 or max_message_size <= 0 or max_exchanges <= 0:
            raise ConfigError("timeout, max_message_size and max_exchanges must be positive")
        self.tam_url = tam_url
        self.agent = agent
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self.sleep = sleep
        self.rand = rand
        self.max_message_size = max_message_size
        self.max_exchanges = max_exchanges
        # The transport itself, not an httpx.Client: no redirect following, no cookie jar (nothing to store or
        # send), no environment (trust_env off: no proxies or CA bundles from it); one keep-alive connection pool.
        self._transport = transport or httpx.HTTPTransport(verify=_ssl_context(verify), proxy=proxy, trust_env=False)
        self._url = httpx.URL(tam_url)
        self._timeout = {"timeout": httpx.Timeout(timeout).as_dict()}

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Broker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- RFC 9397 entry points ------------------------------------------------------------------------------------
    def request_ta(
        self, component_id: ComponentId, *, sequence_number: int | None = None, have_binary: bool | None = None
    ) -> SessionOutcome:
        """RequestTA: the device needs this Trusted Component; ask the TAM for it in a session."""
        self.agent.request_ta(component_id, sequence_number=sequence_number, have_binary=have_binary)
        return self.run_session()

    def unrequest_ta(self, manifest_id: ComponentId) -> SessionOutcome:
        """UnrequestTA: the device no longer needs this Trusted Component; tell the TAM in a session."""
        self.agent.unrequest_ta(manifest_id)
        return self.run_session()

    def request_policy_check(self) -> SessionOutcome:
        """RequestPolicyCheck: let the TAM check (and update) the device against its policy."""
        return self.run_session()

    # --- the session ----------------------------------------------------------------------------------------------
    def run_session(self) -> SessionOutcome:
        """Open a session with an empty POST and relay messages until the TAM or the Agent has nothing more."""
        if self.agent.state in (AgentState.CLOSED, AgentState.ERROR):
            self.agent.state = AgentState.IDLE  # a new session: the previous one's end does not carry over
        started = time.perf_counter()
        counters = _Counters()
        body = b""
        ended_by = SessionEnd.TAM_DONE
        while True:
            if counters.exchanges >= self.max_exchanges:
                raise ProtocolError(f"the TEEP session exceeded {self.max_exchanges} exchanges")
            reply = self._post(body, counters)
            if not reply:
                break
            events, answer = self.agent.receive(reply, self.clock())
            counters.events.extend(events)
            if answer is None:
                ended_by = SessionEnd.AGENT_DONE
                break
            body = answer
        outcome = SessionOutcome.collect(
            counters.events, ended_by, counters.exchanges, counters.retries, time.perf_counter() - started
        )
        _log.info(
            "TEEP session with %s ended (%s): %d exchanges, %d retries, installed %d, unlinked %d, errors %d",
            self.tam_url,
            ended_by.value,
            outcome.exchanges,
            outcome.retries,
            len(outcome.installed),
            len(outcome.unlinked),
            len(outcome.errors_sent),
        )
        return outcome

    # --- one request, with retries --------------------------------------------------------------------------------
    def _post(self, body: bytes, counters: _Counters) -> bytes:
        headers = {"Accept": TEEP_MEDIA_TYPE, "User-Agent": _USER_AGENT}
        if body:
            headers["Content-Type"] = TEEP_MEDIA_TYPE
        attempt = 0
        while True:
            attempt += 1
            retry_after: float | None = None
            try:
                return self._attempt(body, headers, counters)
            except _Retryable as retryable:
                last, retry_after = retryable.error, retryable.retry_after
            if attempt >= self.retry.attempts:
                raise RetriesExhaustedError(attempt, last) from last
            wait = self.retry.delay(attempt, self.rand(), retry_after)
            _log.warning("TEEP request to %s failed (%s); retry %d in %.2f s", self.tam_url, last, attempt, wait)
            counters.retries += 1
            self.sleep(wait)

    def _attempt(self, body: bytes, headers: dict[str, str], counters: _Counters) -> bytes:
        request = httpx.Request("POST", self._url, content=body, headers=headers, extensions=self._timeout)
        try:
            response = self._transport.handle_request(request)
            try:
                counters.exchanges += 1
                return self._read(response)
            finally:
                response.close()
        except httpx.TransportError as exc:  # connection refused / reset, timeouts, protocol errors
            tls = _tls_cause(exc)
            if tls is not None:
                raise TlsError(f"TLS with {self.tam_url} failed: {tls}") from exc
            raise _Retryable(TransportError(f"{type(exc).__name__}: {exc}")) from exc

    def _read(self, response: httpx.Response) -> bytes:
        status = response.status_code
        if 300 <= status < 400:
            raise RedirectRefusedError(status, response.headers.get("Location"))
        if status in self.retry.statuses:
            raise _Retryable(HttpStatusError(status), _retry_after(response.headers.get("Retry-After")))
        if not 200 <= status < 300:
            raise HttpStatusError(status, response.reason_phrase)
        if status == 204:
            return b""
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_message_size:
            raise MessageTooLargeError(f"the TAM's reply of {declared} bytes exceeds {self.max_message_size}")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_message_size:
                raise MessageTooLargeError(f"the TAM's reply exceeds {self.max_message_size} bytes")
            chunks.append(chunk)
        data = b"".join(chunks)
        if not data:
            return b""
        media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if media != TEEP_MEDIA_TYPE:
            raise ContentTypeError(f"the TAM's reply is {media or 'untyped'!r}, not {TEEP_MEDIA_TYPE}")
        return data


class _Retryable(VeriteeError):
    """Internal control flow: this attempt failed in a way worth another try (never escapes the Broker)."""

    def __init__(self, error: TransportError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


def _tls_cause(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind an httpx error, if any (httpx wraps it in ConnectError)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit():
        return None  # the HTTP-date form is not worth a clock dependency here
    return float(value.strip())
