"""Fleet benchmark: how many nodes per minute ONE verifier process attests, at what latency and memory per node.

One verifier (``python -m veritee.cli.verifier serve``: uvicorn, SQLite unless ``--db`` says otherwise, the shared
bundle's Keylime policies as the default policy) runs as a subprocess on loopback. Software nodes
(:mod:`bench.fleet_nodes`: real TPMS_ATTEST quotes signed by each node's own AK) register through the real API and
then push evidence at a steady interval: ``GET /v1/nodes/{id}/challenge``, ``POST /v1/nodes/{id}/evidence`` — full
appraisal every round (quote, firmware event log against the boot policy, the IMA lines since the last round against
the runtime policy), committed to the database.

Figures: nodes attested per minute in the steady state (every node registered and past its first, full round),
round latency p50/p99 (challenge request to verdict), verifier memory per node (RSS growth from a primed verifier to
the end of the run, divided by the nodes), CPU of the verifier and of this load generator (a generator at 100% of a
core means the figure is the generator's limit, not the verifier's). Targets: ≥ 20,000 nodes per minute, ≤ 0.5 MB
per node. Two tampered nodes (an edited IMA line, an event log digest changed) must fail every round and every good
round must pass, or the run is invalid.

``python -m bench.fleet [--quick] [--nodes N] [--interval S] [--duration S] [--db URL] [--json]``; registered in the
``python -m bench`` harness as ``fleet`` (its iterations are the measurement windows).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.bundle import Bundle, BundleError, Variant, default_bundle_dir
from bench.registry import Iterations, OurRun, Target, TargetKind, register
from bench.timing import Stats
from veritee.errors import TransportError

__all__ = ["FULL", "QUICK", "FleetError", "FleetResult", "FleetSettings", "fleet_benchmark", "main", "run_fleet"]

REPO_ROOT = Path(__file__).resolve().parents[1]
TARGET_NODES_PER_MINUTE = 20_000
TARGET_MB_PER_NODE = 0.5
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


class _HttpStatusError(RuntimeError):
    def __init__(self, status: int, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class _HttpError(OSError):
    """The connection failed, timed out, or the answer was not HTTP/1.1 we can read."""


class _Http:
    """A lean HTTP/1.1 client: keep-alive connections to one loopback server, at most ``size`` at once. (The
    generator shares the verifier's two cores: a general-purpose client would cost it more CPU than the verifier's
    own HTTP layer.)"""

    IDLE_S = 2.0
    """Idle connections older than this are not reused (the server closes idle ones after a few seconds)."""

    def __init__(self, url: str, size: int, timeout: float = 120.0) -> None:
        host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
        self.host, self.port = host, int(port or 80)
        self.timeout = timeout
        self._slots = asyncio.Semaphore(size)
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def _connection(self, fresh: bool) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        now = time.monotonic()
        while self._idle and not fresh:
            reader, writer, since = self._idle.pop()
            if now - since < self.IDLE_S:
                return reader, writer, True
            writer.close()
        reader, writer = await self._open()
        return reader, writer, False

    async def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nhost: {self.host}\r\n"
        if body is not None:
            head += f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
        message = (head + "\r\n").encode() + (body or b"")
        async with self._slots:
            for attempt in (1, 2):
                reader, writer, reused = await self._connection(fresh=attempt == 2)
                try:
                    async with asyncio.timeout(self.timeout):
                        writer.write(message)
                        status, data, keep = await self._answer(reader)
                except (OSError, EOFError, ValueError, TimeoutError) as exc:
                    writer.close()
                    if reused and attempt == 1 and isinstance(exc, EOFError | ConnectionError):
                        continue  # the server closed a kept-alive connection: once more on a new one
                    raise _HttpError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
                if keep:
                    self._idle.append((reader, writer, time.monotonic()))
                else:
                    writer.close()
                return status, data
        raise _HttpError(f"{method} {path}: no connection")  # not reached: the second attempt returns or raises

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_connection(self.host, self.port)
        except OSError as exc:
            raise _HttpError(f"cannot connect to {self.host}:{self.port}: {exc}") from None

    @staticmethod
    async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        version, status, _ = head[0].split(" ", 2)
        headers = dict(line.split(":", 1) for line in head[1:] if line)
        fields = {name.strip().lower(): value.strip().lower() for name, value in headers.items()}
        if "content-length" in fields:
            data = await reader.readexactly(int(fields["content-length"]))
        elif fields.get("transfer-encoding") == "chunked":
            parts = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append(await reader.readexactly(size))
                await reader.readexactly(2)
            await reader.readuntil(b"\r\n")
            data = b"".join(parts)
        else:
            raise ValueError("an answer without content-length")
        return int(status), data, version == "HTTP/1.1" and fields.get("connection") != "close"

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer, _ in idle:
            writer.close()


class FleetError(TransportError):
    """The verifier did not start, or the fleet could not register or finish its first rounds."""


@dataclass(frozen=True, slots=True)
class FleetSettings:
    """``nodes`` push every ``interval`` seconds; the steady state is measured in ``windows`` windows of ``window``
    seconds. ``initial_lines`` IMA lines are sent in each node's first round, ``growth`` new lines in each later one."""

    nodes: int
    interval: float
    windows: int
    window: float
    initial_lines: int = 826
    growth: int = 2
    connections: int = 64
    db_url: str | None = None
    warmup_timeout: float = 600.0

    @property
    def duration(self) -> float:
        return self.windows * self.window

    @property
    def offered_per_minute(self) -> float:
        return self.nodes * 60.0 / self.interval


