"""Interop: ``veritee agent`` (Broker + software TEE) against veritee's own TAM web application, over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_tam import ServerThread
from agent_world import APP, APP_MANIFEST, PAYLOAD, Keys
from typer.testing import CliRunner

from veritee.cli import agent as agent_cli
from veritee.cose import CoseKey
from veritee.service.tam import TamService, TamServiceConfig
from veritee.service.tam_attest import AttestationConfig
from veritee.service.tee_agent import StateLayout, open_tee, public_pem
from veritee.store.db import Database, DatabaseConfig
from veritee.web.tam_app import create_tam_app

APP_TEXT = f"TEEP-Device/SecureFS/0x{APP[2].hex()}/ta"
runner = CliRunner()


def invoke(*args: str) -> tuple[int, Any]:
    result = runner.invoke(agent_cli.app, [*args, "--json"])
    return result.exit_code, json.loads(result.output.strip().splitlines()[-1])


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "agent"


@pytest.fixture
def real_tam(tmp_path: Path, keys: Keys, state: Path) -> Iterator[tuple[TamService, str]]:
    code, identity = invoke("identity", "--state-dir", str(state))
    assert code == 0
    attester = CoseKey.from_pem(identity["attestation_key"]["pem"].encode())
    db = Database(DatabaseConfig(url=f"sqlite:///{tmp_path / 'tam.db'}"))
    db.upgrade()
    config = TamServiceConfig(tam_keys=(keys.tam, keys.tam_ed25519), attestation=AttestationConfig((attester,)))
    service = TamService(db, config)
    service.add_signer("vendor", public_pem(keys.tc_signer).decode())
    server = ServerThread(create_tam_app(service)).start()
    try:
        yield service, server.url
    finally:
        server.stop()
        db.dispose()


def test_the_agent_cli_installs_from_the_veritee_tam(
    keys: Keys, tmp_path: Path, state: Path, real_tam: tuple[TamService, str]
) -> None:
    service, url = real_tam
    (tmp_path / "tam.pem").write_bytes(public_pem(keys.tam))
    (tmp_path / "tam-ed.pem").write_bytes(public_pem(keys.tam_ed25519))
    (tmp_path / "signer.pem").write_bytes(public_pem(keys.tc_signer))
    trust = ["--tam-key", str(tmp_path / "tam.pem"), "--tam-key", str(tmp_path / "tam-ed.pem")]
    trust += ["--tc-signer", str(tmp_path / "signer.pem")]
    service.upload_tc(keys.envelope(1))
    code, result = invoke("run", "--tam", url, "--state-dir", str(state), *trust)
    assert code == 0 and result["ok"] and result["installed"] == []  # enrolled, nothing deployed yet
    thumbprint = invoke("identity", "--state-dir", str(state))[1]["teep_key"]["thumbprint"]
    service.add_deployment(APP_TEXT, f"device:{thumbprint}")
    code, result = invoke("run", "--tam", url, "--state-dir", str(state))  # trust anchors persisted
    assert code == 0 and result["ok"], result
    assert [c["id"] for c in result["installed"]] == [[p.hex() for p in APP_MANIFEST]]
    assert open_tee(StateLayout(state)).read(APP) == PAYLOAD
    assert service.device(thumbprint).installed == {APP_TEXT: 1}
