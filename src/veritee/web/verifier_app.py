"""The verifier's HTTP API (FastAPI): the node API of docs/node-verifier-api.md, the one-shot verification,
admission for orchestrators, the event stream, Prometheus metrics, and the operator API (web.verifier_admin).

Request bodies are read as JSON and checked by the wire types (``veritee.service.node_wire``), so a malformed body
is a typed error mapped to HTTP by ``veritee.web.errors`` like every other. A node that fails to prove its keys
(wrong activation secret) or whose AK is revoked gets 403.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from veritee.service.node_wire import ActivationRequest, NodeEvidence, RegistrationRequest
from veritee.service.verifier_service import VerifierService
from veritee.web.errors import install_error_handlers
from veritee.web.verifier_admin import add_admin_routes
from veritee.web.verifier_body import json_response, read_json
from veritee.web.verifier_fast import VerifierApi
from veritee.web.verifier_stream import add_stream_routes

__all__ = ["create_verifier_app"]


def create_verifier_app(service: VerifierService, *, background: bool = True) -> FastAPI:
    """The app for ``service``; with ``background`` its lifespan runs the attestation loop and the outbox."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if background:
            await run_in_threadpool(service.start_background)
        try:
            yield
        finally:
            if background:
                await run_in_threadpool(service.stop_background)

    app = VerifierApi(title="veritee verifier", version=service.config.verifier_id.build, lifespan=lifespan)
    install_error_handlers(app)
    app.state.verifier = service

    @app.post("/v1/nodes", status_code=201)
    async def register(request: Request) -> dict[str, Any]:
        registration = RegistrationRequest.from_json(await read_json(request))
        challenge = await run_in_threadpool(service.register, registration)
        return challenge.to_json()

    @app.post("/v1/nodes/{node_id}/activate")
    async def activate(node_id: str, request: Request) -> dict[str, Any]:
        activation = ActivationRequest.from_json(await read_json(request))
        state = await run_in_threadpool(service.activate, node_id, activation)
        return {"state": state.value}

    @app.get("/v1/nodes/{node_id}/challenge")
    async def challenge(node_id: str) -> Response:
        return json_response((await service.challenge_async(node_id)).to_json())

    @app.post("/v1/nodes/{node_id}/evidence")
    async def evidence(node_id: str, request: Request) -> Response:
        submitted = NodeEvidence.from_json(await read_json(request))
        return json_response(await service.push_evidence_async(node_id, submitted))

    @app.post("/v1/verify")
    async def verify(request: Request) -> dict[str, Any]:
        body = await read_json(request)
        return await run_in_threadpool(service.verify_once, body)

    @app.get("/v1/admission")
    async def admission(node: str = Query(...), workload: str = Query("")) -> dict[str, Any]:
        decision = await run_in_threadpool(service.admin.admission, node, workload)
        return decision.to_json()

    @app.get("/v1/ear-key")
    def ear_key() -> dict[str, str]:
        """The public key that verifies this verifier's EAR JWTs."""
        return {"format": "spki-pem", "public_key": service.ear_public_key_pem()}

    @app.get("/metrics")
    async def metrics() -> Response:
        body = await run_in_threadpool(service.metrics.render)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"ok": True, "replica": service.config.replica_id, "background": service.running}

    add_stream_routes(app, service)
    add_admin_routes(app, service)
    app.push_service = service  # serves the challenge and evidence routes above without the framework layers
    return app
