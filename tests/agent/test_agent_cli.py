"""``veritee agent``: identity, request-ta / unrequest-ta / run against a loopback TAM, list; exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from agent_tam import Dispatch, LoopbackTam, ServerThread
from agent_world import APP, APP_MANIFEST, OTHER, OTHER_MANIFEST, PAYLOAD, Keys
from fastapi import Response
from typer.testing import CliRunner

from swtpm_harness import start_swtpm
from veritee.cli import agent as agent_cli
from veritee.cose import CoseKey
from veritee.service.tee_agent import StateLayout, open_tee, public_pem
from veritee.service.tee_evidence import decode_platform_evidence, verify_platform_evidence
from veritee.teep.eat import EatClaims

runner = CliRunner()
APP_TEXT = f"TEEP-Device/SecureFS/0x{APP[2].hex()}/ta"
APP_MANIFEST_TEXT = f"TEEP-Device/manifests/0x{APP[2].hex()}"
OTHER_TEXT = "TEEP-Device/SecureFS/other/ta"


def invoke(*args: str) -> tuple[int, Any]:
    result = runner.invoke(agent_cli.app, [*args, "--json"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]
    return result.exit_code, parsed[0] if len(parsed) == 1 else parsed


@dataclass
class Device:
    state: Path
    tam: LoopbackTam
    url: str
    trust: list[str]

    def run(self, command: str, *args: str) -> tuple[int, Any]:
        return invoke(command, *args, "--tam", self.url, "--state-dir", str(self.state), *self.trust)


@pytest.fixture
def device(tmp_path: Path, keys: Keys, loopback: tuple[ServerThread, Dispatch]) -> Iterator[Device]:
    state = tmp_path / "state"
    code, identity = invoke("identity", "--state-dir", str(state))
    assert code == 0
    agent_key = CoseKey.from_pem(identity["teep_key"]["pem"].encode())
    attester = CoseKey.from_pem(identity["attestation_key"]["pem"].encode())
    tam = LoopbackTam(replace(keys.tam_config(), agent_keys=(agent_key,)), (attester,), catalog={APP: keys.envelope(1)})
    (tmp_path / "tam.pem").write_bytes(public_pem(keys.tam))
    (tmp_path / "tam-ed.pem").write_bytes(public_pem(keys.tam_ed25519))
    (tmp_path / "signer.pem").write_bytes(public_pem(keys.tc_signer))
    trust = ["--tam-key", str(tmp_path / "tam.pem"), "--tam-key", str(tmp_path / "tam-ed.pem")]
    trust += ["--tc-signer", str(tmp_path / "signer.pem")]
    server, dispatch = loopback
    dispatch.target = tam.app
    try:
        yield Device(state, tam, server.url, trust)
    finally:
        dispatch.target = None


def test_identity_creates_private_keys_once(tmp_path: Path) -> None:
    code, first = invoke("identity", "--state-dir", str(tmp_path), "--attr", "hwmodel=board-7", "--attr", "oemid=32473")
    assert code == 0
    layout = StateLayout(tmp_path)
    for path in (layout.teep_key, layout.attestation_key):
        assert path.stat().st_mode & 0o777 == 0o600
    code, again = invoke("identity", "--state-dir", str(tmp_path))
    assert again["teep_key"] == first["teep_key"] and again["attestation_key"] == first["attestation_key"]
    assert again["device"]["hwmodel"] == b"board-7".hex() and again["device"]["oemid"] == 32473
    assert first["teep_key"]["thumbprint"] != first["attestation_key"]["thumbprint"]


def test_request_ta_list_run_and_unrequest(device: Device) -> None:
    code, result = device.run("request-ta", APP_TEXT)
    assert code == 0 and result["ok"] and result["exchanges"] == 3
    assert [c["id"] for c in result["installed"]] == [[p.hex() for p in APP_MANIFEST]]
    assert result["pending_requests"] == []
    assert open_tee(StateLayout(device.state)).read(APP) == PAYLOAD

    code, listing = invoke("list", "--state-dir", str(device.state))
    assert code == 0 and len(listing["domains"]) == 1
    (domain,) = listing["domains"]
    assert {c["text"] for c in domain["components"]} == {
        "['TEEP-Device', 'SecureFS', h'8d82573a926d4754935332dc29997f74', 'ta']",
        "['TEEP-Device', 'manifests', h'8d82573a926d4754935332dc29997f74']",
    }
    assert domain["manifests"][0]["sequence_number"] == 1

    code, result = device.run("run")
    assert code == 0 and result["ok"] and result["exchanges"] == 2 and result["installed"] == []

    code, result = device.run("unrequest-ta", APP_MANIFEST_TEXT)
    assert code == 0 and [c["id"] for c in result["unlinked"]] == [[p.hex() for p in APP_MANIFEST]]
    assert open_tee(StateLayout(device.state)).read(APP) is None


def test_a_request_stays_pending_until_the_tam_can_serve_it(device: Device, keys: Keys) -> None:
    code, result = device.run("request-ta", OTHER_TEXT)
    assert code == 0 and result["installed"] == []
    assert [c["id"] for c in result["pending_requests"]] == [[p.hex() for p in OTHER]]
    device.tam.catalog[OTHER] = keys.envelope(1, b"other", component=OTHER, manifest_id=OTHER_MANIFEST)
    code, result = device.run("run")
    assert code == 0 and [c["id"] for c in result["installed"]] == [[p.hex() for p in OTHER_MANIFEST]]
    assert result["pending_requests"] == []


def test_periodic_sessions(device: Device) -> None:
    code, results = device.run("run", "--interval", "0.01", "--sessions", "3")
    assert code == 0 and [r["session"] for r in results] == [1, 2, 3] and all(r["ok"] for r in results)
    assert len(device.tam.requests) == 6


def test_periodic_sessions_survive_a_failed_one(device: Device) -> None:
    device.tam.intercept = lambda number, record: Response(status_code=400) if number == 3 else None
    code, results = device.run("run", "--interval", "0.01", "--sessions", "3")
    assert code == 1  # one session failed
    assert [r["ok"] for r in results] == [True, False, True]
    assert results[1]["error"]["type"] == "HttpStatusError"


def test_human_output(device: Device) -> None:
    result = runner.invoke(
        agent_cli.app, ["request-ta", APP_TEXT, "--tam", device.url, "--state-dir", str(device.state), *device.trust]
    )
    assert result.exit_code == 0 and "session 1: ok" in result.output and "installed: ['TEEP-Device'" in result.output
    listing = runner.invoke(agent_cli.app, ["list", "--state-dir", str(device.state)])
    assert listing.exit_code == 0 and "component ['TEEP-Device', 'SecureFS'" in listing.output


def test_failures_and_exit_codes(device: Device, tmp_path: Path) -> None:
    code, result = device.run("run", "--attr", "nonsense")
    assert code == 2 and "NAME=VALUE" in result["error"]["message"]
    code, result = device.run("run", "--attr", "colour=blue")
    assert code == 2 and result["error"]["type"] == "ConfigError"
    code, result = invoke(
        "run", "--tam", "http://127.0.0.1:9/tam", "--state-dir", str(device.state), "--attempts", "1", *device.trust
    )
    assert code == 1 and result["error"]["type"] == "RetriesExhaustedError"
    code, result = invoke("run", "--tam", device.url, "--state-dir", str(tmp_path / "fresh"))
    assert code == 2 and "no trusted TAM key" in result["error"]["message"]
    code, result = invoke("list", "--state-dir", str(tmp_path / "nowhere"))
    assert code == 2
    code, result = device.run("request-ta", "TEEP-Device//ta")
    assert code == 2
    # the TAM installs something the Agent refuses: exit code 1, the Error is reported
    device.tam.push = [b"\xa0"]
    code, result = device.run("run")
    assert code == 1 and result["errors"][0]["code"] == "MANIFEST_PROCESSING_FAILED"


@pytest.mark.swtpm
def test_run_with_a_tpm(device: Device, tmp_path: Path) -> None:
    seen: list[str] = []

    def verifier(claims: EatClaims, challenge: bytes) -> None:
        evidence = decode_platform_evidence(claims)
        assert evidence is not None
        verify_platform_evidence(evidence, challenge)
        seen.append("verified")

    device.tam.on_evidence = verifier
    with start_swtpm(tmp_path / "tpm") as tpm:
        code, result = device.run("request-ta", APP_TEXT, "--tcti", tpm.tcti)
        assert code == 0 and result["ok"] and seen == ["verified"]
        layout = StateLayout(device.state)
        assert layout.tpm_ak.exists()
        assert layout.sealed_master_key.exists() and not layout.master_key.exists()  # a new TEE: key sealed
        code, listing = invoke("list", "--state-dir", str(device.state), "--tcti", tpm.tcti)
        assert code == 0 and len(listing["domains"]) == 1
    code, listing = invoke("list", "--state-dir", str(device.state))
    assert code == 2 and "sealed by a TPM" in listing["error"]["message"]