FULL = FleetSettings(nodes=2500, interval=6.0, windows=6, window=10.0)
"""25,000 nodes per minute offered (a quarter above the target) for one minute."""
QUICK = FleetSettings(nodes=40, interval=1.0, windows=3, window=1.0, initial_lines=200)
"""The harness smoke run: the same path end to end, small."""


@dataclass
class FleetResult:
    settings: FleetSettings
    rounds_per_window: list[int]
    latencies: list[float]
    errors: list[str]
    rss_primed: int
    rss_end: int
    verifier_cpu: float
    generator_cpu: float
    good_rounds: int
    good_passed: int
    tampered_passed: dict[str, bool] = field(default_factory=dict)
    warmup_s: float = 0.0
    retried: int = 0
    """Rounds started over with a new challenge after a 409/422 (as the node agent does)."""
    retry_reasons: dict[str, int] = field(default_factory=dict)
    """Why (the problem details' ``detail``, node ids left out), how often."""

    @property
    def rounds(self) -> int:
        return sum(self.rounds_per_window)

    @property
    def nodes_per_minute(self) -> float:
        return self.rounds * 60.0 / self.settings.duration

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def mb_per_node(self) -> float:
        return (self.rss_end - self.rss_primed) / self.settings.nodes / 1e6

    @property
    def valid(self) -> bool:
        return self.good_rounds > 0 and self.good_passed == self.good_rounds and not any(self.tampered_passed.values())

    def seconds_per_node(self) -> list[float]:
        """Per window: seconds of verifier time per attested node (the window over the rounds completed in it)."""
        return [self.settings.window / max(1, count) for count in self.rounds_per_window]

    def report(self) -> str:
        s = self.settings
        per_minute, mb = self.nodes_per_minute, self.mb_per_node
        lines = [
            f"fleet: {s.nodes} nodes pushing every {s.interval:g} s ({s.offered_per_minute:,.0f}/min offered), "
            f"one verifier, measured for {s.duration:g} s after a {self.warmup_s:.1f} s warm-up",
            f"  throughput: {per_minute:,.0f} nodes/min (target ≥ {TARGET_NODES_PER_MINUTE:,}: "
            f"{per_minute / TARGET_NODES_PER_MINUTE:.2f}× the target), {self.rounds} rounds, "
            f"{len(self.errors)} errors, {self.retried} started over after a 409/422",
            f"  latency: p50 {self.percentile(0.5) * 1e3:.1f} ms, p99 {self.percentile(0.99) * 1e3:.1f} ms",
            f"  memory: verifier RSS {self.rss_primed / 1e6:.1f} MB primed -> {self.rss_end / 1e6:.1f} MB = "
            f"{mb:.3f} MB/node (target ≤ {TARGET_MB_PER_NODE}: {mb / TARGET_MB_PER_NODE:.2f}× the limit)",
            f"  CPU: verifier {self.verifier_cpu:.0%} of a core, load generator {self.generator_cpu:.0%}",
            f"  verdicts: {self.good_passed}/{self.good_rounds} good rounds passed; tampered nodes "
            + ", ".join(f"{name}: {'PASSED (wrong)' if ok else 'failed'}" for name, ok in self.tampered_passed.items()),
        ]
        if self.retry_reasons:
            lines.append(f"  started over because: {self.retry_reasons}")
        if self.errors:
            lines.append(f"  first errors: {self.errors[:3]}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "settings": {k: getattr(self.settings, k) for k in self.settings.__slots__},
            "nodes_per_minute": self.nodes_per_minute,
            "latency_p50_s": self.percentile(0.5),
            "latency_p99_s": self.percentile(0.99),
            "mb_per_node": self.mb_per_node,
            "rss_primed": self.rss_primed,
            "rss_end": self.rss_end,
            "rounds_per_window": self.rounds_per_window,
            "errors": len(self.errors),
            "verifier_cpu": self.verifier_cpu,
            "generator_cpu": self.generator_cpu,
            "good_rounds": self.good_rounds,
            "good_passed": self.good_passed,
            "tampered_passed": self.tampered_passed,
            "warmup_s": self.warmup_s,
            "retried": self.retried,
            "retry_reasons": self.retry_reasons,
            "valid": self.valid,
        }


