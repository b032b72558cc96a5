"""TEEP over HTTP, server side (draft-ietf-teep-otrp-over-http): the ``POST /tam`` resource.

* Only POST. An empty body opens a session; any other body must be ``Content-Type: application/teep+cbor`` (else
  415) and at most ``max_body`` bytes (else 413, checked on Content-Length and while reading).
* A TAM message is answered 200 with ``Content-Type: application/teep+cbor``; nothing to send is 204 (the session
  ends). Errors are the problem documents of :mod:`veritee.web.errors` (a body that does not decode or verify is a
  4xx and changes nothing).
* Every response carries ``Cache-Control: no-store``, ``X-Content-Type-Options: nosniff``,
  ``Content-Security-Policy: default-src 'none'`` and ``Referrer-Policy: no-referrer``
  (:class:`SecurityHeadersMiddleware`); no cookie is ever set and no redirect is ever sent (trailing-slash redirects
  are off in :func:`veritee.web.tam_app.create_tam_app`).
"""

from __future__ import annotations

from typing import Final

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from veritee.service.tam_teep import TeepEndpoint

__all__ = ["SECURITY_HEADERS", "TEEP_MEDIA_TYPE", "SecurityHeadersMiddleware", "read_limited", "teep_router"]

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

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in SECURITY_HEADERS}
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names | {b"set-cookie"}]
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


def teep_router(endpoint: TeepEndpoint, *, max_body: int = 1024 * 1024, path: str = "/tam") -> APIRouter:
    """The TEEP resource of a TAM (see the module docstring)."""
    router = APIRouter(tags=["teep"])

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
        content_type = media_type(request.headers.get("content-type"))
        if content_type is not None and content_type != TEEP_MEDIA_TYPE:
            raise HTTPException(status_code=415, detail=f"TEEP messages are {TEEP_MEDIA_TYPE}")
        body = await read_limited(request, max_body)
        if body and content_type is None:
            raise HTTPException(status_code=415, detail=f"a TEEP message needs Content-Type: {TEEP_MEDIA_TYPE}")
        reply = await run_in_threadpool(endpoint.handle, body)
        if reply is None:
            return Response(status_code=204)
        return Response(content=reply, media_type=TEEP_MEDIA_TYPE)

    return router
