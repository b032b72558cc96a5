"""Run the Keylime peer (``bench.keylime_peer``, in the peer venv) and read what it printed."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.timing import Stats

__all__ = ["PeerError", "PeerReport", "PeerRow", "default_peer_python", "parse_peer_output", "run_peer"]

SETUP_HINT = "run `bash bench/setup_keylime.sh`"


class PeerError(RuntimeError):
    """The peer could not be run, or printed something that is not its report."""


@dataclass(frozen=True, slots=True)
class PeerRow:
    stats: Stats
    verdicts: Mapping[str, Mapping[str, str]]
    valid: bool
    units: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "stats": self.stats.to_json(),
            "verdicts": {k: dict(v) for k, v in self.verdicts.items()},
            "valid": self.valid,
            "units": dict(self.units),
        }


@dataclass(frozen=True, slots=True)
class PeerReport:
    meta: Mapping[str, Any]
    rows: Mapping[str, PeerRow]


def default_peer_python(repo_root: Path) -> Path:
    return repo_root / ".bench-venv" / "keylime" / "bin" / "python"


def _row(name: str, data: Any) -> PeerRow:
    if not isinstance(data, dict):
        raise PeerError(f"peer result {name!r} is not an object")
    try:
        stats = Stats.from_json(data.get("stats"))
    except ValueError as exc:
        raise PeerError(f"peer result {name!r}: {exc}") from None
    verdicts = data.get("verdicts")
    if not isinstance(verdicts, dict) or not verdicts:
        raise PeerError(f"peer result {name!r} has no verdicts")
    checked: dict[str, dict[str, str]] = {}
    for variant, item in verdicts.items():
        if (
            not isinstance(item, dict)
            or item.get("verdict") not in ("PASS", "FAIL")
            or item.get("expected") not in ("PASS", "FAIL")
        ):
            raise PeerError(f"peer result {name!r}: verdict for {variant!r} is not PASS/FAIL with an expectation")
        checked[str(variant)] = {"verdict": item["verdict"], "expected": item["expected"]}
    valid = data.get("valid")
    # Recompute validity rather than trust the flag; a flag that disagrees means a broken peer script.
    computed = all(item["verdict"] == item["expected"] for item in checked.values())
    if valid is not computed:
        raise PeerError(f"peer result {name!r}: 'valid' is {valid!r} but the verdicts say {computed}")
    units = data.get("units", {})
    if not isinstance(units, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in units.values()
    ):
        raise PeerError(f"peer result {name!r}: units must map names to counts")
    return PeerRow(stats, checked, computed, {str(k): int(v) for k, v in units.items()})


def parse_peer_output(text: str, names: list[str]) -> PeerReport:
    """Read the peer's JSON report (the last non-empty line of its stdout); every name asked for must be there."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise PeerError("the peer printed nothing")
    try:
        data = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise PeerError(f"the peer's report is not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), dict):
        raise PeerError("the peer's report has no 'benchmarks' object")
    benchmarks: dict[str, Any] = data["benchmarks"]
    missing = [name for name in names if name not in benchmarks]
    if missing:
        raise PeerError(f"the peer's report lacks {', '.join(missing)}")
    meta = {key: value for key, value in data.items() if key != "benchmarks"}
    return PeerReport(meta, {name: _row(name, benchmarks[name]) for name in names})


def run_peer(
    python: Path,
    bundle_dir: Path,
    iterations: Mapping[str, int],
    *,
    repo_root: Path,
    timeout: float,
) -> PeerReport:
    """Run ``python -m bench.keylime_peer`` from ``repo_root`` for the benchmarks in ``iterations`` (name -> N)."""
    if not python.exists():
        raise FileNotFoundError(f"peer venv not found ({python}): {SETUP_HINT}")
    command = [str(python), "-m", "bench.keylime_peer", "--bundle", str(bundle_dir)]
    for name, count in iterations.items():
        command += ["--only", name, f"--{name.replace('_', '-')}", str(count)]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("KEYLIME_", "PYTHON"))}
    try:
        done = subprocess.run(
            command, cwd=repo_root, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise PeerError(f"the peer did not finish within {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise PeerError(f"the peer exited with {done.returncode}:\n{tail}")
    return parse_peer_output(done.stdout, list(iterations))
