"""The pieces of ``bench.teep_http``: the keys and catalog of the run, the TAM server process, the agents.

* :class:`World` holds the key material (written as PEM files into the run's directory, so that the TAM process and
  the agent processes read the same keys) and the Trusted Component every device gets.
* :func:`serve_main` is the TAM process (``python -m bench.teep_http serve ...``): the real
  :func:`veritee.web.tam_app.create_tam_app` under uvicorn (what ``veritee tam serve`` runs), optionally profiled
  (cProfile on the event loop thread and on every worker thread that runs the TEEP endpoint, merged into one file).
* :func:`run_agents` runs agents as threads: each exchange is a NEW device (a fresh TEEP key, pre-generated before
  the clock starts, an in-memory SUIT component store) that runs one session through the real
  :class:`veritee.service.broker.Broker` (its own HTTP client and connection, like a real device) and must end with
  the Trusted Component installed.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import secrets
import signal
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import serialization

from veritee.cose import Algorithm, CoseKey
from veritee.errors import VeriteeError
from veritee.service.broker import Broker, RetryPolicy
from veritee.suit.builder import TrustedComponentSpec, build_envelope
from veritee.suit.store import InMemoryComponentStore
from veritee.teep.agent import AgentConfig, DeviceClaims, TeepAgent

__all__ = [
    "COMPONENT",
    "COMPONENT_TEXT",
    "MANIFEST_ID",
    "AgentResult",
    "World",
    "run_agents",
    "serve_main",
]

COMPONENT: Final = (b"bench", b"SecureFS", b"teep-http", b"ta")
COMPONENT_TEXT: Final = "bench/SecureFS/teep-http/ta"
MANIFEST_ID: Final = (b"bench", b"manifests", b"teep-http")
PAYLOAD_SIZE: Final = 1024
DEVICE: Final = DeviceClaims(
    ueid=b"\x01" + bytes(range(16)),
    oemid=bytes.fromhex("894823"),
    hwmodel=b"veritee-bench-tee",
    hwversion=("1.0.0", 1),
    manifests=((60, b"\xa1\x01\x02"),),
)


def _private_pem(key: CoseKey) -> bytes:
    return key.key.private_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _public_pem(key: CoseKey) -> bytes:
    return key.public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _load(path: Path) -> CoseKey:
    return CoseKey(CoseKey.from_pem(path.read_bytes()).key)


@dataclass(frozen=True)
class World:
    """Keys of one run (P-256 everywhere: the TEEP suite ESP256) and the envelope of the Trusted Component."""

    tam: CoseKey
    signer: CoseKey
    attester: CoseKey
    envelope: bytes

    @classmethod
    def create(cls, directory: Path) -> World:
        keys = [CoseKey(CoseKey.generate(Algorithm.ESP256).key) for _ in range(3)]
        tam, signer, attester = keys
        spec = TrustedComponentSpec(
            component_id=COMPONENT,
            sequence_number=1,
            payload=secrets.token_bytes(PAYLOAD_SIZE),
            integrated=True,
            manifest_component_id=MANIFEST_ID,
        )
        world = cls(tam, signer, attester, build_envelope(spec, signer, kid=signer.thumbprint()))
        for name, key in (("tam", tam), ("signer", signer), ("attester", attester)):
            (directory / f"{name}.pem").write_bytes(_private_pem(key))
        (directory / "tc.suit").write_bytes(world.envelope)
        return world

    @classmethod
    def load(cls, directory: Path) -> World:
        return cls(
            _load(directory / "tam.pem"),
            _load(directory / "signer.pem"),
            _load(directory / "attester.pem"),
            (directory / "tc.suit").read_bytes(),
        )

    def signer_pem(self) -> str:
        return _public_pem(self.signer).decode("ascii")


# --- the TAM process ----------------------------------------------------------------------------------------------
class _ThreadProfiles:
    """One cProfile per thread that runs a wrapped function; merged at the end."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._all: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def wrap(self, fn: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
        def profiled(body: bytes) -> Any:
            profile = getattr(self._local, "profile", None)
            if profile is None:
                profile = self._local.profile = cProfile.Profile(time.thread_time)
                with self._lock:
                    self._all.append(profile)
            return profile.runcall(fn, body)

        return profiled

    def dump(self, main: cProfile.Profile, path: Path) -> None:
        stats = pstats.Stats(main)
        for profile in self._all:
            stats.add(profile)
        stats.dump_stats(str(path))


