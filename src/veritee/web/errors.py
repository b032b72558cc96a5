"""The one place where veritee errors become HTTP responses (RFC 9457 problem details).

Every FastAPI app calls :func:`install_error_handlers`; route code raises the VeriteeError families and never builds
error responses itself.
"""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from veritee import errors

# Most specific first: the first family an error belongs to decides the status.
STATUS_BY_FAMILY: tuple[tuple[type[errors.VeriteeError], HTTPStatus], ...] = (
    (errors.ForbiddenError, HTTPStatus.FORBIDDEN),
    (errors.AuthError, HTTPStatus.UNAUTHORIZED),
    (errors.NotFoundError, HTTPStatus.NOT_FOUND),
    (errors.ConflictError, HTTPStatus.CONFLICT),
    (errors.UntrustedSignerError, HTTPStatus.UNPROCESSABLE_ENTITY),
    (errors.VerificationError, HTTPStatus.UNPROCESSABLE_ENTITY),
    (errors.UnsupportedAlgorithmError, HTTPStatus.UNPROCESSABLE_ENTITY),
    (errors.DecodeError, HTTPStatus.BAD_REQUEST),
    (errors.ValidationError, HTTPStatus.BAD_REQUEST),
    (errors.PolicyError, HTTPStatus.BAD_REQUEST),
    (errors.SuitError, HTTPStatus.UNPROCESSABLE_ENTITY),
    (errors.ProtocolError, HTTPStatus.BAD_REQUEST),
    (errors.KeyFormatError, HTTPStatus.BAD_REQUEST),
    (errors.ConfigError, HTTPStatus.INTERNAL_SERVER_ERROR),
    (errors.StorageError, HTTPStatus.SERVICE_UNAVAILABLE),
    (errors.TransportError, HTTPStatus.BAD_GATEWAY),
    (errors.DeviceError, HTTPStatus.BAD_GATEWAY),
)


def status_for(exc: errors.VeriteeError) -> HTTPStatus:
    for family, status in STATUS_BY_FAMILY:
        if isinstance(exc, family):
            return status
    return HTTPStatus.INTERNAL_SERVER_ERROR


def problem(exc: errors.VeriteeError) -> JSONResponse:
    status = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == HTTPStatus.UNAUTHORIZED else None
    body = {"type": "about:blank", "title": status.phrase, "status": int(status), "detail": str(exc),
            "error": type(exc).__name__}  # fmt: skip
    return JSONResponse(body, status_code=int(status), headers=headers, media_type="application/problem+json")


async def _handle(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, errors.VeriteeError):  # only registered for VeriteeError
        raise exc
    return problem(exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.VeriteeError, _handle)
