"""Request bodies of the verifier API: JSON, size-limited, malformed input as typed errors."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from veritee import errors

__all__ = ["MAX_BODY", "optional_json", "read_json"]

MAX_BODY = 64 * 1024 * 1024
"""Largest request body accepted (an event log plus a full IMA list fit many times over)."""


async def read_json(request: Request) -> Any:
    """The request body as JSON; DecodeError when it is not JSON, ValidationError when it is too large."""
    raw = await request.body()
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
