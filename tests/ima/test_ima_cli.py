"""``veritee ima replay``."""

from __future__ import annotations

import json
from pathlib import Path

from ima_lines import RUST_KEYLIME_LOG, e2e_dir, read_pcrs_yaml
from typer.testing import CliRunner

from helpers import shared_path
from veritee.cli import ima as ima_cli

runner = CliRunner()


def test_replay_json_matches_the_quoted_pcrs() -> None:
    folder = e2e_dir()
    pcrs = read_pcrs_yaml(folder / "pcrs.yaml")
    result = runner.invoke(ima_cli.app, ["replay", str(folder / "ascii_runtime_measurements"), "--json"])
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)
    assert output == {
        "pcrs": {"sha1": {"10": pcrs["sha1"][10].hex()}, "sha256": {"10": pcrs["sha256"][10].hex()}},
        "entries": 826,
    }
    assert ima_cli.NAME == "ima"


def test_replay_text_and_bank_choice() -> None:
    path = shared_path(*RUST_KEYLIME_LOG)
    result = runner.invoke(ima_cli.app, ["replay", str(path), "--bank", "sha1"])
    assert result.exit_code == 0, result.output
    assert "826 entries, 0 violation(s)" in result.stdout
    assert "sha1    PCR 10: 82231c67a69da98dc5b3aa10f6343d33109225fc" in result.stdout
    assert "sha256" not in result.stdout


def test_replay_reports_an_edited_line(tmp_path: Path) -> None:
    lines = shared_path(*RUST_KEYLIME_LOG).read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace("/lib/", "/lyb/")
    edited = tmp_path / "edited"
    edited.write_text("".join(lines))
    result = runner.invoke(ima_cli.app, ["replay", str(edited), "--json"])
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "TemplateHashMismatchError"
    assert "line 3" in error["message"]
    plain = runner.invoke(ima_cli.app, ["replay", str(edited)])
    assert plain.exit_code == 1
    assert "line 3" in plain.stderr


def test_replay_errors(tmp_path: Path) -> None:
    missing = runner.invoke(ima_cli.app, ["replay", str(tmp_path / "absent"), "--json"])
    assert missing.exit_code == 2
    assert json.loads(missing.stdout)["error"]["type"] == "OSError"
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"10 zz ima-ng\n")
    result = runner.invoke(ima_cli.app, ["replay", str(garbage), "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["type"] == "ImaLogError"
    bank = runner.invoke(ima_cli.app, ["replay", str(garbage), "--bank", "md5", "--json"])
    assert json.loads(bank.stdout)["error"]["type"] == "UnsupportedAlgorithmError"
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    result = runner.invoke(ima_cli.app, ["replay", str(empty), "--json"])
    assert json.loads(result.stdout) == {"pcrs": {"sha1": {"10": "00" * 20}, "sha256": {"10": "00" * 32}}, "entries": 0}
