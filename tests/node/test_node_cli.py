"""``veritee node run`` in push and pull mode against the contract verifier, and its errors."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from node_verifier import TestVerifier, free_port
from typer.testing import CliRunner

from veritee.cli import node as node_cli
from veritee.service.simnode import SimulatedNode

pytestmark = pytest.mark.swtpm


def _events(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def _args(sim_node: SimulatedNode, url: str, state: Path, *extra: str) -> list[str]:
    return [
        "run",
        "--verifier",
        url,
        "--tcti",
        sim_node.tcti,
        "--node-id",
        "cli-node",
        "--event-log",
        str(sim_node.event_log_path),
        "--ima-log",
        str(sim_node.ima_log_path),
        "--state-dir",
        str(state),
        "--json",
        *extra,
    ]


def test_push_mode(sim_node: SimulatedNode, verifier: TestVerifier, verifier_url: str, tmp_path: Path) -> None:
    state = tmp_path / "state"
    args = _args(sim_node, verifier_url, state, "--mode", "push", "--interval", "0.05", "--rounds", "2")
    result = CliRunner().invoke(node_cli.app, [*args, "--attribute", "role=db"])
    assert result.exit_code == 0, result.output
    events = _events(result.output)
    assert [e["event"] for e in events] == ["registered", "verdict", "verdict"]
    assert events[0]["node_id"] == "cli-node" and events[0]["verifier"] == verifier_url
    assert all(e["passed"] for e in events[1:])
    assert verifier.nodes["cli-node"].attributes == {"role": "db"}
    # restart: same AK, no new registration; an unapproved binary fails the round
    sim_node.run_unapproved_binary()
    again = CliRunner().invoke(node_cli.app, _args(sim_node, verifier_url, state, "--rounds", "1"))
    assert again.exit_code == 0, again.output
    events = _events(again.output)
    assert events[0]["ak_name"] == _events(result.output)[0]["ak_name"]
    assert verifier.registrations == 1
    assert events[1]["passed"] is False
    assert "ima.not_in_policy" in [f["id"] for f in events[1]["findings"]]


def test_push_mode_text_output(sim_node: SimulatedNode, verifier_url: str, tmp_path: Path) -> None:
    args = [a for a in _args(sim_node, verifier_url, tmp_path / "state", "--rounds", "1") if a != "--json"]
    result = CliRunner().invoke(node_cli.app, args)
    assert result.exit_code == 0, result.output
    assert "registered with" in result.output and "verdict: passed" in result.output


def test_pull_mode(sim_node: SimulatedNode, verifier: TestVerifier, verifier_url: str, tmp_path: Path) -> None:
    port = free_port()
    results: list[bool] = []

    def verifier_polls() -> None:
        deadline = time.monotonic() + 30
        while not (verifier.nodes.get("cli-node") and verifier.nodes["cli-node"].active):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        results.append(verifier.pull("cli-node").passed)

    poller = threading.Thread(target=verifier_polls)
    poller.start()
    args = _args(sim_node, verifier_url, tmp_path / "state", "--mode", "pull", "--listen", f"127.0.0.1:{port}")
    result = CliRunner().invoke(node_cli.app, [*args, "--rounds", "1"])
    poller.join(30)
    assert result.exit_code == 0, result.output
    assert results == [True]
    events = _events(result.output)
    assert [e["event"] for e in events] == ["listening", "registered", "stopped"]
    assert events[0]["port"] == port and events[2]["answered"] == 1
    assert verifier.nodes["cli-node"].agent_url == f"http://127.0.0.1:{port}"


def test_errors(sim_node: SimulatedNode, tmp_path: Path) -> None:
    runner = CliRunner()
    bad_listen = runner.invoke(node_cli.app, _args(sim_node, "http://127.0.0.1:1", tmp_path, "--listen", "nope"))
    assert bad_listen.exit_code == 2
    assert _events(bad_listen.output)[0]["error"]["type"] == "ConfigError"
    anywhere = _args(sim_node, "http://127.0.0.1:1", tmp_path, "--mode", "pull", "--listen", "0.0.0.0:8992")
    assert "--agent-url" in _events(runner.invoke(node_cli.app, anywhere).output)[0]["error"]["message"]
    down = runner.invoke(
        node_cli.app,
        _args(sim_node, f"http://127.0.0.1:{free_port()}", tmp_path, "--retry-attempts", "2", "--retry-max-delay", "0"),
    )
    assert down.exit_code == 1
    error = _events(down.output)[-1]["error"]
    assert error["type"] == "TransportError" and "failed 2 time" in error["message"]
