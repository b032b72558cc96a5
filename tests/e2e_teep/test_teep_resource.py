"""The TEEP resource has two entry points: TeepFastPath (pure ASGI, what create_tam_app serves POST /tam with) and
the FastAPI route of teep_router (what the OpenAPI document describes, answering when the fast path is absent).
Over real HTTP they give the same answers, and a whole session runs through the route alone."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from tam_support import (
    APP,
    APP_TEXT,
    TEEP_TYPE,
    Device,
    Keys,
    ServerThread,
    http_post,
    make_service,
    open_db,
    public_pem,
)

from veritee.service.tam import TamService
from veritee.service.tam_teep import TeepEndpoint
from veritee.web.errors import install_error_handlers
from veritee.web.tam_app import TamAppLimits, create_tam_app
from veritee.web.teep_http import SecurityHeadersMiddleware, teep_router

LIMIT = 4096


@pytest.fixture(scope="module")
def tam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Keys, TamService]]:
    keys = Keys()
    db = open_db(f"sqlite:///{tmp_path_factory.mktemp('resource') / 'tam.db'}")
    service = make_service(db, keys)
    service.add_signer("vendor", public_pem(keys.signer))
    service.upload_tc(keys.envelope(1, b"route v1"))
    service.add_deployment(APP_TEXT, "all")
    yield keys, service
    db.dispose()


def route_only(service: TamService) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, redirect_slashes=False)
    install_error_handlers(app)
    app.add_middleware(SecurityHeadersMiddleware)
    app.include_router(teep_router(TeepEndpoint(service), max_body=LIMIT))
    return app


def answers(url: str) -> list[tuple[int, str | None, str | None]]:
    requests: list[tuple[bytes, dict[str, str]]] = [
        (b"", {}),  # opens a session
        (b"\xa0", {"Content-Type": "application/json"}),  # 415
        (b"\xa0", {}),  # 415: a body without a Content-Type
        (b"\x00" * (LIMIT + 1), {"Content-Type": TEEP_TYPE}),  # 413
        (b"\xff\x00", {"Content-Type": f"{TEEP_TYPE}; charset=x"}),  # 400: not a TEEP message
    ]
    out: list[tuple[int, str | None, str | None]] = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for body, headers in requests:
            response = client.post("/tam", content=body, headers=headers)
            kind = response.headers.get("content-type")
            detail = response.json().get("error", response.json().get("detail")) if kind != TEEP_TYPE else None
            assert response.headers["x-content-type-options"] == "nosniff"
            out.append((response.status_code, kind, detail))
        out.append((client.get("/tam").status_code, None, None))
    return out


def test_the_fast_path_and_the_route_answer_alike(tam: tuple[Keys, TamService]) -> None:
    _keys, service = tam
    limits = TamAppLimits(max_teep_body=LIMIT)
    with ServerThread(create_tam_app(service, limits=limits)) as fast, ServerThread(route_only(service)) as route:
        expected = answers(fast.url)
        assert answers(route.url) == expected
    assert [status for status, _, _ in expected] == [200, 415, 415, 413, 400, 405]
    assert expected[4][1:] == ("application/problem+json", "DecodeError")


def test_a_session_through_the_route_alone(tam: tuple[Keys, TamService]) -> None:
    keys, service = tam
    device = Device(keys)
    with ServerThread(route_only(service)) as route, httpx.Client(timeout=10) as client:
        sent, _events = device.session(http_post(client, f"{route.url}/tam"))
    assert sent == 2 and device.installed() == {APP: b"route v1"}
    assert service.device(device.thumbprint).installed == {APP_TEXT: 1}
