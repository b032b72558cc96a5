"""The harness's own logic: timing summaries, targets, reading the peer's report, rows that are unavailable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bench.bundle import Bundle, Variant
from bench.peer import PeerError, PeerRow, parse_peer_output, run_peer
from bench.registry import REGISTRY, Benchmark, Iterations, OurRun, Target, TargetKind
from bench.report import Outcome, format_seconds, render_table
from bench.timing import Stats, measure

from bench import cli


# --- timing -------------------------------------------------------------------------------------------------------
def test_stats_of_samples() -> None:
    stats = Stats.of([float(i) for i in range(1, 12)])
    assert (stats.median, stats.p10, stats.p90, stats.n) == (6.0, 2.0, 10.0, 11)
    assert Stats.of([0.5]) == Stats(0.5, 0.5, 0.5, 1)
    with pytest.raises(ValueError):
        Stats.of([])


def test_measure_counts_calls() -> None:
    calls: list[int] = []
    stats = measure(lambda: calls.append(1), 5, warmup=2)
    assert len(calls) == 7 and stats.n == 5
    assert 0 <= stats.p10 <= stats.median <= stats.p90
    with pytest.raises(ValueError):
        measure(lambda: None, 0)


@pytest.mark.parametrize(
    "data",
    [
        None,
        {"median": 1, "p10": 1, "p90": 1},
        {"median": 1, "p10": 1, "p90": 1, "n": 0},
        {"median": -1, "p10": -1, "p90": 1, "n": 2},
        {"median": "1", "p10": 1, "p90": 1, "n": 2},
        {"median": True, "p10": 1, "p90": 1, "n": 2},
        {"median": 3, "p10": 1, "p90": 2, "n": 2},
    ],
)
def test_stats_from_json_rejects(data: Any) -> None:
    with pytest.raises(ValueError):
        Stats.from_json(data)


def test_format_seconds() -> None:
    assert format_seconds(2.5e-6) == "2.5 µs"
    assert format_seconds(0.0123) == "12.30 ms"
    assert format_seconds(1.5) == "1.50 s"


# --- targets ------------------------------------------------------------------------------------------------------
def test_targets() -> None:
    ours, peer = Stats(0.001, 0.001, 0.001, 1), Stats(0.040, 0.040, 0.040, 1)
    ratio = Target(TargetKind.RATIO_AT_LEAST, 30.0, "x30")
    assert ratio.met(ours, peer, {}) is True
    assert ratio.met(Stats(0.002, 0.002, 0.002, 1), peer, {}) is False
    assert ratio.met(ours, None, {}) is None
    at_most = Target(TargetKind.OURS_AT_MOST, 0.5e-3, "0.5 ms")
    assert at_most.met(Stats(0.4e-3, 0.4e-3, 0.4e-3, 1), None, {}) is True
    assert at_most.met(ours, None, {}) is False
    per = Target(TargetKind.PER_UNIT_AT_MOST, 1e-6, "1 µs", unit="entries", per="entry")
    assert per.met(ours, None, {"entries": 1000}) is True
    assert per.met(ours, None, {"entries": 999}) is False
    assert per.met(ours, None, {}) is None


# --- the peer's report --------------------------------------------------------------------------------------------
def _peer_row(valid: bool = True) -> dict[str, Any]:
    return {
        "stats": {"median": 0.05, "p10": 0.04, "p90": 0.06, "n": 3},
        "verdicts": {
            "good": {"verdict": "PASS", "expected": "PASS", "events": []},
            "ima_entry_changed": {"verdict": "FAIL" if valid else "PASS", "expected": "FAIL", "events": ["x"]},
        },
        "valid": valid,
        "units": {"entries": 826},
    }


def _report(**rows: Any) -> str:
    return "some log line\n" + json.dumps({"peer": "keylime", "version": "7.14.3", "benchmarks": rows}) + "\n"


def test_parse_peer_output() -> None:
    report = parse_peer_output(_report(ima=_peer_row(), full=_peer_row(valid=False)), ["ima", "full"])
    assert report.meta == {"peer": "keylime", "version": "7.14.3"}
    assert report.rows["ima"].stats == Stats(0.05, 0.04, 0.06, 3)
    assert report.rows["ima"].valid and report.rows["ima"].units == {"entries": 826}
    assert not report.rows["full"].valid
    assert report.rows["full"].verdicts["ima_entry_changed"] == {"verdict": "PASS", "expected": "FAIL"}


def _broken(change: dict[str, Any]) -> dict[str, Any]:
    row = _peer_row()
    row.update(change)
    return row


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json\n",
        json.dumps({"benchmarks": []}),
        _report(full=_peer_row()),  # lacks ima
        _report(ima=_broken({"stats": {"median": 1}})),
        _report(ima=_broken({"verdicts": {}})),
        _report(ima=_broken({"verdicts": {"good": {"verdict": "OK", "expected": "PASS"}}})),
        _report(ima=_broken({"valid": False})),  # disagrees with its verdicts
        _report(ima=_broken({"units": {"entries": -1}})),
        _report(ima="row"),
    ],
)
def test_parse_peer_output_rejects(text: str) -> None:
    with pytest.raises(PeerError):
        parse_peer_output(text, ["ima"])


def test_run_peer_without_venv(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"setup_keylime\.sh"):
        run_peer(tmp_path / "missing" / "python", tmp_path, {"full": 1}, repo_root=tmp_path, timeout=5)


def test_run_peer_that_fails(tmp_path: Path) -> None:
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'keylime exploded' >&2\nexit 3\n")
    fake.chmod(0o755)
    with pytest.raises(PeerError, match="exited with 3:\nkeylime exploded"):
        run_peer(fake, tmp_path, {"full": 1}, repo_root=tmp_path, timeout=30)


# --- rows ---------------------------------------------------------------------------------------------------------
def _benchmark(fn: Any, target: Target | None = None) -> Benchmark:
    return Benchmark("fake", "a fake benchmark", fn, "full", target, Iterations(1, 1), Iterations(1, 1))


def test_outcome_ratio_target_and_invalid() -> None:
    target = Target(TargetKind.RATIO_AT_LEAST, 30.0, "≥ 30×")
    expected = {Variant.GOOD: True, Variant.IMA_ENTRY_CHANGED: False}
    ours = OurRun(Stats(0.001, 0.001, 0.001, 1), dict(expected), expected)
    peer = PeerRow(Stats(0.045, 0.045, 0.045, 1), {"good": {"verdict": "PASS", "expected": "PASS"}}, True)
    good = Outcome(_benchmark(None, target), ours, peer)
    assert good.ratio == pytest.approx(45.0) and good.target_met() is True
    assert good.status() == "ok" and good.invalid == []
    assert good.to_json()["target"]["met"] is True
    wrong = OurRun(ours.stats, {Variant.GOOD: True, Variant.IMA_ENTRY_CHANGED: True}, expected)
    bad = Outcome(_benchmark(None, target), wrong, peer)
    assert bad.invalid == ["ours"] and bad.status().startswith("INVALID")
    assert bad.to_json()["ours"]["verdicts"]["ima_entry_changed"] == {"verdict": "PASS", "expected": "FAIL"}


def test_unavailable_row_is_reported_not_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_there_yet(bundle: Bundle, iterations: int) -> OurRun:
        from veritee import no_such_module  # type: ignore[attr-defined]

        return no_such_module  # type: ignore[no-any-return]

    monkeypatch.setitem(REGISTRY, "fake", _benchmark(not_there_yet))
    bundle = Bundle(Path("."), {})
    outcomes, peer = cli.run_benchmarks(["fake"], bundle, quick=True, peer_python=None, peer_timeout=1)
    assert peer == "unavailable: --no-peer"
    (outcome,) = outcomes
    assert isinstance(outcome.ours, str) and outcome.ours.startswith("unavailable: cannot import name 'no_such_module'")
    assert outcome.ratio is None and outcome.target_met() is None
    table = render_table(outcomes, "keylime")
    assert "unavailable: cannot import name" in table and "n=" not in table.splitlines()[2]
