"""``veritee node``: the node agent (registers the node's TPM with a verifier and answers its evidence requests)."""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import typer

from veritee.errors import ConfigError, VeriteeError
from veritee.service.node_agent import NodeAgent
from veritee.service.node_config import AgentConfig, AgentMode, RetryPolicy, parse_listen
from veritee.service.node_logs import DEFAULT_EVENT_LOG, DEFAULT_IMA_LOG
from veritee.service.node_wire import Verdict
from veritee.tpm.device import AkAlg, EkKind
from veritee.web.node_app import NodeServer

NAME = "node"
app = typer.Typer(help="The node agent: TPM quotes and measurement logs for a verifier.", no_args_is_help=True)

DEFAULT_STATE_DIR = Path("/var/lib/veritee/node")


@app.callback()
def _group() -> None:
    """The node agent."""


class _Output:
    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json

    def event(self, kind: str, text: str, **fields: Any) -> None:
        if self.as_json:
            typer.echo(json.dumps({"event": kind, **fields}))
        else:
            typer.echo(text)

    def verdict(self, verdict: Verdict) -> None:
        ids = [item for item in verdict.finding_ids() if item]
        outcome = "passed" if verdict.passed else "FAILED"
        self.event(
            "verdict",
            f"verdict: {outcome} ({verdict.state})" + (f": {', '.join(ids)}" if ids and not verdict.passed else ""),
            passed=verdict.passed,
            state=verdict.state,
            findings=list(verdict.findings),
        )

    def error(self, exc: VeriteeError) -> None:
        if self.as_json:
            typer.echo(json.dumps({"event": "error", "error": {"type": type(exc).__name__, "message": str(exc)}}))
        else:
            typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)


