"""The cast of the end-to-end TEEP story: a TAM served over HTTPS by uvicorn and backed by a database, and devices
that are real TEEP Agents (each its own state directory: keys, trust anchors, software TEE) talking to it through the
real Broker, rebuilt from disk for every session as ``veritee agent run`` does."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from tam_support import Keys, Pki, ServerThread, make_pki, make_service, open_db, private_pem, public_pem

from veritee.cose import CoseKey
from veritee.service.broker import Broker, RetryPolicy, SessionOutcome
from veritee.service.tam import TamService
from veritee.service.tee import SoftTee
from veritee.service.tee_agent import StateLayout, TrustKind, add_trust_anchor, build_agent, load_identity, open_tee
from veritee.service.tee_crypto import write_private_file
from veritee.service.tee_domains import DomainRules
from veritee.store.db import Database
from veritee.suit.builder import DependencySpec, TrustedComponentSpec, build_envelope
from veritee.web.tam_app import create_tam_app
from veritee.web.tam_client import TamAdminClient, tls_verify

APP = (b"TEEP-Device", b"SecureFS", b"app", b"ta")
APP_MANIFEST = (b"TEEP-Device", b"manifests", b"app")
APP_TEXT = "TEEP-Device/SecureFS/app/ta"
CONFIG = (b"TEEP-Device", b"personalization", b"app", b"config")  # the app's personalization data
CONFIG_MANIFEST = (b"TEEP-Device", b"personalization", b"app-manifest")
OTHER = (b"TEEP-Device", b"SecureFS", b"other", b"ta")
OTHER_MANIFEST = (b"TEEP-Device", b"manifests", b"other")
OTHER_TEXT = "TEEP-Device/SecureFS/other/ta"
SECRET = b"app personalization: api-key=4f1c9a"
# The app and its personalization data form one security domain; every other manifest is a domain of its own.
RULES = DomainRules(((APP_MANIFEST, "app"), (CONFIG_MANIFEST, "app")))


def envelope(keys: Keys, component: tuple[bytes, ...], manifest_id: tuple[bytes, ...], sequence: int,
             payload: bytes, *, dependencies: tuple[DependencySpec, ...] = ()) -> bytes:  # fmt: skip
    spec = TrustedComponentSpec(component_id=component, sequence_number=sequence, payload=payload, integrated=True,
                                manifest_component_id=manifest_id, dependencies=dependencies)  # fmt: skip
    return build_envelope(spec, keys.signer, kid=keys.signer.thumbprint())


def app_envelope(keys: Keys, sequence: int, payload: bytes, *, config_sequence: int = 1) -> bytes:
    """The app at ``sequence``, carrying its personalization data as an integrated dependency manifest."""
    config = envelope(keys, CONFIG, CONFIG_MANIFEST, config_sequence, SECRET)
    return envelope(keys, APP, APP_MANIFEST, sequence, payload,
                    dependencies=(DependencySpec(config, CONFIG_MANIFEST, integrated_key="#config"),))  # fmt: skip


@dataclass
class Tam:
    keys: Keys
    db: Database
    service: TamService
    server: ServerThread
    admin: TamAdminClient
    pki: Pki

    @property
    def url(self) -> str:
        return f"{self.server.url}/tam"

    def components(self, device: SoftDevice) -> dict[str, tuple[int | None, bool]]:
        """What the TAM records of the device's app and other TC: component -> (sequence number, installed)."""
        rows = self.admin.device(device.thumbprint)["components"]
        return {r["component_id"]: (r["sequence_number"], r["installed"]) for r in rows
                if r["component_id"] in (APP_TEXT, OTHER_TEXT)}  # fmt: skip


@contextmanager
def running_tam(db_url: str, directory: Path, keys: Keys) -> Iterator[Tam]:
    """The TAM on ``db_url`` served over HTTPS (a private CA) on a free loopback port; its admin API client."""
    pki = make_pki(directory)
    db = open_db(db_url)
    service = make_service(db, keys)  # trusts keys.attester (the manufacturer) to sign any device's evidence
    token = service.create_admin_token("e2e")
    try:
        with (
            ServerThread(create_tam_app(service), certfile=pki.cert_file, keyfile=pki.key_file) as server,
            TamAdminClient(server.url, token, verify=tls_verify(pki.ca_file), timeout=10) as admin,
        ):
            yield Tam(keys, db, service, server, admin, pki)
    finally:
        db.dispose()


class SoftDevice:
    """A device with its Agent state directory; ``attestation_key`` is the key its manufacturer provisioned to sign
    its evidence (None: the Agent makes its own on first run, a key the TAM does not trust)."""

    def __init__(self, root: Path, tam: Tam, *, attestation_key: CoseKey | None) -> None:
        self.tam = tam
        self.layout = StateLayout(root).create()
        if attestation_key is not None:
            write_private_file(self.layout.attestation_key, private_pem(attestation_key))
        for key in (tam.keys.tam, tam.keys.tam_ed25519):
            add_trust_anchor(self.layout, TrustKind.TAM, public_pem(key).encode())
        add_trust_anchor(self.layout, TrustKind.TC_SIGNER, public_pem(tam.keys.signer).encode())
        self.thumbprint = load_identity(self.layout).teep_key.public().thumbprint().hex()

    def tee(self) -> SoftTee:
        return open_tee(self.layout, rules=RULES)

    def session(self, transport: httpx.BaseTransport | None = None) -> SessionOutcome:
        """One TEEP session (RequestPolicyCheck) with an Agent rebuilt from the state directory."""
        agent = build_agent(load_identity(self.layout), self.tee())
        with Broker(self.tam.url, agent, verify=self.tam.pki.ca_file, timeout=10, retry=RetryPolicy(attempts=1),
                    transport=transport) as broker:  # fmt: skip
            return broker.request_policy_check()

    def holds(self) -> dict[tuple[bytes, ...], bytes]:
        """The story's components in the device's TEE (read through the TEE, whatever their domain)."""
        tee = self.tee()
        found = {cid: tee.read(cid) for cid in (APP, CONFIG, OTHER)}
        return {cid: data for cid, data in found.items() if data is not None}


class Interposer(httpx.BaseTransport):
    """The Broker's HTTPS transport, calling ``before(body)`` once, before it forwards the first non-empty body."""

    def __init__(self, verify: ssl.SSLContext, before: Callable[[bytes], Any]) -> None:
        self.inner = httpx.HTTPTransport(verify=verify)
        self.before: Callable[[bytes], Any] | None = before

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        if body and self.before is not None:
            before, self.before = self.before, None
            before(body)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()
