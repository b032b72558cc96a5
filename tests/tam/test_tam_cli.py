"""The TAM command line: ``tam token create`` on the database, the admin clients (tc, device, deploy, undeploy)
against a running TAM, and ``tam serve`` over HTTPS in a subprocess."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from tam_support import (
    APP,
    APP_TEXT,
    APP_UUID_TEXT,
    Device,
    Keys,
    ServerThread,
    make_pki,
    make_service,
    open_db,
    private_pem,
    public_pem,
    tamper_manifest,
)
from typer.testing import CliRunner

from veritee.cli import deploy, device, tam, tc
from veritee.service.broker import Broker
from veritee.service.tam import TamService, authenticate
from veritee.web.tam_app import create_tam_app

runner = CliRunner()
CATALOG = (b"TEEP-Device", b"SecureFS", bytes.fromhex("0a0b0c0d0e0f00010203040506070809"), b"ta")
CATALOG_MANIFEST = (b"TEEP-Device", b"manifests", b"catalog")
CATALOG_TEXT = "TEEP-Device/SecureFS/0x0a0b0c0d0e0f00010203040506070809/ta"


class Cli:
    def __init__(self, service: TamService, url: str, token: str, keys: Keys) -> None:
        self.service, self.url, self.token, self.keys = service, url, token, keys

    def run(self, app: typer.Typer, *args: str, ok: bool = True) -> Any:
        result = runner.invoke(app, [*args, "--tam", self.url, "--token", self.token, "--json"])
        assert (result.exit_code == 0) == ok, result.output
        return json.loads(result.output)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    keys = Keys()
    db = open_db(f"sqlite:///{tmp_path_factory.mktemp('cli') / 'tam.db'}")
    service = make_service(db, keys)
    with ServerThread(create_tam_app(service)) as server:
        yield Cli(service, server.url, service.create_admin_token("cli"), keys)
    db.dispose()


def test_token_create_prints_the_token_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'tokens.db'}"
    created = runner.invoke(tam.app, ["token", "create", "ops", "--db", url, "--json"])
    assert created.exit_code == 0, created.output
    token = json.loads(created.output)["token"]
    plain = runner.invoke(tam.app, ["token", "create", "ci", "--db", url])
    assert plain.exit_code == 0 and plain.output.strip().startswith("vt_")
    db = open_db(url)
    assert authenticate(db, token) == "ops"
    listed = json.loads(runner.invoke(tam.app, ["token", "list", "--db", url, "--json"]).output)
    assert [t["name"] for t in listed] == ["ops", "ci"] and token not in json.dumps(listed)
    assert runner.invoke(tam.app, ["token", "revoke", "ops", "--db", url]).exit_code == 0
    duplicate = runner.invoke(tam.app, ["token", "create", "ci", "--db", url, "--json"])
    assert duplicate.exit_code == 1 and json.loads(duplicate.output)["ok"] is False
    db.dispose()


def test_catalog_commands(cli: Cli, tmp_path: Path) -> None:
    keys = Keys()  # a signer of its own: the other tests' catalog entries do not interfere
    (tmp_path / "vendor.pem").write_text(public_pem(keys.signer))
    signer = cli.run(tc.app, "signer", "add", "catalog-vendor", str(tmp_path / "vendor.pem"))
    assert signer["thumbprint"] == keys.signer.thumbprint().hex()
    assert "catalog-vendor" in [s["name"] for s in cli.run(tc.app, "signer", "list")]

    envelope = tmp_path / "app-v1.suit"
    envelope.write_bytes(keys.envelope(1, b"cli v1", component=CATALOG, manifest_id=CATALOG_MANIFEST))
    added = cli.run(tc.app, "add", str(envelope), "--description", "first")
    assert (added["component_id"], added["sequence_number"], added["description"]) == (CATALOG_TEXT, 1, "first")
    hexed = tmp_path / "app-v2.hex"
    hexed.write_text(keys.envelope(2, b"cli v2", component=CATALOG, manifest_id=CATALOG_MANIFEST).hex())
    cli.run(tc.app, "add", str(hexed))

    bad = tamper_manifest(keys.envelope(3, b"cli v3", component=CATALOG, manifest_id=CATALOG_MANIFEST))
    (tmp_path / "bad.suit").write_bytes(bad)
    refused = cli.run(tc.app, "add", str(tmp_path / "bad.suit"), ok=False)
    assert refused["ok"] is False and "422" in refused["error"]
    listed = cli.run(tc.app, "list", "--component", CATALOG_TEXT)
    assert [t["sequence_number"] for t in listed] == [1, 2]
    cli.run(tc.app, "delete", str(listed[0]["id"]))
    assert [t["sequence_number"] for t in cli.run(tc.app, "list", "--component", CATALOG_TEXT)] == [2]

    text = runner.invoke(tc.app, ["list", "--tam", cli.url, "--token", cli.token])
    assert text.exit_code == 0 and CATALOG_TEXT in text.output and "sequence_number" in text.output
    wrong = runner.invoke(tc.app, ["list", "--tam", cli.url, "--token", "vt_nope"])
    assert wrong.exit_code == 1 and "401" in wrong.output


def test_deploy_device_and_undeploy_commands(cli: Cli) -> None:
    keys = cli.keys
    cli.service.add_signer("vendor", public_pem(keys.signer), exist_ok=True)
    if not cli.service.list_tcs(APP_TEXT):
        cli.service.upload_tc(keys.envelope(5, b"cli v5"))

    root = typer.Typer()  # registered the way veritee.cli.main does it

    @root.callback()
    def _root() -> None:
        """veritee."""

    root.command("deploy")(deploy.deploy)
    root.command("undeploy")(deploy.undeploy)
    first = cli.run(root, "deploy", APP_UUID_TEXT, "--to", "attr:site=paris")
    assert (first["component_id"], first["selector"]) == (APP_TEXT, "attr:site=paris")
    second = cli.run(deploy.deploy_app, APP_TEXT, "--to", "all", "--min-sequence", "2")
    assert second["min_sequence_number"] == 2
    bad = cli.run(deploy.deploy_app, APP_TEXT, "--to", "rack:1", ok=False)
    assert "400" in bad["error"]
    assert len(cli.run(tc.app, "deployments", "--component", APP_TEXT)) == 2

    assert cli.run(root, "undeploy", APP_TEXT, "--from", "all")["deleted"] == [second["id"]]
    assert cli.run(deploy.undeploy_app, "--id", str(first["id"]))["deleted"] == [first["id"]]
    assert cli.run(deploy.undeploy_app, APP_TEXT, ok=False)["ok"] is False
    assert cli.run(deploy.undeploy_app, ok=False)["ok"] is False


def test_device_commands(cli: Cli) -> None:
    keys = cli.keys
    agent = Device(keys)
    view = cli.service.register_device(agent.agent_key, name="edge-1")
    ref = agent.thumbprint
    assert ref in [d["key_thumbprint"] for d in cli.run(device.app, "list")]
    assert cli.run(device.app, "set", ref, "site=lyon", "rack=4", "--name", "edge-one")["attributes"] == {
        "site": "lyon",
        "rack": "4",
    }
    assert cli.run(device.app, "set", str(view.id), "rack=")["attributes"] == {"site": "lyon"}
    assert cli.run(device.app, "set", ref, "oops", ok=False)["ok"] is False
    blocked = cli.run(device.app, "block", ref, "--reason", "verifier: PCR 7 changed")
    assert blocked["blocked"] and blocked["blocked_reason"] == "verifier: PCR 7 changed"
    assert not cli.run(device.app, "unblock", ref)["blocked"]
    shown = cli.run(device.app, "show", ref, "--plan")
    assert shown["name"] == "edge-one" and set(shown["plan"]) == {"install", "remove", "skipped"}
    text = runner.invoke(device.app, ["show", ref, "--plan", "--tam", cli.url, "--token", cli.token])
    assert text.exit_code == 0 and "attestation_status: none" in text.output and "next update:" in text.output
    assert cli.run(device.app, "show", "nosuch", ok=False)["ok"] is False


# --- tam serve ----------------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_tam_serve_over_https(tmp_path: Path) -> None:
    keys = Keys()
    pki = make_pki(tmp_path)
    (tmp_path / "tam.pem").write_bytes(private_pem(keys.tam))
    (tmp_path / "vendor.pem").write_text(public_pem(keys.signer))
    (tmp_path / "attester.pem").write_text(public_pem(keys.attester))
    db_url = f"sqlite:///{tmp_path / 'served.db'}"
    token = runner.invoke(tam.app, ["token", "create", "ops", "--db", db_url]).output.strip()
    port = _free_port()
    command = [sys.executable, "-c", "from veritee.cli.tam import app; app()", "serve", "--db", db_url,
               "--port", str(port), "--key", str(tmp_path / "tam.pem"), "--tls-cert", str(pki.cert_file),
               "--tls-key", str(pki.key_file), "--signer", str(tmp_path / "vendor.pem"),
               "--attester", str(tmp_path / "attester.pem"), "--log-level", "warning", "--json"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
    try:
        banner = json.loads(process.stdout.readline() if process.stdout else b"{}")
        assert banner["url"] == f"https://127.0.0.1:{port}" and banner["suites"] == [[[18, -9]]]
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "tam serve did not start"
                time.sleep(0.05)
        url = banner["url"]
        common = ["--tam", url, "--token", token, "--ca", str(pki.ca_file), "--json"]
        signers = runner.invoke(tc.app, ["signer", "list", *common])
        assert signers.exit_code == 0, signers.output
        assert [s["name"] for s in json.loads(signers.output)] == ["vendor"]  # from --signer
        (tmp_path / "app.suit").write_bytes(keys.envelope(1, b"served v1"))
        assert runner.invoke(tc.app, ["add", str(tmp_path / "app.suit"), *common]).exit_code == 0
        assert runner.invoke(deploy.deploy_app, [APP_TEXT, "--to", "all", *common]).exit_code == 0
        untrusted = runner.invoke(tc.app, ["list", "--tam", url, "--token", token, "--json"])
        assert untrusted.exit_code == 1  # without --ca the certificate does not verify

        agent = Device(keys)
        assert agent.agent is not None
        with Broker(f"{url}/tam", agent.agent, verify=pki.client_context()) as broker:
            assert broker.request_policy_check().installed != ()
        assert agent.installed() == {APP: b"served v1"}
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_serve_refuses_a_bad_configuration(tmp_path: Path) -> None:
    (tmp_path / "not-a-key.pem").write_text("nope")
    result = runner.invoke(tam.app, ["serve", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--key",
                                     str(tmp_path / "not-a-key.pem"), "--json"])  # fmt: skip
    assert result.exit_code == 1 and json.loads(result.output)["ok"] is False
    keys = Keys()
    (tmp_path / "tam.pem").write_bytes(private_pem(keys.tam))
    key = str(tmp_path / "tam.pem")
    result = runner.invoke(tam.app, ["serve", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--key", key,
                                     "--tls-cert", key, "--json"])  # fmt: skip
    assert result.exit_code == 1 and "tls" in json.loads(result.output)["error"].lower()
