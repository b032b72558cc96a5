"""The two requests every push node makes every interval, served without the framework's per-request machinery.

``GET /v1/nodes/{node_id}/challenge`` and ``POST /v1/nodes/{node_id}/evidence`` are the fleet's hot path: at tens of
thousands of nodes per minute the routing, dependency and middleware layers of FastAPI cost more CPU than the
appraisal itself. :class:`VerifierApi` is the FastAPI app with one difference: before its middleware stack it serves
exactly these two requests (method and path as the routes declare them) itself, and passes every other one on.
Behaviour is the routes': the same service calls, the same JSON bodies, the same body limit, errors as the same
problem details (:func:`veritee.web.errors.problem`); the routes stay declared (OpenAPI, and served that way by an
app without the fast path).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from veritee import errors
from veritee.service.node_wire import NodeEvidence
from veritee.service.verifier_service import VerifierService
from veritee.web.errors import problem
from veritee.web.verifier_body import MAX_BODY, json_body, parse_json

__all__ = ["VerifierApi", "serve_push"]

_PREFIX = "/v1/nodes/"
_ROUTES = {("GET", "challenge"), ("POST", "evidence")}
_JSON = [(b"content-type", b"application/json")]


def _route(scope: Scope) -> tuple[str, str] | None:
    """(node id, "challenge" | "evidence") when the request is one of the two, else None."""
    if scope.get("type") != "http":
        return None
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    if not path.startswith(_PREFIX):
        return None
    node_id, _, action = path[len(_PREFIX) :].partition("/")
    if not node_id or (scope.get("method"), action) not in _ROUTES:
        return None
    return node_id, action


class VerifierApi(FastAPI):
    """The verifier's FastAPI app; with ``push_service`` set, it serves the push challenge and evidence requests
    of that service before the middleware stack."""

    push_service: VerifierService | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = self.push_service
        route = _route(scope) if service is not None else None
        if service is None or route is None:
            await super().__call__(scope, receive, send)
            return
        await serve_push(service, route, scope, receive, send)


async def serve_push(
    service: VerifierService, route: tuple[str, str], scope: Scope, receive: Receive, send: Send
) -> None:
    """Answer one push request (``route`` from the path: node id, "challenge" or "evidence")."""
    node_id, action = route
    try:
        if action == "challenge":
            body = json_body((await service.challenge_async(node_id)).to_json())
        else:
            evidence = NodeEvidence.from_json(parse_json(await _read_body(scope, receive)))
            body = json_body(await service.push_evidence_async(node_id, evidence))
    except errors.VeriteeError as exc:
        await problem(exc)(scope, receive, send)
        return
    headers = [*_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(scope: Scope, receive: Receive) -> bytes:
    """The whole request body; ValidationError past :data:`MAX_BODY` (announced or received)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY:
            raise errors.ValidationError(f"request body of {int(value)} bytes exceeds {MAX_BODY}")
    parts: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise errors.ValidationError("the client went away before its request body arrived")
        chunk: Any = message.get("body", b"")
        parts.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            raise errors.ValidationError(f"request body of more than {MAX_BODY} bytes")
        if not message.get("more_body", False):
            return b"".join(parts)
