"""The benchmark registry: each benchmark is a small function taking the bundle and an iteration count.

A benchmark function times OUR implementation and reports, besides the timings, its verdicts on the good bundle and
on the tampered variants (a benchmark that reaches a wrong verdict is invalid, whatever its speed). It names the
Keylime figure it is compared with (``peer``) and its target. It imports veritee inside the function, so a part of
veritee that is not importable yet makes that one row "unavailable: <ImportError>" instead of stopping the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bench.bundle import Bundle, Variant
from bench.timing import Stats

__all__ = [
    "REGISTRY",
    "Benchmark",
    "BenchmarkFn",
    "Iterations",
    "OurRun",
    "Target",
    "TargetKind",
    "register",
    "verdicts_json",
]


@dataclass(frozen=True, slots=True)
class OurRun:
    """What one of our benchmarks measured: timings, verdicts per variant (True = PASS) and unit counts."""

    stats: Stats
    verdicts: Mapping[Variant, bool]
    expected: Mapping[Variant, bool]
    units: Mapping[str, int] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return all(self.verdicts.get(variant) == wanted for variant, wanted in self.expected.items())


def verdicts_json(verdicts: Mapping[Variant, bool], expected: Mapping[Variant, bool]) -> dict[str, dict[str, str]]:
    return {
        variant.value: {
            "verdict": "PASS" if verdicts.get(variant) else "FAIL",
            "expected": "PASS" if wanted else "FAIL",
        }
        for variant, wanted in expected.items()
    }


class TargetKind(StrEnum):
    RATIO_AT_LEAST = "ratio_at_least"  # peer median / our median >= value
    OURS_AT_MOST = "ours_at_most"  # our median (seconds) <= value
    PER_UNIT_AT_MOST = "per_unit_at_most"  # our median / units[unit] (seconds) <= value


@dataclass(frozen=True, slots=True)
class Target:
    kind: TargetKind
    value: float
    text: str
    unit: str | None = None  # PER_UNIT_AT_MOST: the units key counted ("entries")
    per: str = ""  # ... and how one is called ("entry")

    def met(self, ours: Stats, peer: Stats | None, units: Mapping[str, int]) -> bool | None:
        """True/False, or None when it cannot be judged (no peer figure, no unit count)."""
        if self.kind is TargetKind.RATIO_AT_LEAST:
            if peer is None or ours.median <= 0:
                return None
            return peer.median / ours.median >= self.value
        if self.kind is TargetKind.OURS_AT_MOST:
            return ours.median <= self.value
        count = units.get(self.unit or "", 0)
        if count <= 0:
            return None
        return ours.median / count <= self.value

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "value": self.value, "unit": self.unit, "text": self.text}


@dataclass(frozen=True, slots=True)
class Iterations:
    ours: int
    peer: int


BenchmarkFn = Callable[[Bundle, int], OurRun]


@dataclass(frozen=True, slots=True)
class Benchmark:
    name: str
    title: str
    fn: BenchmarkFn
    peer: str | None
    target: Target | None
    full: Iterations
    quick: Iterations

    def iterations(self, quick: bool) -> Iterations:
        return self.quick if quick else self.full


REGISTRY: dict[str, Benchmark] = {}


def register(
    name: str,
    title: str,
    *,
    peer: str | None,
    target: Target | None,
    full: Iterations,
    quick: Iterations,
) -> Callable[[BenchmarkFn], BenchmarkFn]:
    """Register the decorated function as benchmark ``name`` (names are unique)."""

    def decorate(fn: BenchmarkFn) -> BenchmarkFn:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} is registered twice")
        REGISTRY[name] = Benchmark(name, title, fn, peer, target, full, quick)
        return fn

    return decorate
