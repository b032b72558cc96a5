"""Bearer-token authentication for admin APIs.

:func:`bearer_auth` makes a FastAPI dependency from a token checker (e.g.
:meth:`veritee.service.tam.TamService.authenticate`): a missing, malformed, unknown or revoked token raises
:class:`~veritee.errors.AuthError`, which the shared error mapping turns into 401 with ``WWW-Authenticate: Bearer``.
Put it on the router (``dependencies=[...]``) so that it runs before the request body is read or validated.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from veritee.errors import AuthError

__all__ = ["bearer_auth"]


def bearer_auth(check: Callable[[str | None], str]) -> Callable[..., object]:
    """A dependency returning the authenticated principal's name; ``check`` raises AuthError when it is not valid."""
    scheme = HTTPBearer(auto_error=False, description="an admin token (veritee tam token create NAME)")

    async def authenticate(credentials: HTTPAuthorizationCredentials | None = Depends(scheme)) -> str:
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise AuthError("a bearer token is required (Authorization: Bearer <token>)")
        return await run_in_threadpool(check, credentials.credentials)

    return authenticate
