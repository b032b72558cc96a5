"""Shared pieces of the TAM tests: keys, envelopes, a real TEEP Agent driven over a transport, a software TPM for
platform evidence, uvicorn in a thread, and a private CA for HTTPS."""

from __future__ import annotations

import datetime
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fastapi import FastAPI
from sqlalchemy import select

from veritee import cbor
from veritee.cose import Algorithm, CoseKey
from veritee.service.tam import TamService, TamServiceConfig
from veritee.service.tam_attest import AttestationConfig
from veritee.service.tee_evidence import PlatformEvidence, quote_nonce
from veritee.store import models
from veritee.store.db import Database, DatabaseConfig
from veritee.suit.builder import TrustedComponentSpec, build_envelope
from veritee.suit.store import InMemoryComponentStore
from veritee.teep.agent import AgentConfig, DeviceClaims, TeepAgent
from veritee.teep.events import Event
from veritee.tpm.alg import HashAlg
from veritee.tpm.attest import PcrSelection
from veritee.tpm.pcrs import build_tpm2tools_pcr_blob
from veritee.tpm.public import TpmtPublic
from veritee.tpm.signer import build_quote_attest, sign_attest

DEVICE = DeviceClaims(
    ueid=b"\x01" + bytes(range(16)),
    oemid=bytes.fromhex("894823"),
    hwmodel=bytes.fromhex("549dcecc8b987c737b44e40f7c635ce8"),
    hwversion=("1.3.4", 1),
    manifests=((60, {1: "https://tam.example/teep-agent.suit", 0: [-16, bytes(32)]}),),
)
APP = (b"TEEP-Device", b"SecureFS", bytes.fromhex("8d82573a926d4754935332dc29997f74"), b"ta")
APP_MANIFEST = (b"TEEP-Device", b"manifests", bytes.fromhex("8d82573a926d4754935332dc29997f74"))
APP_TEXT = "TEEP-Device/SecureFS/0x8d82573a926d4754935332dc29997f74/ta"
APP_UUID_TEXT = "TEEP-Device/SecureFS/8d82573a-926d-4754-9353-32dc29997f74/ta"
OTHER = (b"TEEP-Device", b"SecureFS", b"other", b"ta")
OTHER_MANIFEST = (b"TEEP-Device", b"manifests", b"other")
OTHER_TEXT = "TEEP-Device/SecureFS/other/ta"
TEEP_TYPE = "application/teep+cbor"


def new_key(alg: Algorithm = Algorithm.ESP256) -> CoseKey:
    return CoseKey(CoseKey.generate(alg).key)


def public_pem(key: CoseKey) -> str:
    return key.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def private_pem(key: CoseKey) -> bytes:
    assert not isinstance(key.key, bytes)
    return key.key.private_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass
class Keys:
    tam: CoseKey = field(default_factory=new_key)
    tam_ed25519: CoseKey = field(default_factory=lambda: new_key(Algorithm.Ed25519))
    signer: CoseKey = field(default_factory=new_key)
    stranger: CoseKey = field(default_factory=new_key)
    attester: CoseKey = field(default_factory=new_key)
    verifier: CoseKey = field(default_factory=new_key)

    def envelope(
        self,
        sequence: int,
        payload: bytes,
        *,
        component: tuple[bytes, ...] = APP,
        manifest_id: tuple[bytes, ...] | None = APP_MANIFEST,
        signer: CoseKey | None = None,
    ) -> bytes:
        spec = TrustedComponentSpec(
            component_id=component,
            sequence_number=sequence,
            payload=payload,
            integrated=True,
            manifest_component_id=manifest_id,
        )
        key = signer or self.signer
        return build_envelope(spec, key, kid=key.thumbprint())


def tamper_manifest(envelope: bytes) -> bytes:
    """The envelope with a higher sequence number written into its manifest, without re-signing."""
    body = dict(cbor.decode(envelope))
    manifest = dict(cbor.decode(body[3]))
    manifest[2] = manifest[2] + 1
    body[3] = cbor.encode(manifest)
    return cbor.encode(body)


def open_db(url: str) -> Database:
    db = Database(DatabaseConfig(url=url))
    db.upgrade()
    return db


