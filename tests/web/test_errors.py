from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from veritee import errors
from veritee.web.errors import install_error_handlers, status_for


def test_every_error_family_has_a_status() -> None:
    assert status_for(errors.AuthError("x")) == 401
    assert status_for(errors.NotFoundError("x")) == 404
    assert status_for(errors.SignatureError("x")) == 422
    assert status_for(errors.DecodeError("x")) == 400
    assert status_for(errors.VeriteeError("x")) == 500


def test_handler_returns_problem_json() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/nf")
    def nf() -> None:
        raise errors.NotFoundError("no device 7")

    @app.get("/auth")
    def auth() -> None:
        raise errors.AuthError("missing bearer token")

    client = TestClient(app)
    r = client.get("/nf")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json() == {"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no device 7",
                        "error": "NotFoundError"}  # fmt: skip
    r = client.get("/auth")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_forbidden_is_403_not_401() -> None:
    assert status_for(errors.ForbiddenError("revoked")) == 403
