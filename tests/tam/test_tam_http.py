"""The TAM over real HTTP(S): uvicorn on a loopback port, httpx clients, a TEEP Agent driven by a loop and by the
Broker. TEEP over HTTP binding rules (204, 415, 413, headers, no redirects, no cookies), the admin API with bearer
tokens, and HTTPS checked against a private CA."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tam_support import (
    APP,
    APP_TEXT,
    OTHER,
    OTHER_MANIFEST,
    OTHER_TEXT,
    TEEP_TYPE,
    Device,
    Keys,
    Pki,
    ServerThread,
    http_post,
    make_pki,
    make_service,
    open_db,
    public_pem,
    snapshot,
    tamper_manifest,
)

from veritee.service.broker import Broker
from veritee.service.tam import TamService
from veritee.store.db import Database
from veritee.web.tam_app import TamAppLimits, create_tam_app

PLANNED_TEXT = "TEEP-Device/SecureFS/planned/ta"
SECURITY = {
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class Tam:
    def __init__(self, db: Database, service: TamService, server: ServerThread, keys: Keys, token: str) -> None:
        self.db, self.service, self.server, self.keys, self.token = db, service, server, keys, token
        self.client = httpx.Client(base_url=server.url, timeout=10, follow_redirects=False)
        self.admin = httpx.Client(base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {token}"})

    @property
    def teep_url(self) -> str:
        return f"{self.server.url}/tam"


@pytest.fixture(scope="module")
def tam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tam]:
    keys = Keys()
    db = open_db(f"sqlite:///{tmp_path_factory.mktemp('tam') / 'tam.db'}")
    service = make_service(db, keys)
    service.add_signer("vendor", public_pem(keys.signer))
    app = create_tam_app(service, limits=TamAppLimits(max_teep_body=64 * 1024, max_envelope=256 * 1024))
    with ServerThread(app) as server:
        handle = Tam(db, service, server, keys, service.create_admin_token("tests"))
        yield handle
        handle.client.close()
        handle.admin.close()
    db.dispose()


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY.items():
        assert response.headers.get(name) == value, name
    assert "set-cookie" not in response.headers


# --- TEEP over HTTP -----------------------------------------------------------------------------------------------
def test_a_device_enrols_attests_and_installs_over_http(tam: Tam) -> None:
    tam.service.upload_tc(tam.keys.envelope(1, b"http v1"))
    deployment = tam.service.add_deployment(APP_TEXT, "attr:lane=http")
    device = Device(tam.keys)
    post = http_post(tam.client, tam.teep_url)  # checks the binding's headers on every reply
    assert device.session(post)[0] == 1 and device.installed() == {}
    tam.service.update_device(device.thumbprint, attributes={"lane": "http"})
    assert device.session(post)[0] == 2 and device.installed() == {APP: b"http v1"}
    assert tam.service.device(device.thumbprint).installed == {APP_TEXT: 1}
    tam.service.delete_deployment(deployment.id)
    assert device.session(post)[0] == 2 and device.installed() == {}


def test_the_broker_runs_sessions_against_the_tam(tam: Tam) -> None:
    tam.service.upload_tc(tam.keys.envelope(4, b"broker v4", component=OTHER, manifest_id=OTHER_MANIFEST))
    device = Device(tam.keys)
    tam.service.add_deployment(OTHER_TEXT, f"device:{device.thumbprint}")
    assert device.agent is not None
    with Broker(tam.teep_url, device.agent) as broker:
        outcome = broker.request_policy_check()
        assert outcome.ok and outcome.installed == (OTHER_MANIFEST,)
        assert device.installed() == {OTHER: b"broker v4"}
        again = broker.request_policy_check()
        assert again.ok and again.installed == () and again.exchanges == 2  # QueryRequest, then 204


def test_empty_post_opens_a_session_with_a_signed_query_request(tam: Tam) -> None:
    response = tam.client.post("/tam", headers={"Accept": TEEP_TYPE})
    assert response.status_code == 200 and response.headers["content-type"] == TEEP_TYPE
    assert response.content[:1] in (b"\xd8", b"\xd2")  # tagged COSE_Sign (98) / COSE_Sign1 (18)
    assert_security_headers(response)


@pytest.mark.parametrize("content_type", ["application/json", "application/cbor", "text/plain"])
def test_wrong_content_type_is_415(tam: Tam, content_type: str) -> None:
    response = tam.client.post("/tam", content=b"\xa0", headers={"Content-Type": content_type})
    assert response.status_code == 415
    assert_security_headers(response)


def test_a_body_without_content_type_is_415(tam: Tam) -> None:
    response = tam.client.post("/tam", content=b"\x84\x40\xa0\x40\x40")
    assert "content-type" not in response.request.headers
    assert response.status_code == 415


def test_oversized_bodies_are_413(tam: Tam) -> None:
    big = b"\x00" * (64 * 1024 + 1)
    declared = tam.client.post("/tam", content=big, headers={"Content-Type": TEEP_TYPE})
    assert declared.status_code == 413
    assert_security_headers(declared)

    def chunks() -> Iterator[bytes]:
        for _ in range(65):
            yield b"\x00" * 1024

    streamed = tam.client.post("/tam", content=chunks(), headers={"Content-Type": TEEP_TYPE})
    assert streamed.status_code == 413


def test_malformed_teep_bodies_are_4xx_and_change_nothing(tam: Tam) -> None:
    before = snapshot(tam.db)
    for body in (b"\xff", b"\xa0", b"\xd2\x84\x40\xa0\x41\x00\x40", b"\x80" * 10):
        response = tam.client.post("/tam", content=body, headers={"Content-Type": f"{TEEP_TYPE}; charset=x"})
        assert response.status_code == 400, body
        assert response.headers["content-type"] == "application/problem+json"
        assert_security_headers(response)
    assert snapshot(tam.db) == before


def test_no_redirects_and_only_post(tam: Tam) -> None:
    slash = tam.client.post("/tam/", headers={"Accept": TEEP_TYPE})
    assert slash.status_code == 404 and "location" not in slash.headers
    assert tam.client.get("/tam").status_code == 405
    assert tam.client.get("/docs").status_code == 404


# --- the admin API ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/admin/tcs", None),
        ("POST", "/admin/deployments", {"component_id": APP_TEXT, "selector": "all"}),
        ("POST", "/admin/signers", {"name": "evil", "public_key_pem": "x"}),
        ("GET", "/admin/devices", None),
        ("POST", "/admin/devices/1/block", {"reason": "x"}),
        ("DELETE", "/admin/deployments/1", None),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer vt_wrong", "Basic dXNlcjpwYXNz", "Bearer"])
def test_no_or_invalid_token_is_401_and_changes_nothing(
    tam: Tam, method: str, path: str, body: Any, authorization: str | None
) -> None:
    before = snapshot(tam.db)
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = tam.client.request(method, path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert_security_headers(response)
    assert snapshot(tam.db) == before


def test_admin_catalog_and_signers(tam: Tam) -> None:
    keys = tam.keys
    signers = tam.admin.get("/admin/signers").json()
    assert [s["name"] for s in signers] == ["vendor"]
    added = tam.admin.post("/admin/signers", json={"name": "second", "public_key_pem": public_pem(keys.stranger)})
    assert added.status_code == 201
    assert tam.admin.delete(f"/admin/signers/{added.json()['id']}").status_code == 204

    envelope = keys.envelope(9, b"admin v9")
    uploaded = tam.admin.post("/admin/tcs", content=envelope, params={"description": "nine"},
                              headers={"Content-Type": "application/suit-envelope+cose"})  # fmt: skip
    assert uploaded.status_code == 201, uploaded.text
    tc = uploaded.json()
    assert (tc["component_id"], tc["sequence_number"], tc["description"]) == (APP_TEXT, 9, "nine")
    assert tam.admin.get(f"/admin/tcs/{tc['id']}").json() == tc
    assert tc in tam.admin.get("/admin/tcs", params={"component_id": APP_TEXT}).json()
    assert tam.admin.post("/admin/tcs", content=envelope).status_code == 409

    before = snapshot(tam.db)
    untrusted = tam.admin.post("/admin/tcs", content=keys.envelope(10, b"evil", signer=keys.stranger))
    assert untrusted.status_code == 422 and untrusted.json()["error"] == "UntrustedSignerError"
    tampered = tam.admin.post("/admin/tcs", content=tamper_manifest(envelope))
    assert tampered.status_code == 422 and tampered.json()["error"] == "DigestMismatchError"
    assert tam.admin.post("/admin/tcs", content=b"\xff\xff").status_code == 400
    assert tam.admin.post("/admin/tcs", content=b"").status_code == 400
    assert snapshot(tam.db) == before
    assert tam.admin.delete(f"/admin/tcs/{tc['id']}").status_code == 204
    assert tam.admin.get(f"/admin/tcs/{tc['id']}").status_code == 404


def test_admin_devices_and_deployments(tam: Tam) -> None:
    device = Device(tam.keys)
    registered = tam.admin.post(
        "/admin/devices",
        json={"teep_key_pem": public_pem(device.agent_key), "name": "rack-7", "attributes": {"site": "paris"}},
    )
    assert registered.status_code == 201, registered.text
    ref = registered.json()["key_thumbprint"]
    assert ref == device.thumbprint and registered.json()["attributes"] == {"site": "paris"}
    assert tam.admin.post("/admin/devices", json={"name": "no key"}).status_code == 400

    assert not registered.json()["has_attestation_key"]
    patch = {"attributes": {"site": None, "rack": 7}, "attestation_key_pem": public_pem(tam.keys.attester)}
    patched = tam.admin.patch(f"/admin/devices/{ref}", json=patch)
    assert patched.json()["attributes"] == {"rack": 7} and patched.json()["has_attestation_key"]
    bad_key = tam.admin.patch(f"/admin/devices/{ref}", json={"attestation_key_pem": "not a key"})
    assert bad_key.status_code == 400
    blocked = tam.admin.post(f"/admin/devices/{ref}/block", json={"reason": "quarantined by the verifier"})
    assert blocked.json()["blocked"] and blocked.json()["blocked_reason"] == "quarantined by the verifier"
    assert not tam.admin.post(f"/admin/devices/{ref}/unblock").json()["blocked"]
    assert tam.admin.get(f"/admin/devices/{registered.json()['id']}").json()["name"] == "rack-7"
    assert ref in [d["key_thumbprint"] for d in tam.admin.get("/admin/devices").json()]
    assert tam.admin.get("/admin/devices/nosuch").status_code == 404

    planned = (b"TEEP-Device", b"SecureFS", b"planned", b"ta")
    tam.service.upload_tc(tam.keys.envelope(1, b"p1", component=planned, manifest_id=(b"manifests", b"planned")))
    created = tam.admin.post("/admin/deployments", json={"component_id": PLANNED_TEXT, "selector": "attr:rack=7"})
    assert created.status_code == 201 and created.json()["selector"] == "attr:rack=7"
    assert tam.admin.post("/admin/deployments", json={"component_id": APP_TEXT, "selector": "rack"}).status_code == 400
    plan = tam.admin.get(f"/admin/devices/{ref}/plan").json()
    assert [p["component_id"] for p in plan["install"]] == [PLANNED_TEXT]
    listed = tam.admin.get("/admin/deployments", params={"component_id": PLANNED_TEXT}).json()
    assert created.json() in listed
    assert tam.admin.delete(f"/admin/deployments/{created.json()['id']}").status_code == 204
    assert tam.admin.delete(f"/admin/deployments/{created.json()['id']}").status_code == 404


def test_openapi_describes_the_api_and_its_bearer_scheme(tam: Tam) -> None:
    spec = tam.client.get("/openapi.json").json()
    assert {"/tam", "/admin/tcs", "/admin/signers", "/admin/devices", "/admin/deployments"} <= set(spec["paths"])
    assert {"/admin/devices/{ref}/block", "/admin/devices/{ref}/unblock"} <= set(spec["paths"])
    schemes = spec["components"]["securitySchemes"]
    assert any(s.get("scheme") == "bearer" for s in schemes.values())


# --- HTTPS --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def test_https_with_a_private_ca(tam: Tam, pki: Pki, tmp_path: Path) -> None:
    app = create_tam_app(tam.service)
    with ServerThread(app, certfile=pki.cert_file, keyfile=pki.key_file) as server:
        with httpx.Client(verify=pki.client_context(), timeout=10) as client:
            response = client.post(f"{server.url}/tam", headers={"Accept": TEEP_TYPE})
            assert response.status_code == 200 and response.http_version == "HTTP/1.1"
        with httpx.Client(timeout=10) as untrusting, pytest.raises(httpx.ConnectError):
            untrusting.post(f"{server.url}/tam")  # the system store does not know our CA
        other = make_pki(tmp_path)  # a different CA: refused as well
        with httpx.Client(verify=other.client_context(), timeout=10) as wrong, pytest.raises(httpx.ConnectError):
            wrong.post(f"{server.url}/tam")
        device = Device(tam.keys)
        assert device.agent is not None
        with Broker(f"{server.url}/tam", device.agent, verify=pki.client_context()) as broker:
            assert broker.request_policy_check().ok
        assert tam.service.device(device.thumbprint).attestation_status == "affirming"
    assert isinstance(pki.client_context(), ssl.SSLContext)
