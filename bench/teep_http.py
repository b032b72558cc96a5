"""TEEP over HTTP: complete device exchanges per second against one TAM, next to the bare signature cost.

``python -m bench.teep_http [--quick] [--agents N ...] [--exchanges M] [--db URL] [--profile FILE] [--json]``

One TAM process (:func:`bench.teep_http_world.serve_main`: the real web application under uvicorn, SQLite unless
``--db`` names another database) listens on loopback; the catalog holds one signed 1 KiB Trusted Component deployed
to every device, and the TAM requires attestation. N agent threads in this process each run sessions of NEW devices
back to back through the real Broker: POST (empty) -> QueryRequest; QueryResponse with an EAT -> Update carrying
the SUIT envelope; Success -> 204. A device counts only if the Trusted Component ends up in its store, and at the end
the TAM's database must list every device with the component installed: a fast wrong answer cannot pass.

Figures: devices per second at each N (wall clock from the start barrier to the last session's end), session latency
p50 / p99, CPU of the TAM process and of the agents (both on this machine), and the signature ceiling: the sign and
verify operations one exchange needs on both sides (TAM: sign QueryRequest and Update, verify QueryResponse, EAT and
Success; Agent: verify QueryRequest, Update and the SUIT manifest, sign EAT, QueryResponse and Success), each timed
with ``cryptography`` directly (ECDSA P-256 / SHA-256 over 1 KiB) in the same run: the devices per second this
machine would reach if signatures were the only cost. Target: at least 300 devices per second.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from bench.teep_http_world import COMPONENT_TEXT, World, cpu_seconds, run_agents, serve_main
from bench.timing import Stats, measure

__all__ = ["SIGNATURES", "TARGET", "Row", "SignatureCeiling", "TeepHttpResult", "main", "run"]

REPO_ROOT: Final = Path(__file__).resolve().parents[1]
TARGET: Final = 300.0
DEFAULT_AGENTS: Final = (1, 4, 16)
SIGNATURES: Final[dict[str, dict[str, tuple[str, ...]]]] = {  # what one exchange signs and verifies, by side
    "tam": {"sign": ("QueryRequest", "Update"), "verify": ("QueryResponse", "EAT", "Success")},
    "agent": {"sign": ("EAT", "QueryResponse", "Success"), "verify": ("QueryRequest", "Update", "SUIT manifest")},
}
TBS_SIZE: Final = 1024


@dataclass(frozen=True)
class SignatureCeiling:
    sign: Stats
    verify: Stats
    cores: int

    @property
    def signs(self) -> int:
        return sum(len(side["sign"]) for side in SIGNATURES.values())

    @property
    def verifies(self) -> int:
        return sum(len(side["verify"]) for side in SIGNATURES.values())

    @property
    def per_exchange(self) -> float:
        """CPU seconds of signatures in one exchange (both sides)."""
        return self.signs * self.sign.median + self.verifies * self.verify.median

    @property
    def devices_per_second(self) -> float:
        """The ceiling with every core of this machine doing nothing but signatures."""
        return self.cores / self.per_exchange

    def to_json(self) -> dict[str, Any]:
        return {"signs": self.signs, "verifies": self.verifies, "sign": self.sign.to_json(),
                "verify": self.verify.to_json(), "per_exchange_s": self.per_exchange, "cores": self.cores,
                "devices_per_second": self.devices_per_second,
                "devices_per_second_one_core": 1 / self.per_exchange, "operations": SIGNATURES}  # fmt: skip


def signature_ceiling(quick: bool) -> SignatureCeiling:
    n = 50 if quick else 2000
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    data = os.urandom(TBS_SIZE)
    algorithm = ec.ECDSA(hashes.SHA256())
    signature = key.sign(data, algorithm)
    sign = measure(partial(key.sign, data, algorithm), n)
    verify = measure(partial(public.verify, signature, data, algorithm), n)
    return SignatureCeiling(sign, verify, os.cpu_count() or 1)


@dataclass(frozen=True)
class Row:
    agents: int
    devices: int
    failures: tuple[str, ...]
    seconds: float
    latencies: tuple[float, ...]
    tam_cpu: float  # seconds
    agents_cpu: float

    @property
    def per_second(self) -> float:
        return self.devices / self.seconds

    def percentile(self, q: int) -> float:
        """The q-th percentile (1..99) of the session latencies."""
        ordered = sorted(self.latencies)
        if len(ordered) == 1:
            return ordered[0]
        return statistics.quantiles(ordered, n=100, method="inclusive")[q - 1]

    @property
    def tam_ms(self) -> float:
        """CPU milliseconds the TAM process spent per exchange."""
        return self.tam_cpu / self.devices * 1e3

    @property
    def agent_ms(self) -> float:
        return self.agents_cpu / self.devices * 1e3

    def to_json(self) -> dict[str, Any]:
        return {"agents": self.agents, "devices": self.devices, "failures": list(self.failures[:5]),
                "failed": len(self.failures), "seconds": self.seconds, "devices_per_second": self.per_second,
                "p50_s": self.percentile(50), "p99_s": self.percentile(99),
                "tam_cpu": self.tam_cpu / self.seconds, "agents_cpu": self.agents_cpu / self.seconds,
                "tam_cpu_ms_per_exchange": self.tam_ms, "agent_cpu_ms_per_exchange": self.agent_ms}  # fmt: skip


@dataclass(frozen=True)
class TeepHttpResult:
    rows: tuple[Row, ...]
    ceiling: SignatureCeiling
    db: str
    installed: int  # devices the TAM's database lists with the component installed
    expected: int  # devices that ran a session
    load: float  # the 1-minute load average when the run started (other work on this machine)

    @property
    def valid(self) -> bool:
        return all(not row.failures for row in self.rows) and self.installed == self.expected

    @property
    def best(self) -> float:
        return max(row.per_second for row in self.rows)

    @property
    def met(self) -> bool:
        return self.valid and self.best >= TARGET

    def to_json(self) -> dict[str, Any]:
        return {"rows": [row.to_json() for row in self.rows], "signature_ceiling": self.ceiling.to_json(),
                "db": self.db, "installed": self.installed, "expected": self.expected, "valid": self.valid,
                "load_average": self.load,
                "best_devices_per_second": self.best, "target": TARGET, "met": self.met}  # fmt: skip

    def render(self) -> str:
        c = self.ceiling
        lines = [
            f"TEEP over HTTP on loopback, one TAM process ({self.db}), {c.cores} cores shared with the agents",
            f"load average at the start: {self.load:.2f}",
            f"{'agents':>6} {'devices':>8} {'devices/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'TAM CPU':>8} "
            f"{'agents CPU':>10} {'TAM ms/dev':>10} {'agent ms/dev':>12}",
        ]
        for row in self.rows:
            lines.append(f"{row.agents:>6} {row.devices:>8} {row.per_second:>10.1f} {row.percentile(50) * 1e3:>8.2f} "
                         f"{row.percentile(99) * 1e3:>8.2f} {row.tam_cpu / row.seconds:>8.0%} "
                         f"{row.agents_cpu / row.seconds:>10.0%} {row.tam_ms:>10.2f} "
                         f"{row.agent_ms:>12.2f}")  # fmt: skip
        lines.append(
            f"signatures per exchange: {c.signs} sign + {c.verifies} verify (ECDSA P-256, cryptography: sign "
            f"{c.sign.median * 1e6:.0f} µs, verify {c.verify.median * 1e6:.0f} µs) = {c.per_exchange * 1e3:.2f} ms "
            f"-> ceiling {c.devices_per_second:.0f} devices/s on {c.cores} cores ({1 / c.per_exchange:.0f} on one)"
        )
        failed = sum(len(row.failures) for row in self.rows)
        lines.append(f"TAM database: {self.installed} of {self.expected} devices have the component installed; "
                     f"{failed} sessions failed")  # fmt: skip
        verdict = "met" if self.met else ("INVALID RUN" if not self.valid else "MISSED")
        lines.append(f"target ≥ {TARGET:.0f} devices/s: {verdict} (best {self.best:.1f} devices/s)")
        return "\n".join(lines)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _prepare(db_url: str, world: World) -> None:
    from veritee.service.tam import TamService, TamServiceConfig
    from veritee.store.db import Database, DatabaseConfig

    db = Database(DatabaseConfig(url=db_url))
    try:
        db.upgrade()
        service = TamService(db, TamServiceConfig(tam_keys=(world.tam,)))
        service.add_signer("bench-vendor", world.signer_pem())
        service.upload_tc(world.envelope, "bench: 1 KiB Trusted Component")
        service.add_deployment(COMPONENT_TEXT, "all")
    finally:
        db.dispose()


def _installed(db_url: str) -> int:
    from sqlalchemy import func, select

    from veritee.store.db import Database, DatabaseConfig
    from veritee.store.tam_models import DeviceComponent

    db = Database(DatabaseConfig(url=db_url))
    try:
        with db.transaction() as s:
            query = select(func.count()).select_from(DeviceComponent)
            query = query.where(DeviceComponent.component_id == COMPONENT_TEXT, DeviceComponent.installed.is_(True))
            return int(s.scalar(query) or 0)
    finally:
        db.dispose()


class _Tam:
    """The TAM subprocess."""

    def __init__(self, directory: Path, db_url: str, profile: Path | None) -> None:
        self.port = _free_port()
        command = [sys.executable, "-m", "bench.teep_http", "serve", "--dir", str(directory), "--db", db_url,
                   "--port", str(self.port)]  # fmt: skip
        if profile is not None:
            command += ["--profile", str(profile)]
        self.log = directory / "tam.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}/tam"

    def wait(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the TAM exited with {self.proc.returncode}:\n{self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"the TAM did not listen within {timeout} s")

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run(agent_counts: Sequence[int], exchanges: int, *, quick: bool, db_url: str | None = None,
        profile: Path | None = None) -> TeepHttpResult:  # fmt: skip
    """Run the benchmark (``exchanges`` devices at each agent count, at least one per agent)."""
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="veritee-teep-http-") as tmp:
        directory = Path(tmp)
        url = db_url or f"sqlite:///{directory / 'tam.db'}"
        world = World.create(directory)
        _prepare(url, world)
        tam = _Tam(directory, url, profile)
        verify = ssl.create_default_context()  # one context for every Broker (plain HTTP: never used to connect)
        rows: list[Row] = []
        expected = 0
        try:
            tam.wait()
            warm = run_agents(tam.url, world, 1 if quick else 2, 1 if quick else 20, verify)  # caches, connections
            expected += len(warm.latencies)
            for agents in agent_counts:
                per_agent = max(1, exchanges // agents)
                cpu0 = tam.cpu()
                result = run_agents(tam.url, world, agents, per_agent, verify)
                tam_cpu = tam.cpu() - cpu0
                expected += len(result.latencies)
                rows.append(Row(agents, len(result.latencies), result.failures, result.ended - result.started,
                                result.latencies, tam_cpu, result.cpu))  # fmt: skip
        finally:
            tam.stop()
        installed = _installed(url)
        ceiling = signature_ceiling(quick)
        shown = "sqlite" if db_url is None else url.split(":", 1)[0]
        return TeepHttpResult(tuple(rows), ceiling, shown, installed, expected, load)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["serve"]:
        return serve_main(args_list[1:])
    parser = argparse.ArgumentParser(prog="python -m bench.teep_http", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few exchanges (a smoke run, not a measurement)")
    parser.add_argument("--agents", type=int, action="append", help="concurrent agents (repeatable; default 1 4 16)")
    parser.add_argument("--exchanges", type=int, help="devices per agent count (default 600, quick: one per agent)")
    parser.add_argument("--db", help="an EMPTY database for the TAM (default: a SQLite file in a temporary directory)")
    parser.add_argument("--profile", type=Path, help="write the TAM's cProfile statistics (pstats) to this file")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(args_list)
    counts = tuple(args.agents or DEFAULT_AGENTS)
    if any(n < 1 for n in counts):
        parser.error("--agents must be at least 1")
    exchanges = args.exchanges or (max(counts) if args.quick else 600)
    result = run(counts, exchanges, quick=args.quick, db_url=args.db, profile=args.profile)
    print(json.dumps(result.to_json(), indent=2) if args.json else result.render())
    return 0 if result.valid else 1


if __name__ == "__main__":
    raise SystemExit(main())
