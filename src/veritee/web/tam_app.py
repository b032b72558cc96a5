"""The TAM web application: ``POST /tam`` (TEEP over HTTP) and the admin API under ``/admin`` (OpenAPI at
``/openapi.json``). Run it with uvicorn (``veritee tam serve``, or :func:`uvicorn_config` for a custom server).

The interactive documentation pages are off: every response carries ``Content-Security-Policy: default-src
'none'``, which such pages cannot work under, and a TAM serves no browser content.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from veritee import __version__
from veritee.errors import ConfigError
from veritee.service.tam import TamService
from veritee.service.tam_teep import TeepEndpoint
from veritee.web.errors import install_error_handlers
from veritee.web.tam_admin import admin_router
from veritee.web.teep_http import SecurityHeadersMiddleware, TeepFastPath, teep_router

__all__ = ["TamAppLimits", "create_tam_app", "uvicorn_config"]


@dataclass(frozen=True)
class TamAppLimits:
    """Largest request bodies accepted: a TEEP message, and an uploaded SUIT envelope."""

    max_teep_body: int = 1024 * 1024
    max_envelope: int = 16 * 1024 * 1024


def create_tam_app(service: TamService, *, limits: TamAppLimits | None = None) -> FastAPI:
    """A FastAPI app serving ``service``; the TEEP sessions live in the app's :class:`TeepEndpoint`."""
    limits = limits or TamAppLimits()
    endpoint = TeepEndpoint(service)
    app = FastAPI(
        title="veritee TAM",
        version=__version__,
        description="Trusted Application Manager: TEEP over HTTP at POST /tam, admin API under /admin.",
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
    )
    app.state.tam_service = service
    app.state.teep_endpoint = endpoint
    install_error_handlers(app)
    app.add_middleware(TeepFastPath, endpoint=endpoint, max_body=limits.max_teep_body)  # POST /tam, the hot path
    app.add_middleware(SecurityHeadersMiddleware)  # added last: outside TeepFastPath, so it covers its answers
    app.include_router(teep_router(endpoint, max_body=limits.max_teep_body))  # the documented route behind it
    app.include_router(admin_router(service, endpoint, max_envelope=limits.max_envelope))
    return app


def uvicorn_config(
    app: FastAPI,
    *,
    host: str = "127.0.0.1",
    port: int = 8443,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    log_level: str = "info",
) -> uvicorn.Config:
    """A uvicorn configuration for ``app`` (HTTPS when ``tls_cert`` and ``tls_key`` are given)."""
    options: dict[str, Any] = {}
    if tls_cert is not None or tls_key is not None:
        if tls_cert is None or tls_key is None:
            raise ConfigError("HTTPS needs both --tls-cert and --tls-key")
        options = {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)}
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        server_header=False,
        date_header=True,
        proxy_headers=False,
        access_log=log_level == "debug",
        **options,
    )
