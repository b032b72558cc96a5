"""Smoke run of ``python -m bench.teep_http``: a tiny run completes with every device served, and its figures are
reported as JSON and as a table. No figure is compared with a threshold: a benchmark is not a timed test."""

from __future__ import annotations

import json
import pstats
from pathlib import Path

import pytest
from bench.teep_http import SIGNATURES, TARGET, TeepHttpResult, main, run


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> tuple[TeepHttpResult, Path]:
    profile = tmp_path_factory.mktemp("teep-http") / "tam.prof"
    return run([1, 2], 2, quick=True, profile=profile), profile


def test_a_tiny_run_serves_every_device(result: tuple[TeepHttpResult, Path]) -> None:
    outcome, _ = result
    assert outcome.valid and outcome.installed == outcome.expected
    assert [row.agents for row in outcome.rows] == [1, 2]
    assert [row.devices for row in outcome.rows] == [2, 2] and all(not row.failures for row in outcome.rows)
    assert outcome.met == (outcome.best >= TARGET)


def test_the_figures_are_reported_as_json_and_as_a_table(result: tuple[TeepHttpResult, Path]) -> None:
    outcome, _ = result
    document = json.loads(json.dumps(outcome.to_json()))
    assert document["valid"] is True and document["db"] == "sqlite" and document["target"] == TARGET
    for row in document["rows"]:
        assert row["failed"] == 0 and row["devices_per_second"] > 0
        assert 0 < row["p50_s"] <= row["p99_s"]
        assert row["tam_cpu_ms_per_exchange"] > 0 and row["agent_cpu_ms_per_exchange"] > 0
    ceiling = document["signature_ceiling"]
    assert (ceiling["signs"], ceiling["verifies"]) == (5, 6)
    assert ceiling["operations"] == json.loads(json.dumps(SIGNATURES))
    assert ceiling["devices_per_second"] == pytest.approx(ceiling["cores"] / ceiling["per_exchange_s"])
    table = outcome.render()
    assert f"target ≥ {TARGET:.0f} devices/s: {'met' if outcome.met else 'MISSED'}" in table
    assert "5 sign + 6 verify" in table
    lines = table.splitlines()
    rows = [line.split() for line in lines if line.split() and line.split()[0].isdigit()]
    assert [(int(r[0]), int(r[1])) for r in rows] == [(1, 2), (2, 2)]
    assert [float(r[2]) for r in rows] == [pytest.approx(row.per_second, abs=0.05) for row in outcome.rows]


def test_the_tam_profile_is_written(result: tuple[TeepHttpResult, Path]) -> None:
    _, profile = result
    stats = pstats.Stats(str(profile))
    profiled = {name for (_file, _line, name) in stats.stats}  # type: ignore[attr-defined]
    assert "handle" in profiled  # the TEEP endpoint, run in the server's worker threads


def test_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--agents", "0"])
    with pytest.raises(SystemExit):
        main(["--nope"])
    capsys.readouterr()