def serve_main(argv: Sequence[str]) -> int:
    """The TAM process of a run: ``serve --dir DIR --db URL --port P [--profile FILE]``."""
    import uvicorn

    from veritee.service.tam import TamService, TamServiceConfig
    from veritee.service.tam_attest import AttestationConfig
    from veritee.store.db import Database, DatabaseConfig
    from veritee.web.tam_app import create_tam_app, uvicorn_config

    parser = argparse.ArgumentParser(prog="python -m bench.teep_http serve")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--profile", type=Path)
    args = parser.parse_args(argv)
    world = World.load(args.dir)
    db = Database(DatabaseConfig(url=args.db))
    config = TamServiceConfig(tam_keys=(world.tam,), attestation=AttestationConfig((world.attester.public(),)))
    app = create_tam_app(TamService(db, config))
    server = uvicorn.Server(uvicorn_config(app, port=args.port, log_level="warning"))
    if args.profile is None:
        server.run()
    else:
        threads = _ThreadProfiles()
        endpoint = app.state.teep_endpoint
        endpoint.handle = threads.wrap(endpoint.handle)
        loop = cProfile.Profile(
            time.thread_time
        )  # uvicorn's loop runs in a thread of ours so that SIGTERM reaches us, not uvicorn
        thread = threading.Thread(target=loop.runcall, args=(server.run,))
        signal.signal(signal.SIGTERM, lambda _sig, _frame: setattr(server, "should_exit", True))
        thread.start()
        while thread.is_alive():
            thread.join(0.2)
        threads.dump(loop, args.profile)
    db.dispose()
    return 0


# --- the agents ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgentResult:
    """What the agents of one run did: per-exchange latencies, failures, wall-clock span (monotonic clock)."""

    latencies: tuple[float, ...]
    failures: tuple[str, ...]
    started: float
    ended: float
    cpu: float


def _exchange(url: str, world: World, key: CoseKey, verify: ssl.SSLContext) -> str | None:
    """One new device's session; returns what went wrong, or None when the TC was installed."""
    store = InMemoryComponentStore()
    config = AgentConfig(
        agent_key=key,
        tam_keys=(world.tam.public(),),
        tc_signer_keys=(world.signer.public(),),
        attestation_key=world.attester,
        device=DEVICE,
        present_key=True,
    )
    with Broker(url, TeepAgent(config, store), verify=verify, retry=RetryPolicy(attempts=1)) as broker:
        outcome = broker.request_policy_check()
    if not outcome.ok or outcome.installed != (MANIFEST_ID,) or outcome.exchanges != 3:
        return f"session: ok={outcome.ok} installed={outcome.installed} exchanges={outcome.exchanges}"
    if store.read(COMPONENT) is None:
        return "the Trusted Component is not in the device's store"
    return None


def run_agents(url: str, world: World, agents: int, per_agent: int, verify: ssl.SSLContext) -> AgentResult:
    """``agents`` threads, each running ``per_agent`` sessions of new devices back to back."""
    keys = [[CoseKey(CoseKey.generate(Algorithm.ESP256).key) for _ in range(per_agent)] for _ in range(agents)]
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    go = threading.Barrier(agents + 1)

    def agent(mine: list[CoseKey]) -> None:
        go.wait()
        for key in mine:
            start = time.perf_counter()
            try:
                problem = _exchange(url, world, key, verify)
            except VeriteeError as exc:  # recorded: a run with failures is invalid
                problem = f"{type(exc).__name__}: {exc}"
            took = time.perf_counter() - start
            with lock:
                latencies.append(took)
                if problem is not None:
                    failures.append(problem)

    threads = [threading.Thread(target=agent, args=(mine,), daemon=True) for mine in keys]
    for thread in threads:
        thread.start()
    cpu0 = time.process_time()
    go.wait()
    started = time.monotonic()
    for thread in threads:
        thread.join()
    ended = time.monotonic()
    return AgentResult(tuple(latencies), tuple(failures), started, ended, time.process_time() - cpu0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
