"""Request bodies of the verifier API: JSON, size-limited, malformed input as typed errors."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request, Response

from veritee import errors

__all__ = ["MAX_BODY", "json_body", "json_response", "optional_json", "parse_json", "read_json"]

MAX_BODY = 64 * 1024 * 1024
"""Largest request body accepted (an event log plus a full IMA list fit many times over)."""


async def read_json(request: Request) -> Any:
    """The request body as JSON; DecodeError when it is not JSON, ValidationError when it is too large."""
    return parse_json(await request.body())


def parse_json(raw: bytes) -> Any:
    """A request body as JSON; DecodeError when it is not JSON, ValidationError when it is too large."""
    if len(raw) > MAX_BODY:
        raise errors.ValidationError(f"request body of {len(raw)} bytes exceeds {MAX_BODY}")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errors.DecodeError(f"request body is not JSON: {exc}") from None


async def optional_json(request: Request) -> Any:
    """The body as JSON, or None when there is no body."""
    if not await request.body():
        return None
    return await read_json(request)


def json_body(value: Any) -> bytes:
    """``value`` (plain JSON types only) encoded as FastAPI's JSONResponse encodes it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def json_response(value: Any, status_code: int = 200) -> Response:
    """``value`` (plain JSON types only) as an ``application/json`` response, encoded once (the hot paths skip
    FastAPI's generic encoder)."""
    return Response(json_body(value), status_code=status_code, media_type="application/json")
