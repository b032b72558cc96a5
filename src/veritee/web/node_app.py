"""The node agent's HTTP endpoint for pull mode: the verifier POSTs a challenge to ``/v1/quote``, the agent answers
with its evidence (docs/node-verifier-api.md).

:func:`create_node_app` builds the FastAPI app around a :class:`~veritee.service.node_agent.NodeAgent`;
:class:`NodeServer` runs it with uvicorn in a background thread (the CLI and the tests use it), so the agent can
register once it is reachable.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool

from veritee.errors import DecodeError, TransportError, ValidationError
from veritee.service.node_agent import NodeAgent
from veritee.service.node_wire import Challenge
from veritee.web.errors import install_error_handlers

__all__ = ["NodeServer", "create_node_app"]


async def _json_body(request: Request) -> Any:
    body = await request.body()
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"the request body is not JSON: {exc}") from None


def create_node_app(agent: NodeAgent) -> FastAPI:
    """The pull-mode endpoint of ``agent``: ``POST /v1/quote`` and ``GET /v1/health``."""
    app = FastAPI(title="veritee node agent", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    install_error_handlers(app)

    @app.post("/v1/quote")
    async def quote(request: Request) -> dict[str, Any]:
        challenge = Challenge.from_json(await _json_body(request))
        evidence = await run_in_threadpool(agent.answer, challenge)
        return evidence.to_json()

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        identity = await run_in_threadpool(lambda: agent.identity)
        return {
            "node_id": agent.config.node_id,
            "mode": agent.config.mode.value,
            "registered_with": identity.registered_with,
            "ak_name": identity.ak.name.hex(),
        }

    return app


class NodeServer:
    """uvicorn serving :func:`create_node_app` on ``host:port`` in a daemon thread (port 0: any free port)."""

    def __init__(self, agent: NodeAgent, host: str, port: int, *, log_level: str = "warning") -> None:
        if not host:
            raise ValidationError("no host to listen on")
        config = uvicorn.Config(
            create_node_app(agent), host=host, port=port, log_level=log_level, access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="veritee-node-http", daemon=True)

    def start(self, timeout: float = 10.0) -> NodeServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise TransportError("the node agent's HTTP server did not start (is the address in use?)")
            if time.monotonic() > deadline:
                raise TransportError(f"the node agent's HTTP server did not start within {timeout} s")
            time.sleep(0.01)
        return self

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        for server in self._server.servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        raise TransportError("the node agent's HTTP server is not listening")

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C: uvicorn runs in a thread, so the caller handles signals)."""
        while self._thread.is_alive():
            self._thread.join(0.5)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(10)

    def __enter__(self) -> NodeServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
