"""A small but real TAM over HTTP for the Broker tests: FastAPI + uvicorn on loopback, running veritee.teep.tam.

Every POST is recorded. An empty body opens a session (a signed QueryRequest); later bodies are matched to their
session by the token of the message (peeked, then verified by TamSession.receive). Evidence is verified as a Verifier
would (verify_eat: signature, nonce, cnf binding) before the TAM may send an Update; requested components found in the
catalog are installed, unneeded manifests are unlinked, then the session ends with 204. ``intercept`` lets a test
answer a request itself (redirects, 5xx, wrong content types, ...).
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Request, Response

from veritee.cose import CoseKey
from veritee.teep.cose_wrap import peek_message
from veritee.teep.eat import EatClaims, verify_eat
from veritee.teep.events import DeviceStateReported, Event, EvidenceReceived
from veritee.teep.messages import decode_message
from veritee.teep.tam import TamConfig, TamSession, TamState

TEEP = "application/teep+cbor"
BINDING_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: Mapping[str, str]
    body: bytes


Intercept = Callable[[int, Recorded], Response | None]


def token_of(message: bytes) -> bytes | None:
    return decode_message(peek_message(message).payload, compat=True).token


@dataclass
class LoopbackTam:
    config: TamConfig
    attesters: tuple[CoseKey, ...]
    catalog: dict[tuple[bytes, ...], bytes] = field(default_factory=dict)  # requested component -> envelope
    push: list[bytes] = field(default_factory=list)  # envelopes every session installs (TAM policy)
    intercept: Intercept | None = None
    set_cookie: bool = False
    requests: list[Recorded] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    evidence: list[EatClaims] = field(default_factory=list)
    challenges: list[bytes] = field(default_factory=list)
    on_evidence: Callable[[EatClaims, bytes], None] | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[bytes, TamSession] = {}
        self.app = FastAPI()
        self.app.post("/tam")(self._endpoint)
        self.app.post("/other")(self._endpoint)

    def _reply(self, message: bytes | None) -> Response:
        if message is None:
            response = Response(status_code=204)
        else:
            response = Response(content=message, media_type=TEEP, headers=BINDING_HEADERS)
        if self.set_cookie:
            response.set_cookie("teep-session", "abc123")
        return response

    async def _endpoint(self, request: Request) -> Response:
        body = await request.body()
        record = Recorded(request.url.path, dict(request.headers), body)
        with self._lock:
            self.requests.append(record)
            number = len(self.requests)
        if self.intercept is not None:
            answer = self.intercept(number, record)
            if answer is not None:
                return answer
        with self._lock:
            return self._reply(self._handle(body, time.time()))

    def _handle(self, body: bytes, now: float) -> bytes | None:
        if not body:
            fresh = TamSession(self.config)
            return self._send(fresh, fresh.start(now))
        token = token_of(body) or b""
        if token not in self._sessions:
            return None
        session = self._sessions.pop(token)
        events = session.receive(body, now)
        self.events.extend(events)
        for event in events:
            if isinstance(event, EvidenceReceived):
                assert event.challenge is not None and session.agent_key is not None
                claims = verify_eat(
                    event.evidence,
                    self.attesters,
                    expected_nonce=event.challenge,
                    agent_key=session.agent_key,
                    now=now,
                    max_age=60,
                )
                if self.on_evidence is not None:
                    self.on_evidence(claims, event.challenge)
                self.evidence.append(claims)
                self.challenges.append(event.challenge)
                session.attestation_result(True, claims)
        if session.state is TamState.READY:
            state = next(e for e in events if isinstance(e, DeviceStateReported))
            manifests = [
                *self.push,
                *(self.catalog[r.component_id] for r in state.requested if r.component_id in self.catalog),
            ]
            unneeded = list(state.unneeded)
            if manifests or unneeded:
                return self._send(session, session.send_update(manifests, unneeded, now))
        session.close()
        return None

    def _send(self, session: TamSession, message: bytes) -> bytes:
        token = token_of(message)
        assert token is not None
        self._sessions[token] = session
        return message


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerThread:
    """uvicorn serving ``app`` on 127.0.0.1:``port`` in a thread (HTTPS with ``tls=(cert, key)``)."""

    def __init__(self, app: Any, port: int | None = None, tls: tuple[Path, Path] | None = None) -> None:
        self.port = port or free_port()
        kwargs: dict[str, Any] = {}
        if tls is not None:
            kwargs = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1])}
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error", lifespan="off", **kwargs)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.scheme = "https" if tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/tam"

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def serve(app: Any, port: int | None = None, tls: tuple[Path, Path] | None = None) -> Iterator[ServerThread]:
    server = ServerThread(app, port, tls).start()
    try:
        yield server
    finally:
        server.stop()


def make_tls(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``host`` signed by it: (ca.pem, server.pem, server-key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "veritee test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return ca_path, cert_path, key_path


class Dispatch:
    """An ASGI app forwarding to ``target`` (so that one server can serve each test's own TAM)."""

    def __init__(self) -> None:
        self.target: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert self.target is not None, "no TAM app set for this test"
        await self.target(scope, receive, send)
