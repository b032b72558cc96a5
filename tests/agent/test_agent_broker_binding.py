"""TEEP over HTTP binding rules of the Broker, against a real HTTP server on loopback (and httpx.MockTransport for
the property test): redirects, cookies, empty replies, retries with backoff, strict statuses and content types."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from agent_tam import TEEP, LoopbackTam, Recorded, ServerThread, free_port, make_tls, serve
from agent_world import APP, APP_MANIFEST, PAYLOAD, Keys
from fastapi import Response
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from veritee.errors import ConfigError, ProtocolError, TransportError, VeriteeError
from veritee.service.broker import (
    Broker,
    ContentTypeError,
    HttpStatusError,
    MessageTooLargeError,
    RedirectRefusedError,
    RetriesExhaustedError,
    RetryPolicy,
    SessionEnd,
    TlsError,
)
from veritee.service.tee import SoftTee
from veritee.teep.agent import AgentState, TeepAgent
from veritee.teep.codes import ErrorCode
from veritee.teep.cose_wrap import sign_message
from veritee.teep.messages import QueryResponse
from veritee.teep.tam import TamSession

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05)


class Sleeps:
    """A recording sleep (no real waiting); ``then`` runs after the n-th call."""

    def __init__(self, then: dict[int, object] | None = None) -> None:
        self.delays: list[float] = []
        self.then = then or {}

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        action = self.then.get(len(self.delays))
        if callable(action):
            action()


def make(url: str, keys: Keys, tee: SoftTee, **options: object) -> Broker:
    options.setdefault("retry", FAST)
    options.setdefault("sleep", Sleeps())
    return Broker(url, TeepAgent(keys.agent_config(), tee), timeout=5, **options)  # type: ignore[arg-type]


def test_redirects_are_refused_and_not_followed(keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str) -> None:
    def redirect(number: int, record: Recorded) -> Response | None:
        if record.path == "/tam":
            return Response(status_code=307, headers={"Location": url.replace("/tam", "/other")})
        return None

    tam.intercept = redirect
    with make(url, keys, tee) as broker, pytest.raises(RedirectRefusedError) as caught:
        broker.request_ta(APP)
    assert caught.value.status == 307 and caught.value.location is not None
    assert [r.path for r in tam.requests] == ["/tam"]  # /other was never asked


def test_cookies_are_neither_stored_nor_sent(keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str) -> None:
    tam.set_cookie = True
    with make(url, keys, tee) as broker:
        assert broker.request_ta(APP).ok
        assert broker.request_policy_check().ok
    assert len(tam.requests) == 5
    assert all("cookie" not in r.headers for r in tam.requests)


def test_an_empty_2xx_reply_ends_the_session(keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str) -> None:
    tam.intercept = lambda n, r: Response(status_code=200, content=b"", media_type=TEEP)
    with make(url, keys, tee) as broker:
        outcome = broker.request_policy_check()
    assert outcome.ended_by is SessionEnd.TAM_DONE and outcome.exchanges == 1 and outcome.events == ()


def test_connection_refused_is_retried_with_backoff_until_the_tam_is_up(
    keys: Keys, tee: SoftTee, tam: LoopbackTam
) -> None:
    port = free_port()
    servers: list[ServerThread] = []
    sleeps = Sleeps(then={2: lambda: servers.append(ServerThread(tam.app, port).start())})
    retry = RetryPolicy(attempts=4, base_delay=0.5, max_delay=10)
    url = f"http://127.0.0.1:{port}/tam"
    try:
        with make(url, keys, tee, retry=retry, sleep=sleeps, rand=lambda: 1.0) as broker:
            outcome = broker.request_ta(APP)
    finally:
        for server in servers:
            server.stop()
    assert sleeps.delays == [0.5, 1.0]  # exponential: base, 2 x base (rand = 1: the top of the jitter range)
    assert outcome.ok and outcome.retries == 2 and tee.read(APP) == PAYLOAD


def test_retries_are_bounded_then_a_typed_transport_error(keys: Keys, tee: SoftTee) -> None:
    sleeps = Sleeps()
    retry = RetryPolicy(attempts=3, base_delay=0.2, max_delay=10)
    url = f"http://127.0.0.1:{free_port()}/tam"
    with (
        make(url, keys, tee, retry=retry, sleep=sleeps, rand=lambda: 0.5) as broker,
        pytest.raises(RetriesExhaustedError) as caught,
    ):
        broker.request_policy_check()
    assert caught.value.attempts == 3 and isinstance(caught.value, TransportError | OSError)
    assert "ConnectError" in str(caught.value.last)
    assert sleeps.delays == [0.1, 0.2]  # full jitter: rand x min(max, base x 2^(n-1))


def test_5xx_is_retried_and_retry_after_is_honoured(keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str) -> None:
    def flaky(number: int, record: Recorded) -> Response | None:
        if number == 1:
            return Response(status_code=503, headers={"Retry-After": "3"})
        if number == 2:
            return Response(status_code=502)
        return None

    tam.intercept = flaky
    sleeps = Sleeps()
    retry = RetryPolicy(attempts=4, base_delay=0.1, max_delay=2.0)
    with make(url, keys, tee, retry=retry, sleep=sleeps, rand=lambda: 0.0) as broker:
        outcome = broker.request_ta(APP)
    assert sleeps.delays == [2.0, 0.0]  # Retry-After 3 s, capped at max_delay; then jitter 0
    assert outcome.ok and outcome.retries == 2 and outcome.installed == (APP_MANIFEST,)


def test_5xx_retries_are_bounded(keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str) -> None:
    tam.intercept = lambda n, r: Response(status_code=500)
    with make(url, keys, tee) as broker, pytest.raises(RetriesExhaustedError) as caught:
        broker.request_policy_check()
    assert isinstance(caught.value.last, HttpStatusError) and caught.value.last.status == 500
    assert len(tam.requests) == FAST.attempts


@pytest.mark.parametrize("status", [400, 404, 415, 401])
def test_4xx_fails_at_once(keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str, status: int) -> None:
    tam.intercept = lambda n, r: Response(status_code=status)
    with make(url, keys, tee) as broker, pytest.raises(HttpStatusError) as caught:
        broker.request_policy_check()
    assert caught.value.status == status and len(tam.requests) == 1


@pytest.mark.parametrize("media", ["application/cbor", "text/html", None])
def test_a_reply_must_be_teep_cbor(keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str, media: str | None) -> None:
    body = TamSession(keys.tam_config()).start(time.time())
    headers = {} if media is None else {"Content-Type": media}
    tam.intercept = lambda n, r: Response(content=body, headers=headers)
    with make(url, keys, tee) as broker, pytest.raises(ContentTypeError):
        broker.request_policy_check()


def test_content_type_parameters_and_case_are_accepted(keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str) -> None:
    body = TamSession(keys.tam_config()).start(time.time())
    tam.intercept = lambda n, r: Response(content=body, headers={"Content-Type": "Application/TEEP+CBOR; x=1"})
    with make(url, keys, tee, max_exchanges=1) as broker, pytest.raises(ProtocolError, match="exceeded 1"):
        broker.request_policy_check()  # accepted and answered; the 1-exchange limit then stops it


def test_an_oversized_reply_is_refused(keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str) -> None:
    tam.intercept = lambda n, r: Response(content=bytes(5000), media_type=TEEP)
    with make(url, keys, tee, max_message_size=4096) as broker, pytest.raises(MessageTooLargeError):
        broker.request_policy_check()


def test_a_tam_that_never_ends_the_session_is_cut_off(keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str) -> None:
    tam.intercept = lambda n, r: Response(content=TamSession(keys.tam_config()).start(time.time()), media_type=TEEP)
    with make(url, keys, tee, max_exchanges=4) as broker, pytest.raises(ProtocolError):
        broker.request_policy_check()
    assert len(tam.requests) == 4


def test_a_protocol_error_ends_the_session_and_the_next_one_starts_clean(
    keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str
) -> None:
    wrong = sign_message(QueryResponse(token=bytes(16)), keys.tam, alg=-9)  # a TAM never sends a QueryResponse
    tam.intercept = lambda n, r: Response(content=wrong, media_type=TEEP) if n == 1 else None
    with make(url, keys, tee) as broker:
        with pytest.raises(ProtocolError):
            broker.request_policy_check()
        assert broker.agent.state is AgentState.ERROR
        assert broker.request_ta(APP).installed == (APP_MANIFEST,)


def test_garbage_from_the_tam_is_answered_with_an_error(keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str) -> None:
    tam.intercept = lambda n, r: Response(content=b"\xa1\x01\x02", media_type=TEEP) if n == 1 else None
    with make(url, keys, tee) as broker:
        outcome = broker.request_policy_check()
    assert not outcome.ok and outcome.errors_sent[0].code is ErrorCode.PERMANENT_ERROR
    assert tam.requests[1].body  # the Agent's Error was posted


def test_https_with_the_tam_ca(tmp_path: Path, keys: Keys, tee: SoftTee, tam: LoopbackTam) -> None:
    ca, cert, key = make_tls(tmp_path)
    with serve(tam.app, tls=(cert, key)) as server:
        with make(server.url, keys, tee, verify=ca) as broker:
            assert broker.request_ta(APP).installed == (APP_MANIFEST,)
        before = len(tam.requests)
        with make(server.url, keys, tee) as broker, pytest.raises(TlsError):  # system CAs: not trusted
            broker.request_policy_check()
        assert len(tam.requests) == before


@pytest.mark.parametrize(
    ("url", "options"),
    [("ftp://tam.example/tam", {}), ("tam.example", {}), ("https://tam.example/tam", {"verify": False})],
)
def test_bad_configuration(keys: Keys, tee: SoftTee, url: str, options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        make(url, keys, tee, **options)


def test_a_missing_ca_file_is_a_configuration_error(tmp_path: Path, keys: Keys, tee: SoftTee) -> None:
    with pytest.raises(ConfigError):
        make("https://tam.example/tam", keys, tee, verify=tmp_path / "none.pem")


def test_backoff_policy() -> None:
    policy = RetryPolicy(attempts=5, base_delay=1.0, max_delay=5.0)
    assert [policy.delay(n, 1.0) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.delay(3, 0.0) == 0.0 and policy.delay(3, 0.25) == 1.0
    assert policy.delay(1, 0.0, retry_after=30) == 5.0
    with pytest.raises(ConfigError):
        RetryPolicy(attempts=0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reply=st.binary(min_size=1, max_size=300), status=st.sampled_from([200, 201, 202]))
def test_random_replies_give_an_outcome_or_a_typed_error(keys: Keys, tee: SoftTee, reply: bytes, status: int) -> None:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        if len(seen) == 1:
            return httpx.Response(status, content=reply, headers={"Content-Type": TEEP})
        return httpx.Response(204)

    transport = httpx.MockTransport(handler)
    with make("http://tam.test/tam", keys, tee, transport=transport) as broker:
        try:
            outcome = broker.request_policy_check()
        except VeriteeError:
            return
    assert outcome.errors_sent or outcome.exchanges == 1
    assert tee.generation == 0  # nothing random ever changes the TEE
