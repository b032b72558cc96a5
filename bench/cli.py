"""The ``python -m bench`` command: run the registered benchmarks and the Keylime peer, report, write JSON.

Exit status: 0 when every benchmark that ran reached the right verdicts on both sides; 1 when one did not or the peer
failed; 2 for bad arguments or a missing bundle. ``--strict`` also fails (1) on a missed target or an unavailable row.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import bench.fleet  # registers the fleet benchmark
import bench.ours  # noqa: F401  (registers our benchmarks)
from bench.bundle import Bundle, BundleError, default_bundle_dir
from bench.peer import PeerError, PeerReport, PeerRow, default_peer_python, run_peer
from bench.registry import REGISTRY, Benchmark, OurRun
from bench.report import Outcome, machine_info, render_table, write_results
from veritee.errors import VeriteeError

__all__ = ["REPO_ROOT", "main", "run_benchmarks"]

REPO_ROOT = Path(__file__).resolve().parents[1]
PEER_NAME = "keylime 7.14.3"


def _run_ours(benchmark: Benchmark, bundle: Bundle, iterations: int) -> OurRun | str:
    try:
        return benchmark.fn(bundle, iterations)
    except ImportError as exc:  # a part of veritee that is not there yet: the row says so, the others still run
        return f"unavailable: {exc}"
    except VeriteeError as exc:
        return f"error: {type(exc).__name__}: {exc}"


def run_benchmarks(
    names: Sequence[str],
    bundle: Bundle,
    *,
    quick: bool,
    peer_python: Path | None,
    peer_timeout: float,
) -> tuple[list[Outcome], PeerReport | str | None]:
    """Run ours, then the peer once for every selected benchmark that has a peer figure."""
    selected = [REGISTRY[name] for name in names]
    ours = {item.name: _run_ours(item, bundle, item.iterations(quick).ours) for item in selected}
    wanted = {item.peer: item.iterations(quick).peer for item in selected if item.peer is not None}
    peer: PeerReport | str | None = None
    if wanted and peer_python is None:
        peer = "unavailable: --no-peer"
    elif wanted and peer_python is not None:
        try:
            peer = run_peer(peer_python, bundle.root, wanted, repo_root=REPO_ROOT, timeout=peer_timeout)
        except FileNotFoundError as exc:
            peer = f"unavailable: {exc}"
        except PeerError as exc:
            peer = f"failed: {exc}"
    outcomes = []
    for item in selected:
        row: PeerRow | str | None = None
        if item.peer is not None:
            row = peer.rows[item.peer] if isinstance(peer, PeerReport) else str(peer)
        outcomes.append(Outcome(item, ours[item.name], row))
    return outcomes, peer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description="veritee benchmarks against Keylime 7.14.3")
    parser.add_argument("--quick", action="store_true", help="a few iterations each (a smoke run, not a measurement)")
    parser.add_argument("--only", action="append", metavar="NAME", help=f"run only NAME ({', '.join(REGISTRY)})")
    parser.add_argument("--bundle", type=Path, default=default_bundle_dir(REPO_ROOT), help="evidence bundle dir")
    parser.add_argument("--peer-python", type=Path, default=default_peer_python(REPO_ROOT), help="peer venv python")
    parser.add_argument("--no-peer", action="store_true", help="do not run Keylime")
    parser.add_argument("--peer-timeout", type=float, default=900.0, help="seconds (default 900)")
    parser.add_argument("--results-dir", type=Path, default=REPO_ROOT / "bench" / "results", help="where JSON goes")
    parser.add_argument("--strict", action="store_true", help="also fail on a missed target or an unavailable row")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    names: list[str] = args.only or list(REGISTRY)
    unknown = [name for name in names if name not in REGISTRY]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)} (known: {', '.join(REGISTRY)})")
    try:
        bundle = Bundle.load(args.bundle)
    except BundleError as exc:
        print(f"bench: {exc}")
        return 2
    before = machine_info()
    started = time.time()
    outcomes, peer = run_benchmarks(
        names,
        bundle,
        quick=args.quick,
        peer_python=None if args.no_peer else args.peer_python,
        peer_timeout=args.peer_timeout,
    )
    print(render_table(outcomes, PEER_NAME))
    if args.quick:
        print("(--quick: a few iterations each; the figures are a smoke test, not a measurement)")
    document: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 3),
        "quick": args.quick,
        "bundle": str(bundle.root),
        "machine": {**before, "loadavg_after": machine_info()["loadavg"]},
        "peer": peer.meta if isinstance(peer, PeerReport) else peer,
        "benchmarks": {item.benchmark.name: item.to_json() for item in outcomes},
    }
    path = write_results(args.results_dir, document)
    print(f"results: {path}")
    failed = any(item.invalid for item in outcomes) or (isinstance(peer, str) and peer.startswith("failed"))
    if args.strict:
        failed = failed or any(item.target_met() is False or item.status() != "ok" for item in outcomes)
    return 1 if failed else 0