def make_service(db: Database, keys: Keys, **changes: Any) -> TamService:
    attestation = changes.pop("attestation", AttestationConfig(attester_keys=(keys.attester.public(),)))
    config = TamServiceConfig(tam_keys=(keys.tam, keys.tam_ed25519), attestation=attestation, **changes)
    return TamService(db, config)


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every TAM table (to show that something changed nothing)."""
    tables = (models.Device, models.DeviceComponent, models.TrustedComponent, models.TcSigner, models.Deployment,
              models.TeepToken, models.AdminToken)  # fmt: skip
    out: dict[str, list[tuple[Any, ...]]] = {}
    with db.transaction() as s:
        for table in tables:
            columns = list(table.__table__.columns)
            rows = s.execute(select(*columns)).all()
            out[table.__tablename__] = sorted((tuple(r) for r in rows), key=repr)
    return out


# --- a device -----------------------------------------------------------------------------------------------------
@dataclass
class Device:
    """A TEEP Agent with an in-memory component store, and the loop a Broker runs (bytes in, bytes out)."""

    keys: Keys
    agent_key: CoseKey = field(default_factory=new_key)
    attestation_key: CoseKey | None = None
    store: InMemoryComponentStore = field(default_factory=InMemoryComponentStore)
    present_key: bool = True
    agent: TeepAgent | None = None

    def __post_init__(self) -> None:
        if self.agent is None:
            self.agent = TeepAgent(self.config(), self.store)

    def config(self) -> AgentConfig:
        return AgentConfig(
            agent_key=self.agent_key,
            tam_keys=(self.keys.tam.public(), self.keys.tam_ed25519.public()),
            tc_signer_keys=(self.keys.signer.public(),),
            attestation_key=self.attestation_key or self.keys.attester,
            device=DEVICE,
            present_key=self.present_key,
        )

    @property
    def thumbprint(self) -> str:
        return self.agent_key.public().thumbprint().hex()

    def session(self, post: Callable[[bytes], bytes | None], *, limit: int = 10) -> tuple[int, list[Event]]:
        """Run one session; returns (messages the TAM sent, the Agent's events)."""
        assert self.agent is not None
        body = b""
        events: list[Event] = []
        for sent in range(limit):
            reply = post(body)
            if not reply:
                return sent, events
            more, answer = self.agent.receive(reply, time.time())
            events += more
            if answer is None:
                return sent + 1, events
            body = answer
        raise AssertionError("the session did not end")

    def installed(self) -> dict[tuple[bytes, ...], bytes]:
        return {cid: data for cid, data in self.store.components.items() if cid in (APP, OTHER)}


def http_post(client: httpx.Client, url: str) -> Callable[[bytes], bytes | None]:
    """The Broker's side of TEEP over HTTP for :meth:`Device.session`, checking the binding on every reply."""

    def post(body: bytes) -> bytes | None:
        headers = {"Accept": TEEP_TYPE}
        if body:
            headers["Content-Type"] = TEEP_TYPE
        response = client.post(url, content=body, headers=headers)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"] == "default-src 'none'"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "set-cookie" not in response.headers
        if response.status_code == 204:
            assert response.content == b""
            return None
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == TEEP_TYPE
        return response.content

    return post


# --- a software TPM for platform evidence -------------------------------------------------------------------------
class SoftQuoter:
    """Quotes by a software P-256 AK over fixed PCR values (what a TPM returns), as tee_evidence's source."""

    def __init__(self, pcrs: dict[int, bytes] | None = None, *, wrong_nonce: bool = False) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.public = TpmtPublic.from_public_key(self.key.public_key())
        self.pcrs = pcrs or {0: bytes(32), 7: b"\x07" * 32}
        self.wrong_nonce = wrong_nonce

    def evidence(self, challenge: bytes) -> PlatformEvidence:
        nonce = b"not-the-challenge-nonce!" if self.wrong_nonce else quote_nonce(challenge)
        banks = {HashAlg.SHA256: dict(self.pcrs)}
        selection = PcrSelection.of(HashAlg.SHA256, sorted(self.pcrs))
        attest = build_quote_attest(
            qualified_signer=b"\x00\x0b" + bytes(32), selections=[selection], banks=banks, nonce=nonce
        )
        signature = sign_attest(self.key, attest)
        blob = build_tpm2tools_pcr_blob([selection], banks)
        return PlatformEvidence(self.public.to_tpm2b(), attest, signature.pack(), blob)


# --- uvicorn in a thread ------------------------------------------------------------------------------------------
class ServerThread:
    """uvicorn serving ``app`` on a free loopback port in a daemon thread."""

    def __init__(self, app: FastAPI, *, certfile: Path | None = None, keyfile: Path | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        options: dict[str, Any] = {}
        if certfile is not None:
            options = {"ssl_certfile": str(certfile), "ssl_keyfile": str(keyfile)}
        config = uvicorn.Config(app, log_level="warning", server_header=False, **options)
        self.server = uvicorn.Server(config)
        self.scheme = "https" if certfile is not None else "http"
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@contextmanager
def serving(app: FastAPI, **kwargs: Any) -> Iterator[ServerThread]:
    with ServerThread(app, **kwargs) as server:
        yield server


# --- a private CA for HTTPS ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_pki(directory: Path, host: str = "127.0.0.1") -> Pki:
    """A CA and a server certificate for ``host`` (an IP address SAN), written as PEM files."""
    import ipaddress

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
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return pki
