"""Smoke runs of ``python -m bench --quick``: every benchmark runs and reaches the right verdicts on both sides,
and the peer's report is read. Figures are not checked: a benchmark is not a timed test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bench.cli import REPO_ROOT, main
from bench.peer import default_peer_python
from bench.registry import REGISTRY

from helpers import shared_path


@pytest.fixture(scope="module")
def bundle_dir() -> Path:
    return shared_path("tpm", "e2e-swtpm")


def test_quick_run_of_ours(tmp_path: Path, bundle_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--quick", "--no-peer", "--bundle", str(bundle_dir), "--results-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    document = json.loads((tmp_path / "latest.json").read_text())
    assert document["quick"] is True and document["peer"] == "unavailable: --no-peer"
    assert set(document["benchmarks"]) == set(REGISTRY)
    for name, row in document["benchmarks"].items():
        assert row["ours"]["valid"] is True, (name, row)
        assert row["ours"]["stats"]["n"] == REGISTRY[name].quick.ours
        if REGISTRY[name].peer is None:  # measured against its own target, not against Keylime
            assert row["peer"] is None, (name, row)
        else:
            assert row["peer"] == {"unavailable": "unavailable: --no-peer"}
        assert name in out
    assert document["benchmarks"]["ima"]["ours"]["units"]["entries"] == 826


def test_only_and_unknown(tmp_path: Path, bundle_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--quick", "--no-peer", "--bundle", str(bundle_dir), "--results-dir", str(tmp_path)]
    assert main([*args, "--only", "eventlog"]) == 0
    assert set(json.loads((tmp_path / "latest.json").read_text())["benchmarks"]) == {"eventlog"}
    with pytest.raises(SystemExit):
        main([*args, "--only", "nope"])
    assert main(["--bundle", str(tmp_path / "none")]) == 2
    capsys.readouterr()


@pytest.mark.slow
def test_quick_run_with_keylime(tmp_path: Path, bundle_dir: Path) -> None:
    peer = default_peer_python(REPO_ROOT)
    if not peer.exists():
        pytest.skip(f"Keylime peer venv not installed ({peer}): run `bash bench/setup_keylime.sh`")
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--bundle", str(bundle_dir), "--results-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads((tmp_path / "latest.json").read_text())
    assert document["peer"]["version"] == "7.14.3"
    assert document["peer"]["config"]["measured_boot_evaluate"] == "always"
    for name, row in document["benchmarks"].items():
        assert row["status"] == "ok", (name, row["status"])
        if REGISTRY[name].peer is None:  # measured against its own target (the fleet benchmark)
            continue
        assert row["peer"]["valid"] is True
        assert row["peer"]["stats"]["n"] == REGISTRY[name].quick.peer
        assert row["ratio"] > 0
        assert {item["verdict"] for item in row["peer"]["verdicts"].values()} == {"PASS", "FAIL"}
    assert document["benchmarks"]["full"]["peer"]["verdicts"]["kernel_cmdline_changed"]["verdict"] == "FAIL"
    assert "keylime 7.14.3" in done.stdout
