"""The agent's HTTP client: which failures are retried, with what backoff, and which become typed errors."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from veritee.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    NotFoundError,
    ProtocolError,
    TransportError,
    VerificationError,
)
from veritee.service.node_client import StoppedError, VerifierClient
from veritee.service.node_config import AgentConfig, AgentMode, RetryPolicy, parse_listen

Handler = Callable[[httpx.Request], httpx.Response]


def _client(
    handler: Handler, retry: RetryPolicy, notes: list[tuple[int, float, str]], stop: threading.Event | None = None
) -> VerifierClient:
    return VerifierClient(
        "http://verifier.test/",
        retry=retry,
        timeout=1.0,
        stop=stop,
        rng=random.Random(1),
        on_retry=lambda n, d, why: notes.append((n, d, why)),
        transport=httpx.MockTransport(handler),
    )


def _script(*responses: httpx.Response | type[Exception]) -> tuple[Handler, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        item = responses[min(len(seen), len(responses)) - 1]
        if isinstance(item, httpx.Response):
            return item
        raise item("scripted failure")

    return handler, seen


FAST = RetryPolicy(initial_delay=0.001, max_delay=0.004, jitter=0.0, attempts=6)


def test_unavailable_then_ok_is_retried_with_backoff() -> None:
    handler, seen = _script(
        httpx.ConnectError,
        httpx.Response(503, json={"detail": "starting"}),
        httpx.ReadTimeout,
        httpx.Response(429),
        httpx.Response(201, json={"ok": 1}),
    )
    notes: list[tuple[int, float, str]] = []
    with _client(handler, FAST, notes) as client:
        assert client.request("POST", "/v1/nodes", body={"a": 1}, expect=(201,)) == {"ok": 1}
    assert len(seen) == 5
    assert seen[0].url == "http://verifier.test/v1/nodes" and seen[0].read() == b'{"a":1}'
    assert [n for n, _, _ in notes] == [1, 2, 3, 4]
    assert [d for _, d, _ in notes] == [0.001, 0.002, 0.004, 0.004]
    assert "ConnectError" in notes[0][2] and "HTTP 503: starting" in notes[1][2]


def test_gives_up_after_the_attempts() -> None:
    handler, seen = _script(httpx.Response(502, text="bad gateway"))
    notes: list[tuple[int, float, str]] = []
    with _client(handler, FAST, notes) as client, pytest.raises(TransportError, match=r"failed 6 time.*HTTP 502"):
        client.request("GET", "/x")
    assert len(seen) == 6 and len(notes) == 5


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, ProtocolError),
        (401, AuthError),
        (403, AuthError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, VerificationError),
        (418, ProtocolError),
    ],
)
def test_client_errors_are_typed_and_not_retried(status: int, error: type[Exception]) -> None:
    handler, seen = _script(httpx.Response(status, json={"title": "no", "detail": "because"}))
    with _client(handler, FAST, []) as client, pytest.raises(error, match=f"HTTP {status}: because"):
        client.request("GET", "/x")
    assert len(seen) == 1


def test_reply_that_is_not_json() -> None:
    handler, _ = _script(httpx.Response(200, text="<html>"))
    with _client(handler, FAST, []) as client, pytest.raises(ProtocolError, match="not JSON"):
        client.request("GET", "/x")


def test_stop_interrupts_the_backoff() -> None:
    stop = threading.Event()
    handler, seen = _script(httpx.ConnectError)
    slow = RetryPolicy(initial_delay=30, max_delay=30)
    notes: list[tuple[int, float, str]] = []
    threading.Timer(0.1, stop.set).start()
    with _client(handler, slow, notes, stop) as client, pytest.raises(StoppedError):
        client.request("GET", "/x")
    assert len(seen) == 1


def test_retry_policy() -> None:
    policy = RetryPolicy(initial_delay=1, max_delay=10, factor=3, jitter=0.5)
    rng = random.Random(7)
    delays = [policy.delay(n, rng) for n in range(1, 6)]
    bases = [1, 3, 9, 10, 10]
    assert all(base * 0.5 <= d <= base for d, base in zip(delays, bases, strict=True))
    for bad in (
        {"initial_delay": -1},
        {"initial_delay": 5, "max_delay": 1},
        {"factor": 0.5},
        {"jitter": 1.0},
        {"attempts": 0},
    ):
        with pytest.raises(ConfigError):
            RetryPolicy(**bad)


def test_agent_config_checks(tmp_path: Path) -> None:
    base = {"verifier_url": "http://v:1", "tcti": "device:/dev/tpmrm0", "node_id": "n-1.a:b", "state_dir": tmp_path}
    AgentConfig(**base)  # type: ignore[arg-type]
    for bad in (
        {"verifier_url": "ftp://v"},
        {"verifier_url": "v:1"},
        {"node_id": "a/b"},
        {"node_id": ""},
        {"node_id": "-x"},
        {"interval": 0},
        {"timeout": -1},
        {"tcti": ""},
        {"mode": AgentMode.PULL},  # without agent_url
        {"mode": AgentMode.PULL, "agent_url": "localhost:1"},
    ):
        with pytest.raises(ConfigError):
            AgentConfig(**{**base, **bad})  # type: ignore[arg-type]
    assert parse_listen("127.0.0.1:8992") == ("127.0.0.1", 8992)
    assert parse_listen("[::1]:80") == ("::1", 80)
    for bad_listen in ("8992", ":1", "host:", "host:99999", "host:x"):
        with pytest.raises(ConfigError):
            parse_listen(bad_listen)
