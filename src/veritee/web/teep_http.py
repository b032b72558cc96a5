"""TEEP over HTTP, server side (draft-ietf-teep-otrp-over-http): the ``POST /tam`` resource.

* Only POST. An empty body opens a session; any other body must be ``Content-Type: application/teep+cbor`` (else
  415) and at most ``max_body`` bytes (else 413, checked on Content-Length and while reading).
* A TAM message is answered 200 with ``Content-Type: application/teep+cbor``; nothing to send is 204 (the session
  ends). Errors are the problem documents of :mod:`veritee.web.errors` (a body that does not decode or verify is a
  4xx and changes nothing).
* :class:`TeepResource` answers a POST; :class:`TeepFastPath` serves it straight from ASGI (the TEEP resource is the
  TAM's hot path), :func:`teep_router` as the FastAPI route that documents it in the OpenAPI document (and answers
  when the fast path is not installed).
* Every response carries ``Cache-Control: no-store``, ``X-Content-Type-Options: nosniff``,
  ``Content-Security-Policy: default-src 'none'`` and ``Referrer-Policy: no-referrer``
  (:class:`SecurityHeadersMiddleware`); no cookie is ever set and no redirect is ever sent (trailing-slash redirects
  are off in :func:`veritee.web.tam_app.create_tam_app`).
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from veritee.errors import VeriteeError
from veritee.service.tam_teep import TeepEndpoint
from veritee.web.errors import problem

__all__ = [
    "SECURITY_HEADERS",
    "TEEP_MEDIA_TYPE",
    "SecurityHeadersMiddleware",
    "TeepFastPath",
    "TeepResource",
    "read_limited",
    "teep_router",
]

TEEP_MEDIA_TYPE: Final = "application/teep+cbor"
SECURITY_HEADERS: Final = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'none'"),
    (b"referrer-policy", b"no-referrer"),
)


class SecurityHeadersMiddleware:
    """Adds the draft's headers to every HTTP response and drops any Set-Cookie (pure ASGI, so error responses
    produced by exception handlers are covered too)."""

    _DROPPED: Final = frozenset({name for name, _ in SECURITY_HEADERS} | {b"set-cookie"})

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                dropped = self._DROPPED
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in dropped]
                message = {**message, "headers": [*headers, *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def media_type(value: str | None) -> str | None:
    if value is None:
        return None
    return value.split(";", 1)[0].strip().lower()


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refusing (413) a declared or actual size above ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(status_code=400, detail="invalid Content-Length")
        if int(declared) > limit:
            raise HTTPException(status_code=413, detail=f"the body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(status_code=413, detail=f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _refused(status: int, detail: str) -> JSONResponse:
    """What FastAPI answers for ``HTTPException(status, detail)``."""
    return JSONResponse({"detail": detail}, status_code=status)


class TeepResource:
    """The answer of the TEEP resource to one POST, from the ASGI scope and receive channel: 415 for a wrong or
    missing Content-Type, 400 / 413 for a bad or too large body, the endpoint's reply as 200 (or 204 when it has
    nothing to send), its typed errors as problem documents."""

    def __init__(self, endpoint: TeepEndpoint, max_body: int = 1024 * 1024) -> None:
        self.endpoint = endpoint
        self.max_body = max_body

    async def respond(self, scope: Scope, receive: Receive) -> Response:
        body = await self._body(scope, receive)
        if isinstance(body, Response):
            return body
        try:
            reply = await run_in_threadpool(self.endpoint.handle, body)
        except VeriteeError as exc:
            return problem(exc)
        return Response(status_code=204) if reply is None else Response(reply, media_type=TEEP_MEDIA_TYPE)

    async def _body(self, scope: Scope, receive: Receive) -> bytes | Response:
        """The request body, or the refusal to answer instead."""
        content_type: str | None = None
        declared: str | None = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = media_type(value.decode("latin-1"))
            elif name == b"content-length":
                declared = value.decode("latin-1")
        if content_type is not None and content_type != TEEP_MEDIA_TYPE:
            return _refused(415, f"TEEP messages are {TEEP_MEDIA_TYPE}")
        limit = self.max_body
        if declared is not None:
            if not declared.isdigit():
                return _refused(400, "invalid Content-Length")
            if int(declared) > limit:
                return _refused(413, f"the body exceeds {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _refused(400, "the client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return _refused(413, f"the body exceeds {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and content_type is None:
            return _refused(415, f"a TEEP message needs Content-Type: {TEEP_MEDIA_TYPE}")
        return body


class TeepFastPath:
    """Serves ``POST <path>`` with :class:`TeepResource` straight from ASGI, before FastAPI's routing, request and
    dependency machinery (the TEEP resource is the TAM's hot path); everything else goes on to ``app``. Install it
    inside :class:`SecurityHeadersMiddleware`; :func:`teep_router` documents the same resource."""

    def __init__(self, app: ASGIApp, endpoint: TeepEndpoint, max_body: int = 1024 * 1024, path: str = "/tam") -> None:
        self.app = app
        self.resource = TeepResource(endpoint, max_body)
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        response = await self.resource.respond(scope, receive)
        await response(scope, receive, send)


def teep_router(endpoint: TeepEndpoint, *, max_body: int = 1024 * 1024, path: str = "/tam") -> APIRouter:
    """The TEEP resource of a TAM as a FastAPI route (see the module docstring)."""
    router = APIRouter(tags=["teep"])
    resource = TeepResource(endpoint, max_body)

    @router.post(
        path,
        summary="TEEP over HTTP",
        response_class=Response,
        responses={
            200: {"content": {TEEP_MEDIA_TYPE: {}}, "description": "the next TAM message (QueryRequest or Update)"},
            204: {"description": "nothing to send: the session ends"},
            400: {"description": "the body is not a valid TEEP message for an open session"},
            413: {"description": "the body is too large"},
            415: {"description": "the body is not application/teep+cbor"},
            422: {"description": "the message does not verify (signature, signer, token)"},
        },
    )
    async def tam(request: Request) -> Response:
        return await resource.respond(request.scope, request.receive)

    return router