def _attributes(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--attribute takes KEY=VALUE, not {item!r}")
        out[key] = value
    return out


def _config(
    *,
    verifier: str,
    tcti: str,
    node_id: str,
    event_log: Path | None,
    ima_log: Path | None,
    mode: AgentMode,
    listen: str,
    agent_url: str | None,
    interval: float,
    state_dir: Path,
    ek: EkKind,
    ak_alg: AkAlg,
    attribute: list[str],
    retry_attempts: int | None,
    retry_max_delay: float,
) -> tuple[AgentConfig, tuple[str, int]]:
    host, port = parse_listen(listen)
    if mode is AgentMode.PULL and agent_url is None:
        if host in ("0.0.0.0", "::", ""):
            raise ConfigError("listening on every address: give the URL the verifier should use with --agent-url")
        agent_url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    config = AgentConfig(
        verifier_url=verifier,
        tcti=tcti,
        node_id=node_id,
        state_dir=state_dir,
        mode=mode,
        event_log=event_log,
        ima_log=ima_log,
        agent_url=agent_url if mode is AgentMode.PULL else None,
        interval=interval,
        ek_kind=ek,
        ak_alg=ak_alg,
        attributes=_attributes(attribute),
        retry=RetryPolicy(max_delay=max(retry_max_delay, 0.5), attempts=retry_attempts),
    )
    return config, (host, port)


@app.command("run")
def run(
    verifier: str = typer.Option(..., "--verifier", help="Verifier base URL, e.g. http://127.0.0.1:8881."),
    tcti: str = typer.Option(
        ..., "--tcti", help="TPM TCTI: device:/dev/tpmrm0 on a host, swtpm:host=127.0.0.1,port=2321 for swtpm."
    ),
    node_id: str = typer.Option(..., "--node-id", help="This node's id at the verifier."),
    event_log: Path = typer.Option(DEFAULT_EVENT_LOG, "--event-log", help="Firmware event log (binary)."),
    ima_log: Path = typer.Option(DEFAULT_IMA_LOG, "--ima-log", help="IMA ASCII measurement list."),
    mode: AgentMode = typer.Option(AgentMode.PUSH, "--mode", help="pull: serve /v1/quote; push: post evidence."),
    listen: str = typer.Option("127.0.0.1:8992", "--listen", help="HOST:PORT to serve /v1/quote on (pull mode)."),
    agent_url: str | None = typer.Option(
        None, "--agent-url", help="URL the verifier reaches this agent at (pull mode; default from --listen)."
    ),
    interval: float = typer.Option(60.0, "--interval", help="Seconds between push rounds.", min=0.01),
    state_dir: Path = typer.Option(DEFAULT_STATE_DIR, "--state-dir", help="Where the AK and registration are kept."),
    ek: EkKind = typer.Option(EkKind.RSA, "--ek", help="Endorsement key: rsa (TCG L-1) or ecc (TCG H-4)."),
    ak_alg: AkAlg = typer.Option(AkAlg.RSA2048_RSASSA_SHA256, "--ak-alg", help="Algorithm of a new AK."),
    attribute: list[str] = typer.Option([], "--attribute", help="KEY=VALUE sent at registration (repeatable)."),
    rounds: int | None = typer.Option(
        None, "--rounds", min=1, help="Stop after N rounds (push) or N answered challenges (pull)."
    ),
    retry_attempts: int | None = typer.Option(
        None, "--retry-attempts", min=1, help="Give up a request after N tries (default: keep retrying)."
    ),
    retry_max_delay: float = typer.Option(30.0, "--retry-max-delay", help="Longest backoff between retries (s)."),
    reregister: bool = typer.Option(
        False, "--reregister", help="Register again even if the saved identity is registered (after a revocation)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every round and retry to stderr."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per event on stdout."),
) -> None:
    """Register this node's TPM with the verifier (once; the AK is kept in --state-dir) and attest it."""
    out = _Output(as_json)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s"
    )
    try:
        config, (host, port) = _config(
            verifier=verifier,
            tcti=tcti,
            node_id=node_id,
            event_log=event_log,
            ima_log=ima_log,
            mode=mode,
            listen=listen,
            agent_url=agent_url,
            interval=interval,
            state_dir=state_dir,
            ek=ek,
            ak_alg=ak_alg,
            attribute=attribute,
            retry_attempts=retry_attempts,
            retry_max_delay=retry_max_delay,
        )
    except ConfigError as exc:
        out.error(exc)
        raise typer.Exit(2) from None
    try:
        with NodeAgent(config) as agent, _stop_on_sigterm(agent):
            if config.mode is AgentMode.PULL:
                _run_pull(agent, host, port, rounds, reregister, out)
            else:
                _register(agent, reregister, out)
                agent.run_push(rounds=rounds, on_verdict=out.verdict)
    except VeriteeError as exc:
        out.error(exc)
        raise typer.Exit(1) from None


def _register(agent: NodeAgent, again: bool, out: _Output) -> None:
    identity = agent.register() if again else agent.ensure_registered()
    out.event(
        "registered",
        f"node {identity.node_id} registered with {identity.registered_with} (AK {identity.ak.name.hex()})",
        node_id=identity.node_id,
        verifier=identity.registered_with,
        ak_name=identity.ak.name.hex(),
    )


def _run_pull(agent: NodeAgent, host: str, port: int, rounds: int | None, again: bool, out: _Output) -> None:
    with NodeServer(agent, host, port) as server:
        out.event("listening", f"serving /v1/quote on {host}:{server.port}", host=host, port=server.port)
        _register(agent, again, out)
        while not agent.stop_event.is_set() and (rounds is None or agent.answered < rounds):
            time.sleep(0.05)
        out.event("stopped", f"answered {agent.answered} challenge(s)", answered=agent.answered)


@contextmanager
def _stop_on_sigterm(agent: NodeAgent) -> Iterator[None]:
    """SIGTERM stops the agent cleanly (the previous handler is restored afterwards)."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        agent.stop()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: the embedding caller stops the agent itself
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
