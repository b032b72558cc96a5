"""``veritee verifier`` commands other than serve (serve runs as a subprocess in test_leases)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner
from verifier_support import ServiceFactory, SoftNode, TestCa, enroll

from helpers import shared_path
from veritee.cli import verifier as verifier_cli
from veritee.service.verifier_policies import get_policy


def test_policy_set_from_keylime_files_and_versions(module_db_url: str, make_service: ServiceFactory) -> None:
    service = make_service()
    root = shared_path("tpm", "e2e-swtpm")
    args = ["policy-set", "default", "--db", module_db_url, "--runtime-policy", str(root / "runtime_policy.json")]
    first = CliRunner().invoke(verifier_cli.app, [*args, "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["version"] == 1
    same = CliRunner().invoke(verifier_cli.app, [*args, "--json"])
    assert json.loads(same.output)["version"] == 1  # unchanged content: same version
    both = CliRunner().invoke(verifier_cli.app, [*args, "--boot-policy", str(root / "mb_refstate.json"), "--json"])
    assert json.loads(both.output)["version"] == 2
    ref, policy = get_policy(service.db, "default")
    assert ref.version == 2 and policy.boot is not None and policy.runtime is not None


def test_policy_set_errors(module_db_url: str, make_service: ServiceFactory, tmp_path: Path) -> None:
    make_service()
    bad = tmp_path / "bad.json"
    bad.write_text('{"digests": 3}')
    result = CliRunner().invoke(
        verifier_cli.app, ["policy-set", "x", "--db", module_db_url, "--runtime-policy", str(bad), "--json"]
    )
    assert result.exit_code == 2 and json.loads(result.output)["error"]["type"] == "PolicyError"
    missing = CliRunner().invoke(verifier_cli.app, ["policy-set", "x", "--db", module_db_url])
    assert missing.exit_code == 2 and "give --runtime-policy" in missing.output
    absent = CliRunner().invoke(
        verifier_cli.app, ["policy-set", "x", "--db", module_db_url, "--boot-policy", str(tmp_path / "none")]
    )
    assert absent.exit_code == 2 and "cannot read" in absent.output


def test_nodes_listing(module_db_url: str, make_service: ServiceFactory, ca: TestCa) -> None:
    service = make_service()
    node = SoftNode("node-1", ca)
    enroll(service, node)
    service.push_evidence("node-1", node.answer(service.challenge("node-1")))
    result = CliRunner().invoke(verifier_cli.app, ["nodes", "--db", module_db_url, "--json"])
    assert result.exit_code == 0, result.output
    [shown] = json.loads(result.output)["nodes"]
    assert shown["node_id"] == "node-1" and shown["state"] == "trusted"
    text = CliRunner().invoke(verifier_cli.app, ["nodes", "--db", module_db_url, "--state", "untrusted"])
    assert text.exit_code == 0 and text.output == ""


def test_serve_refuses_a_bad_configuration(module_db_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(verifier_cli.app, ["serve", "--db", module_db_url, "--json"])
    assert result.exit_code == 2 and "EK CA" in json.loads(result.output)["error"]["message"]
    result = CliRunner().invoke(
        verifier_cli.app,
        ["serve", "--db", module_db_url, "--allow-uncertified-ek", "--remediation", "tam-block", "--json"],
    )
    assert result.exit_code == 2 and "tam_url" in result.output
    notpem = tmp_path / "k.pem"
    notpem.write_text("nope")
    result = CliRunner().invoke(
        verifier_cli.app, ["serve", "--db", module_db_url, "--allow-uncertified-ek", "--ear-key", str(notpem)]
    )
    assert result.exit_code == 2 and "PEM private key" in result.output
