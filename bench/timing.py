"""Timing: run a callable N times and summarise the wall-clock times (median, p10, p90).

Standard library only: the Keylime peer script (run by the peer venv's python) uses it too, so both sides are timed
the same way — one warm-up call, the garbage collector off while timing (as ``timeit`` does), ``perf_counter_ns``.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Stats", "measure"]


@dataclass(frozen=True, slots=True)
class Stats:
    """Times of N runs, in seconds."""

    median: float
    p10: float
    p90: float
    n: int

    @classmethod
    def of(cls, samples: list[float]) -> Stats:
        if not samples:
            raise ValueError("no samples to summarise")
        if len(samples) == 1:
            return cls(samples[0], samples[0], samples[0], 1)
        deciles = statistics.quantiles(samples, n=10, method="inclusive")
        return cls(statistics.median(samples), deciles[0], deciles[-1], len(samples))

    def to_json(self) -> dict[str, float | int]:
        return {"median": self.median, "p10": self.p10, "p90": self.p90, "n": self.n}

    @classmethod
    def from_json(cls, data: Any) -> Stats:
        """Read what :meth:`to_json` wrote; ValueError when it is not that shape."""
        if not isinstance(data, dict):
            raise ValueError(f"timing figures must be an object, not {type(data).__name__}")
        values: dict[str, float] = {}
        for key in ("median", "p10", "p90"):
            value = data.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"timing figure {key!r} must be a non-negative number, not {value!r}")
            values[key] = float(value)
        n = data.get("n")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"timing figure 'n' must be a positive integer, not {n!r}")
        if not values["p10"] <= values["median"] <= values["p90"]:
            raise ValueError(f"timing figures out of order: {values}")
        return cls(values["median"], values["p10"], values["p90"], n)


def measure(fn: Callable[[], object], n: int, *, warmup: int = 1) -> Stats:
    """Call ``fn`` ``warmup`` times untimed, then ``n`` times timed."""
    if n < 1:
        raise ValueError(f"iterations must be at least 1, not {n}")
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(n):
            start = time.perf_counter_ns()
            fn()
            samples.append((time.perf_counter_ns() - start) / 1e9)
    finally:
        if enabled:
            gc.enable()
    return Stats.of(samples)
