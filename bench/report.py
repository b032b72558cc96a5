"""One benchmark's outcome (ours, the peer's, ratio, target), the table, and the JSON written to bench/results/."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.peer import PeerRow
from bench.registry import Benchmark, OurRun, TargetKind, verdicts_json
from bench.timing import Stats

__all__ = ["Outcome", "format_seconds", "machine_info", "render_table", "write_results"]


def format_seconds(value: float) -> str:
    if value < 1e-3:
        return f"{value * 1e6:.1f} µs"
    if value < 1.0:
        return f"{value * 1e3:.2f} ms"
    return f"{value:.2f} s"


def _stats_text(stats: Stats) -> str:
    return f"{format_seconds(stats.median)} [{format_seconds(stats.p10)}–{format_seconds(stats.p90)}] n={stats.n}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """``ours`` / ``peer`` are results, or the text saying why there is none ("unavailable: ...")."""

    benchmark: Benchmark
    ours: OurRun | str
    peer: PeerRow | str | None  # None: the benchmark has no peer figure

    @property
    def ratio(self) -> float | None:
        """How many times faster we are (peer median / our median)."""
        if isinstance(self.ours, OurRun) and isinstance(self.peer, PeerRow) and self.ours.stats.median > 0:
            return self.peer.stats.median / self.ours.stats.median
        return None

    @property
    def invalid(self) -> list[str]:
        """Which side reached a wrong verdict on some variant."""
        sides = []
        if isinstance(self.ours, OurRun) and not self.ours.valid:
            sides.append("ours")
        if isinstance(self.peer, PeerRow) and not self.peer.valid:
            sides.append("peer")
        return sides

    def target_met(self) -> bool | None:
        target = self.benchmark.target
        if target is None or not isinstance(self.ours, OurRun):
            return None
        return target.met(self.ours.stats, self.peer.stats if isinstance(self.peer, PeerRow) else None, self.ours.units)

    def target_text(self) -> str:
        target = self.benchmark.target
        if target is None:
            return "—"
        if not isinstance(self.ours, OurRun):
            return f"{target.text}: n/a"
        shown = ""
        if target.kind is TargetKind.PER_UNIT_AT_MOST and self.ours.units.get(target.unit or "", 0):
            per = self.ours.stats.median / self.ours.units[target.unit or ""]
            shown = f" ({format_seconds(per)} per {target.per or target.unit})"
        met = self.target_met()
        verdict = "n/a" if met is None else ("met" if met else "MISSED")
        return f"{target.text}{shown}: {verdict}"

    def status(self) -> str:
        if self.invalid:
            return "INVALID (" + ", ".join(f"{side}: wrong verdict" for side in self.invalid) + ")"
        if isinstance(self.ours, str):
            return "ours " + self.ours
        if isinstance(self.peer, str):
            return "peer " + self.peer
        return "ok"

    def to_json(self) -> dict[str, Any]:
        ours: dict[str, Any]
        if isinstance(self.ours, OurRun):
            ours = {
                "stats": self.ours.stats.to_json(),
                "verdicts": verdicts_json(self.ours.verdicts, self.ours.expected),
                "valid": self.ours.valid,
                "units": dict(self.ours.units),
            }
        else:
            ours = {"unavailable": self.ours}
        peer: dict[str, Any] | None
        if isinstance(self.peer, PeerRow):
            peer = self.peer.to_json()
        else:
            peer = None if self.peer is None else {"unavailable": self.peer}
        target = self.benchmark.target
        return {
            "title": self.benchmark.title,
            "ours": ours,
            "peer": peer,
            "ratio": self.ratio,
            "target": None if target is None else {**target.to_json(), "met": self.target_met()},
            "status": self.status(),
        }


def render_table(outcomes: Sequence[Outcome], peer_name: str) -> str:
    header = ("benchmark", "ours: median [p10–p90]", f"{peer_name}: median [p10–p90]", "ratio", "target", "status")
    rows = [header]
    for item in outcomes:
        ours = _stats_text(item.ours.stats) if isinstance(item.ours, OurRun) else item.ours
        if isinstance(item.peer, PeerRow):
            peer = _stats_text(item.peer.stats)
        else:
            peer = "—" if item.peer is None else item.peer
        ratio = "—" if item.ratio is None else f"{item.ratio:.1f}×"
        rows.append((item.benchmark.name, ours, peer, ratio, item.target_text(), item.status()))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    try:
        info["loadavg"] = list(os.getloadavg())
    except OSError:
        info["loadavg"] = None
    return info


def write_results(directory: Path, document: Mapping[str, Any]) -> Path:
    """Write ``document`` as bench-<UTC time>.json and latest.json in ``directory``; returns the first path."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    text = json.dumps(document, indent=1, ensure_ascii=False) + "\n"
    path = directory / f"bench-{stamp}.json"
    path.write_text(text)
    (directory / "latest.json").write_text(text)
    return path
