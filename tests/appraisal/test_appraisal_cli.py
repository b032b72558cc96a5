"""``veritee appraise`` and ``veritee policy`` on copies of the e2e-swtpm bundle."""

from __future__ import annotations

import json
from pathlib import Path

from appraisal_support import copy_bundle
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from typer.testing import CliRunner

from veritee.appraisal.ear import TrustTier, verify_jwt
from veritee.cli import appraise, policy

runner = CliRunner()


def test_appraise_bundle_passes(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    result = runner.invoke(appraise.app, ["--bundle", str(bundle)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("PASS")
    result = runner.invoke(appraise.app, ["--bundle", str(bundle), "--json"])
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["passed"] is True and report["findings"] == [] and report["ima_next_line"] == 826


def test_appraise_failure_exits_1_with_findings(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    (bundle / "nonce.hex").write_text("00" * 20 + "\n")
    result = runner.invoke(appraise.app, ["--bundle", str(bundle), "--json"])
    assert result.exit_code == 1
    assert [f["id"] for f in json.loads(result.output)["findings"]] == ["quote.nonce_mismatch"]
    result = runner.invoke(appraise.app, ["--bundle", str(bundle)])
    assert result.exit_code == 1 and "quote.nonce_mismatch" in result.output


def test_appraise_unusable_input_exits_2(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    (bundle / "quote.pcrs").unlink()
    result = runner.invoke(appraise.app, ["--bundle", str(bundle), "--json"])
    assert result.exit_code == 2 and "quote.pcrs" in json.loads(result.output)["error"]["message"]
    bundle = copy_bundle(tmp_path / "second")
    (bundle / "runtime_policy.json").write_text("{broken")
    assert runner.invoke(appraise.app, ["--bundle", str(bundle)]).exit_code == 2
    assert runner.invoke(appraise.app, ["--bundle", str(tmp_path / "nowhere")]).exit_code == 2


def test_appraise_with_explicit_policies_and_ear(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    refstate = json.loads((bundle / "mb_refstate.json").read_text())
    refstate["kernels"][0]["kernel_cmdline"] = "other"
    changed = tmp_path / "refstate.json"
    changed.write_text(json.dumps(refstate))
    key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "ear.pem"
    pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    args = ["--bundle", str(bundle), "--boot-policy", str(changed), "--ear-key", str(pem), "--json"]
    result = runner.invoke(appraise.app, args)
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert [f["id"] for f in report["findings"]] == ["boot.kernel_cmdline_mismatch"]
    ear = verify_jwt(report["ear"], key.public_key(), expected_nonce=bytes.fromhex((bundle / "nonce.hex").read_text()))
    assert ear.submods["platform"].status is TrustTier.CONTRAINDICATED


def test_policy_create_from_bundle_passes_it(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    out = tmp_path / "created.json"
    result = runner.invoke(policy.app, ["create", "--from-bundle", str(bundle), "-o", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["runtime"]["paths"] == 816
    assert json.loads(out.read_text())["format"] == "veritee.policy"
    result = runner.invoke(appraise.app, ["--bundle", str(bundle), "--policy", str(out)])
    assert result.exit_code == 0, result.output
    assert runner.invoke(policy.app, ["check", str(out)]).exit_code == 0


def test_policy_import_and_check(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    out = tmp_path / "imported.json"
    result = runner.invoke(
        policy.app,
        [
            "import",
            "--keylime-runtime",
            str(bundle / "runtime_policy.json"),
            "--keylime-refstate",
            str(bundle / "mb_refstate.json"),
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    # our document used for either policy option
    result = runner.invoke(
        appraise.app, ["--bundle", str(bundle), "--runtime-policy", str(out), "--boot-policy", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    checked = runner.invoke(policy.app, ["check", str(out), "--json"])
    assert json.loads(checked.output)["boot"]["dbx"] == 371
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"format": "veritee.policy", "version": 1, "boot": {"secure_boot": "maybe"}}))
    result = runner.invoke(policy.app, ["check", str(broken), "--json"])
    assert result.exit_code == 2 and "secure_boot" in json.loads(result.output)["error"]["message"]
    assert runner.invoke(policy.app, ["import", "-o", str(out)]).exit_code == 2