class VerifierProcess:
    """``python -m veritee.cli.verifier serve`` on a free loopback port, stopped by its PID."""

    def __init__(self, workdir: Path, bundle: Bundle, ca_pem: bytes, settings: FleetSettings) -> None:
        self.workdir = workdir
        for name in ("runtime_policy.json", "mb_refstate.json"):
            (workdir / name).write_bytes(bundle.files[name])
        (workdir / "ek-ca.pem").write_bytes(ca_pem)
        db = settings.db_url or f"sqlite:///{workdir / 'verifier.db'}"
        self.command = [
            sys.executable, "-m", "veritee.cli.verifier", "serve", "--db", db, "--port", "0", "--json",
            "--ca", str(workdir / "ek-ca.pem"), "--interval", str(settings.interval),
            "--runtime-policy", str(workdir / "runtime_policy.json"),
            "--boot-policy", str(workdir / "mb_refstate.json"),
        ]  # fmt: skip
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, timeout: float = 60.0) -> VerifierProcess:
        log = (self.workdir / "verifier.log").open("w")
        self.proc = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True, cwd=self.workdir
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        try:
            self.url = json.loads(line)["listening"]
        except (json.JSONDecodeError, KeyError, TypeError):
            self.stop()
            raise FleetError(f"the verifier did not start: {line!r} {self.log_tail()}") from None
        return self

    def log_tail(self, size: int = 4000) -> str:
        return (self.workdir / "verifier.log").read_text(errors="replace")[-size:]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss(self) -> int:
        with open(f"/proc/{self.pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _generator_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Driver:
    """The load generator: one asyncio task per node over one HTTP connection pool."""

    def __init__(self, url: str, settings: FleetSettings) -> None:
        self.settings = settings
        self.http = _Http(url, settings.connections)
        self.window_start = self.window_end = float("inf")
        self.rounds = [0] * settings.windows
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.good_rounds = self.good_passed = 0
        self.tampered: dict[str, bool] = {}
        self.retried = 0
        self.retry_reasons: dict[str, int] = {}

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        status, data = await self.http.request(method, path, payload)
        if status >= 400:
            text = data[:300].decode(errors="replace")
            try:
                detail = str(json.loads(data).get("detail", ""))
            except (ValueError, AttributeError):
                detail = text
            raise _HttpStatusError(status, f"{method} {path}: HTTP {status}: {text}", detail)
        return json.loads(data)

    async def register(self, node: Any, ca: Any) -> None:
        from veritee.service.node_wire import ActivationRequest, CredentialChallenge

        reply = await self.call("POST", "/v1/nodes", node.registration(ca).to_json())
        challenge = CredentialChallenge.from_json(reply)
        secret = node.activate(challenge)
        activation = ActivationRequest(challenge.challenge_id, secret)
        await self.call("POST", f"/v1/nodes/{node.node_id}/activate", activation.to_json())

    async def round(self, node: Any) -> tuple[float, dict[str, Any]]:
        from veritee.service.node_wire import Challenge

        started = time.perf_counter()
        for attempt in (1, 2):
            challenge = Challenge.from_json(await self.call("GET", f"/v1/nodes/{node.node_id}/challenge"))
            try:
                verdict = await self.call(
                    "POST", f"/v1/nodes/{node.node_id}/evidence", node.answer(challenge).to_json()
                )
            except _HttpStatusError as exc:
                # 409/422: the challenge no longer applies (reboot, expiry, the node's state moved on): like the
                # node agent, start over once with a new challenge
                if exc.status not in (409, 422) or attempt == 2:
                    raise
                self.retried += 1
                reason = f"{exc.status} {exc.detail.replace(repr(node.node_id), 'NODE')[:80]}"
                self.retry_reasons[reason] = self.retry_reasons.get(reason, 0) + 1
            else:
                break
        return time.perf_counter() - started, verdict

    def record(self, node: Any, started: float, latency: float, verdict: dict[str, Any]) -> None:
        from bench.fleet_nodes import Tamper

        if node.tamper is not Tamper.NONE:
            self.tampered[node.tamper.value] = self.tampered.get(node.tamper.value, False) or bool(verdict["passed"])
        else:
            self.good_rounds += 1
            self.good_passed += bool(verdict["passed"])
            if not verdict["passed"] and len(self.errors) < 20:
                self.errors.append(f"{node.node_id} failed: {[f.get('id') for f in verdict.get('findings', [])]}")
        if self.window_start <= started < self.window_end:
            index = int((started - self.window_start) // self.settings.window)
            self.rounds[min(index, len(self.rounds) - 1)] += 1
            self.latencies.append(latency)

    async def node_task(self, node: Any, ca: Any, offset: float, warm: asyncio.Event, ready: list[int]) -> None:
        await asyncio.sleep(offset)
        await self.register(node, ca)
        latency, verdict = await self.round(node)  # the first, full round
        self.record(node, time.perf_counter() - latency, latency, verdict)
        ready[0] += 1
        if ready[0] == ready[1]:
            warm.set()
        next_at = time.perf_counter() + self.settings.interval
        while True:
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            started = time.perf_counter()
            if started >= self.window_end:
                return
            try:
                latency, verdict = await self.round(node)
            except (RuntimeError, OSError, ValueError) as exc:  # HTTP statuses (RuntimeError), connections (OSError)
                if self.window_start <= started < self.window_end and len(self.errors) < 20:
                    self.errors.append(f"{node.node_id}: {type(exc).__name__}: {exc}")
            else:
                self.record(node, started, latency, verdict)
            next_at = max(next_at + self.settings.interval, time.perf_counter())


def _nodes(bundle: Bundle, settings: FleetSettings) -> tuple[list[Any], Any]:
    from bench.fleet_nodes import FleetCa, ImaTimeline, SoftwareNode, Tamper
    from veritee.tpm.alg import HashAlg
    from veritee.tpm.pcrs import parse_tpm2tools_pcr_blob

    banks = parse_tpm2tools_pcr_blob(bundle.files["quote.pcrs"])[1][HashAlg.SHA256]
    boot = {index: value for index, value in banks.items() if index != 10}
    timeline = ImaTimeline(bundle.files["ascii_runtime_measurements"].decode())
    timeline.value(settings.initial_lines + settings.growth * 400)  # PCR 10 values computed before timing
    log = bundle.files["binary_bios_measurements"]
    bad_log = bundle.variant(Variant.BOOT_EVENT_CHANGED)["binary_bios_measurements"]

    def node(name: str, tamper: Tamper = Tamper.NONE) -> SoftwareNode:
        event_log = bad_log if tamper is Tamper.BOOT_EVENT_CHANGED else log
        return SoftwareNode(name, boot, event_log, timeline, settings.initial_lines, settings.growth, tamper)

    nodes = [node(f"fleet-{i:06d}") for i in range(settings.nodes)]
    nodes += [node(f"fleet-{tamper.value.replace('_', '-')}", tamper) for tamper in Tamper if tamper is not Tamper.NONE]
    return [node("fleet-prime"), *nodes], FleetCa()


async def _run(verifier: VerifierProcess, settings: FleetSettings, nodes: list[Any], ca: Any) -> FleetResult:
    driver = _Driver(verifier.url, settings)
    try:
        prime, fleet = nodes[0], nodes[1:]
        await driver.register(prime, ca)  # compiles the policy, decodes the event log, warms every cache
        for _ in range(2):
            await driver.round(prime)
        rss_primed = verifier.rss()
        warm = asyncio.Event()
        ready = [0, len(fleet)]
        warm_started = time.perf_counter()
        tasks = [
            asyncio.create_task(driver.node_task(node, ca, i * settings.interval / len(fleet), warm, ready))
            for i, node in enumerate(fleet)
        ]
        waiting = asyncio.ensure_future(warm.wait())
        done, _ = await asyncio.wait(
            [waiting, *tasks], timeout=settings.warmup_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        failed = [task for task in done if task is not waiting and task.exception() is not None]
        if failed or not warm.is_set():
            for task in tasks:
                task.cancel()
            raise FleetError(f"warm-up failed: {failed[0].exception() if failed else 'timed out'}")
        warmup = time.perf_counter() - warm_started
        driver.window_start = time.perf_counter() + settings.interval  # one more interval to settle the schedule
        driver.window_end = driver.window_start + settings.duration
        await asyncio.sleep(settings.interval)
        cpu0, gen0 = verifier.cpu_seconds(), _generator_cpu()
        await asyncio.sleep(max(0.0, driver.window_end - time.perf_counter()))
        cpu1, gen1 = verifier.cpu_seconds(), _generator_cpu()
        await asyncio.gather(*tasks)
        rss_end = verifier.rss()
    finally:
        await driver.http.aclose()
    return FleetResult(
        settings=settings,
        rounds_per_window=driver.rounds,
        latencies=driver.latencies,
        errors=driver.errors,
        rss_primed=rss_primed,
        rss_end=rss_end,
        verifier_cpu=(cpu1 - cpu0) / settings.duration,
        generator_cpu=(gen1 - gen0) / settings.duration,
        good_rounds=driver.good_rounds,
        good_passed=driver.good_passed,
        tampered_passed=driver.tampered,
        warmup_s=warmup,
        retried=driver.retried,
        retry_reasons=driver.retry_reasons,
    )


def run_fleet(bundle: Bundle, settings: FleetSettings) -> FleetResult:
    """Start a verifier, run the fleet against it, stop it."""
    import importlib.util

    if importlib.util.find_spec("veritee.cli.verifier") is None:
        raise ImportError("veritee.cli.verifier (the verifier service) is not available")
    nodes, ca = _nodes(bundle, settings)
    with tempfile.TemporaryDirectory(prefix="veritee-fleet-") as workdir:
        verifier = VerifierProcess(Path(workdir), bundle, ca.pem, settings).start()
        try:
            return asyncio.run(_run(verifier, settings, nodes, ca))
        except (RuntimeError, OSError) as exc:  # connections (OSError), HTTP error statuses (RuntimeError), FleetError
            raise FleetError(f"{exc}\nverifier log (last lines):\n{verifier.log_tail()}") from exc
        finally:
            verifier.stop()


@register(
    "fleet",
    "fleet: nodes per minute one verifier attests (HTTP + DB + full appraisal), latency, memory per node",
    peer=None,
    target=Target(TargetKind.OURS_AT_MOST, 60.0 / TARGET_NODES_PER_MINUTE, "≥ 20,000 nodes/min (≤ 3 ms per node)"),
    full=Iterations(ours=FULL.windows, peer=0),
    quick=Iterations(ours=QUICK.windows, peer=0),
)
def fleet_benchmark(bundle: Bundle, iterations: int) -> OurRun:
    """``iterations`` measurement windows: the FULL settings, or the QUICK ones when fewer windows are asked for."""
    settings = replace(FULL if iterations >= FULL.windows else QUICK, windows=iterations)
    result = run_fleet(bundle, settings)
    print(result.report())
    expected = {Variant.GOOD: True, Variant.IMA_ENTRY_CHANGED: False, Variant.BOOT_EVENT_CHANGED: False}
    verdicts = {
        Variant.GOOD: result.good_rounds > 0 and result.good_passed == result.good_rounds,
        Variant.IMA_ENTRY_CHANGED: result.tampered_passed.get("ima_entry_changed", True),
        Variant.BOOT_EVENT_CHANGED: result.tampered_passed.get("boot_event_changed", True),
    }
    units = {
        "nodes": settings.nodes,
        "rounds": result.rounds,
        "nodes_per_minute": round(result.nodes_per_minute),
        "latency_p50_us": round(result.percentile(0.5) * 1e6),
        "latency_p99_us": round(result.percentile(0.99) * 1e6),
        "bytes_per_node": round(result.mb_per_node * 1e6),
        "errors": len(result.errors),
    }
    return OurRun(Stats.of(result.seconds_per_node()), verdicts, expected, units)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the small smoke-test settings")
    parser.add_argument("--nodes", type=int, help="fleet size")
    parser.add_argument("--interval", type=float, help="seconds between a node's rounds")
    parser.add_argument("--duration", type=float, help="seconds measured in the steady state")
    parser.add_argument("--initial-lines", type=int, help="IMA lines in each node's first round")
    parser.add_argument("--connections", type=int, help="HTTP connections of the load generator (default 64)")
    parser.add_argument("--db", help="verifier database URL (default: a SQLite file)")
    parser.add_argument("--bundle", type=Path, default=default_bundle_dir(REPO_ROOT), help="evidence bundle dir")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.nodes:
        settings = replace(settings, nodes=args.nodes)
    if args.interval:
        settings = replace(settings, interval=args.interval)
    if args.duration:
        settings = replace(settings, windows=max(1, round(args.duration / settings.window)))
    if args.initial_lines is not None:
        settings = replace(settings, initial_lines=args.initial_lines)
    if args.db:
        settings = replace(settings, db_url=args.db)
    if args.connections:
        settings = replace(settings, connections=args.connections)
    try:
        bundle = Bundle.load(args.bundle)
    except BundleError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 2
    try:
        result = run_fleet(bundle, settings)
    except (FleetError, ImportError) as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result.to_json(), indent=1) if args.json else result.report())
    return 0 if result.valid else 1


if __name__ == "__main__":
    sys.exit(main())
