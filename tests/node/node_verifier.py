"""A small verifier for the node agent's tests, written against the node <-> verifier API contract.

It does what the contract says a verifier does, with the real cores: the EK certificate chain and key are checked
with ``cryptography``, the credential is made with :func:`veritee.tpm.credential.make_credential`, evidence is
appraised with :func:`veritee.appraisal.appraise` (incremental IMA state and node state kept per node). It parses
the JSON by hand (not with the agent's own ``node_wire``), so an encoding mistake on the agent's side shows.
"""

from __future__ import annotations

import base64
import hmac
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from cryptography import x509
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from veritee.appraisal import Appraisal, Evidence, NodeState, appraise
from veritee.appraisal.policy import CompiledPolicy
from veritee.tpm.credential import make_credential
from veritee.tpm.pcrs import parse_tpm2tools_pcr_blob
from veritee.tpm.public import TpmtPublic

PCR_SELECTION = {"sha256": [*range(11), 14]}


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def _e64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class Node:
    node_id: str
    ak_public: bytes
    ek_public: bytes
    agent_url: str | None
    attributes: dict[str, str]
    challenge_id: str
    secret: bytes
    active: bool = False
    state: NodeState | None = None
    nonce: bytes | None = None
    challenges: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    appraisals: list[Appraisal] = field(default_factory=list)


class TestVerifier:
    """In-memory verifier. ``wrong_name`` makes credentials for another AK name (the TPM must refuse them);
    ``wrong_secret`` checks activations against another secret than the one sent (the node must be refused)."""

    __test__ = False  # not a pytest class

    def __init__(self, ca_pem: bytes, policy: CompiledPolicy, *, wrong_name: bool = False) -> None:
        self.ca = x509.load_pem_x509_certificate(ca_pem)
        self.policy = policy
        self.wrong_name = wrong_name
        self.wrong_secret = False
        self.nodes: dict[str, Node] = {}
        self.registrations = 0
        self.refused_activations = 0
        self.app = self._build()

    # --- the contract's routes ----------------------------------------------------------------------------------
    def _build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/nodes", status_code=201)
        async def register(request: Request) -> Any:
            body = await request.json()
            ek_public = _b64(body["ek_public"])
            ak_public = _b64(body["ak_public"])
            cert = x509.load_der_x509_certificate(_b64(body["ek_cert"]))
            cert.verify_directly_issued_by(self.ca)
            ek_key = TpmtPublic.from_tpm2b(ek_public).public_key()
            if cert.public_key().public_numbers() != ek_key.public_numbers():  # type: ignore[union-attr]
                return JSONResponse({"detail": "EK certificate is for another key"}, status_code=422)
            name = TpmtPublic.from_tpm2b(ak_public).name()
            if self.wrong_name:
                name = name[:2] + bytes(len(name) - 2)
            secret = os.urandom(32)
            blob, encrypted = make_credential(ek_public, name, secret)
            challenge_id = os.urandom(8).hex()
            self.nodes[body["node_id"]] = Node(
                body["node_id"], ak_public, ek_public, body["agent_url"], body["attributes"], challenge_id, secret
            )
            self.registrations += 1
            return {"challenge_id": challenge_id, "credential_blob": _e64(blob), "encrypted_secret": _e64(encrypted)}

        @app.post("/v1/nodes/{node_id}/activate")
        async def activate(node_id: str, request: Request) -> Any:
            body = await request.json()
            node = self.nodes.get(node_id)
            if node is None:
                return JSONResponse({"detail": "unknown node"}, status_code=404)
            expected = b"not the secret that was sent" if self.wrong_secret else node.secret
            if body["challenge_id"] != node.challenge_id or not hmac.compare_digest(_b64(body["secret"]), expected):
                self.refused_activations += 1
                return JSONResponse({"detail": "wrong secret"}, status_code=403)
            node.active = True
            return {"state": "registered"}

        @app.get("/v1/nodes/{node_id}/challenge")
        async def challenge(node_id: str) -> Any:
            node = self.nodes.get(node_id)
            if node is None:
                return JSONResponse({"detail": "unknown node"}, status_code=404)
            if not node.active:
                return JSONResponse({"detail": "not activated"}, status_code=403)
            return self.challenge(node)

        @app.post("/v1/nodes/{node_id}/evidence")
        async def evidence(node_id: str, request: Request) -> Any:
            node = self.nodes.get(node_id)
            if node is None or not node.active:
                return JSONResponse({"detail": "unknown node"}, status_code=404)
            result = self.appraise(node, await request.json())
            return self.verdict(result)

        return app

    # --- verifier logic -----------------------------------------------------------------------------------------
    def challenge(self, node: Node) -> dict[str, Any]:
        node.nonce = os.urandom(20)
        ima = node.state.ima if node.state is not None else None
        body = {
            "nonce": _e64(node.nonce),
            "pcr_selection": PCR_SELECTION,
            "ima_offset": ima.next_line if ima is not None else 0,
            "want_event_log": True,  # the appraisal core checks the boot policy against the log in every round
        }
        node.challenges.append(body)
        return body

    def appraise(self, node: Node, body: dict[str, Any]) -> Appraisal:
        assert node.nonce is not None, "evidence without a challenge"
        challenge = node.challenges[-1]
        assert body["ima"]["offset"] == challenge["ima_offset"]
        node.evidence.append(body)
        _, banks = parse_tpm2tools_pcr_blob(_b64(body["pcrs"]))
        evidence = Evidence(
            ak_public=node.ak_public,
            quote=_b64(body["quote"]),
            signature=_b64(body["signature"]),
            pcrs=banks,
            nonce=node.nonce,
            event_log=None if body["event_log"] is None else _b64(body["event_log"]),
            ima_log=body["ima"]["entries"],
            ima_start=node.state.ima if node.state is not None else None,
        )
        node.nonce = None  # a nonce is used once
        result = appraise(evidence, self.policy, previous=node.state)
        node.state = result.node_state
        node.appraisals.append(result)
        return result

    @staticmethod
    def verdict(result: Appraisal) -> dict[str, Any]:
        return {
            "state": "trusted" if result.passed else "failed",
            "passed": result.passed,
            "findings": [item.to_json() for item in result.findings],
        }

    def pull(self, node_id: str) -> Appraisal:
        """A pull round: POST a challenge to the node's agent_url, appraise what it answers."""
        node = self.nodes[node_id]
        assert node.active and node.agent_url is not None
        response = httpx.post(node.agent_url + "/v1/quote", json=self.challenge(node), timeout=30)
        response.raise_for_status()
        return self.appraise(node, response.json())


# --- serving an app in a thread ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port unless given) in a thread; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "test server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
