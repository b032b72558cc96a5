"""The foundation: error families, the CLI entry point, the shared-data helper and the layering check itself."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import veritee
from helpers import REPO_ROOT, shared_root
from veritee import errors
from veritee.cli.main import app


def test_error_families_inherit_the_builtins() -> None:
    assert issubclass(errors.DecodeError, errors.VeriteeError)
    assert issubclass(errors.DecodeError, ValueError)
    assert issubclass(errors.NotFoundError, LookupError)
    assert issubclass(errors.DeviceError, OSError)
    assert issubclass(errors.SignatureError, errors.VerificationError)
    assert str(errors.DecodeError("bad length", offset=12)) == "bad length (at offset 12)"
    assert errors.DecodeError("x", offset=7).offset == 7


def test_every_error_is_a_veritee_error() -> None:
    for name in dir(errors):
        obj = getattr(errors, name)
        if isinstance(obj, type) and issubclass(obj, BaseException):
            assert issubclass(obj, errors.VeriteeError), name


def test_cli_version_and_help() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"veritee {veritee.__version__}"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "demo" in result.output


def test_console_script_installed() -> None:
    exe = Path(sys.executable).parent / "veritee"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"veritee {veritee.__version__}"


def test_shared_data_is_located_from_the_repo_root() -> None:
    assert shared_root() == REPO_ROOT.parent / "shared" or shared_root().is_dir()


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "lint-imports"
    return subprocess.run(
        [str(exe), "--config", str(REPO_ROOT / "pyproject.toml"), "--no-cache"],
        cwd=tree,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(tree / "src"), "PATH": "/usr/bin:/bin"},
    )


def test_layering_check_passes_on_the_tree(tmp_path: Path) -> None:
    shutil.copytree(REPO_ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    result = _lint_imports(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("core", ["tpm", "suit", "appraisal"])
@pytest.mark.parametrize("layer", ["store", "service", "web", "cli"])
def test_layering_check_fails_on_a_bad_import(tmp_path: Path, core: str, layer: str) -> None:
    shutil.copytree(REPO_ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    bad = tmp_path / "src" / "veritee" / core / "_bad_import.py"
    bad.write_text(f"import veritee.{layer}\n")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert f"veritee.{core}._bad_import -> veritee.{layer}" in result.stdout
