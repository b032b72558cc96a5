"""swtpm software TPMs as local processes: provisioning with EK certificates, start, readiness, stop (I/O layer).

Everything lives under directories the caller passes in: the local CA (``swtpm_localca``) and its configuration files,
each TPM's state, logs and temporary files. Nothing is written under /etc, /var or $HOME; the system configuration
files of swtpm are never read (``swtpm_setup --config`` points at our own file, which points ``swtpm_localca`` at our
own ``--configfile``/``--optsfile``).

* :class:`SwtpmTools` — where the four programs are (resolved once, passed in).
* :class:`SwtpmCa` — a local CA directory plus the swtpm_setup configuration; ``provision(state_dir)`` manufactures a
  TPM state with RSA-2048 and ECC P-384 EKs, their certificates (NV 0x01c00002 / 0x01c00016) and a platform
  certificate. Every provisioned TPM gets a distinct EK; all of them chain to the same CA.
* :class:`SwtpmProcess` — one ``swtpm socket`` on a free loopback port pair (server P, control P+1, as the swtpm TCTI
  expects), context manager, stopped by PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from veritee.errors import ConfigError, DeviceError

__all__ = ["DEFAULT_SEARCH_PATH", "SwtpmCa", "SwtpmProcess", "SwtpmTools"]

DEFAULT_SEARCH_PATH = "/usr/local/bin:/usr/bin:/bin"
_STATE_FILE = "tpm2-00.permall"
_CMD_GET_CAPABILITY = 1
_CMD_INIT = 2
_LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class SwtpmTools:
    """Absolute paths of the swtpm programs."""

    swtpm: Path
    swtpm_setup: Path
    swtpm_localca: Path
    swtpm_cert: Path

    @classmethod
    def find(cls, search_path: str = DEFAULT_SEARCH_PATH) -> SwtpmTools:
        """Look the programs up in ``search_path`` (a PATH-style string); DeviceError names the missing ones."""
        found: dict[str, Path] = {}
        missing: list[str] = []
        for name in ("swtpm", "swtpm_setup", "swtpm_localca", "swtpm_cert"):
            where = shutil.which(name, path=search_path)
            if where is None:
                missing.append(name)
            else:
                found[name] = Path(where).resolve()
        if missing:
            raise DeviceError(f"swtpm programs not found in {search_path}: {', '.join(missing)}")
        return cls(found["swtpm"], found["swtpm_setup"], found["swtpm_localca"], found["swtpm_cert"])

    def environment(self, scratch: Path) -> dict[str, str]:
        """A minimal environment for the tools: PATH of their own directories, HOME/TMPDIR inside ``scratch``."""
        dirs = dict.fromkeys(str(p.parent) for p in (self.swtpm, self.swtpm_setup, self.swtpm_localca, self.swtpm_cert))
        return {"PATH": ":".join(dirs), "HOME": str(scratch), "TMPDIR": str(scratch), "LC_ALL": "C"}


class SwtpmCa:
    """A private swtpm_localca CA under ``root`` and the swtpm_setup configuration that uses it.

    ``pcr_banks`` are the banks activated in each provisioned TPM. The CA key pair is created by the first
    :meth:`provision`; later calls reuse it (swtpm_localca serialises concurrent use with a lock file in its statedir),
    so provisioning may run in several threads at once.
    """

    def __init__(self, root: Path, tools: SwtpmTools, *, pcr_banks: Sequence[str] = ("sha1", "sha256")) -> None:
        if not pcr_banks or any(not bank.isalnum() for bank in pcr_banks):
            raise ConfigError(f"invalid PCR bank list {list(pcr_banks)!r}")
        self.root = root.resolve()
        self.tools = tools
        self.pcr_banks = tuple(pcr_banks)
        self._first = threading.Lock()
        self._statedir = self.root / "localca"
        self._scratch = self.root / "tmp"
        self.setup_config = self.root / "swtpm_setup.conf"
        self._localca_config = self.root / "swtpm-localca.conf"
        self._localca_options = self.root / "swtpm-localca.options"
        for d in (self._statedir, self._scratch):
            d.mkdir(parents=True, exist_ok=True)
        self._write_configs()

    def _write_configs(self) -> None:
        self.setup_config.write_text(
            f"create_certs_tool = {self.tools.swtpm_localca}\n"
            f"create_certs_tool_config = {self._localca_config}\n"
            f"create_certs_tool_options = {self._localca_options}\n"
            f"active_pcr_banks = {','.join(self.pcr_banks)}\n"
        )
        self._localca_config.write_text(
            f"statedir = {self._statedir}\n"
            f"signingkey = {self._statedir / 'signkey.pem'}\n"
            f"issuercert = {self._statedir / 'issuercert.pem'}\n"
            f"certserial = {self._statedir / 'certserial'}\n"
        )
        self._localca_options.write_text(
            "--platform-manufacturer veritee\n--platform-version 2.1\n--platform-model swtpm\n"
        )

    @property
    def ca_cert_pem(self) -> bytes:
        """The local CA certificate that signs EK and platform certificates (PEM)."""
        return self._read_pem(self._statedir / "issuercert.pem")

    @property
    def root_ca_cert_pem(self) -> bytes:
        """The self-signed root above :attr:`ca_cert_pem` (PEM)."""
        return self._read_pem(self._statedir / "swtpm-localca-rootca-cert.pem")

    def _read_pem(self, path: Path) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise DeviceError(
                f"the local CA in {self._statedir} has not been created yet (provision a TPM first)"
            ) from None

    @property
    def created(self) -> bool:
        return (self._statedir / "issuercert.pem").exists()

    def provision(self, state_dir: Path, *, platform_cert: bool = True, timeout: float = 60.0) -> None:
        """Manufacture a fresh TPM 2.0 state in the empty or absent ``state_dir`` (EKs, EK certificates, PCR banks)."""
        state_dir = state_dir.resolve()
        if (state_dir / _STATE_FILE).exists():
            raise ConfigError(f"{state_dir} already holds a TPM state")
        state_dir.mkdir(parents=True, exist_ok=True)
        if self.created:
            self._run_setup(state_dir, platform_cert, timeout)
            return
        with self._first:  # the first run creates the CA key pair; let it finish before the others start
            self._run_setup(state_dir, platform_cert, timeout)

    def _run_setup(self, state_dir: Path, platform_cert: bool, timeout: float) -> None:
        log = state_dir.parent / f"{state_dir.name}.swtpm_setup.log"
        command = [
            str(self.tools.swtpm_setup),
            "--tpm2",
            "--tpm",
            f"{self.tools.swtpm} socket",
            "--tpmstate",
            str(state_dir),
            "--config",
            str(self.setup_config),
            "--pcr-banks",
            ",".join(self.pcr_banks),
            "--create-ek-cert",
            "--logfile",
            str(log),
        ]
        if platform_cert:
            command.append("--create-platform-cert")
        try:
            done = subprocess.run(
                command,
                env=self.tools.environment(self._scratch),
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DeviceError(f"swtpm_setup for {state_dir} did not finish within {timeout} s") from None
        except OSError as exc:
            raise DeviceError(f"cannot run swtpm_setup: {exc}") from exc
        if done.returncode != 0 or not (state_dir / _STATE_FILE).exists():
            detail = _tail(log) or done.stderr.decode(errors="replace").strip()
            raise DeviceError(f"swtpm_setup failed for {state_dir} (exit {done.returncode}): {detail}")


def _tail(path: Path, lines: int = 6, start: int = 0) -> str:
    try:
        with path.open("rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:])


def _port_pair(host: str) -> int:
    """A port P such that P and P+1 are both free on ``host`` right now."""
    for _ in range(64):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first:
            first.bind((host, 0))
            port: int = first.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as second:
                try:
                    second.bind((host, port + 1))
                except OSError:
                    continue
        return port
    raise DeviceError(f"no free TCP port pair on {host}")


class SwtpmProcess:
    """One swtpm TPM 2.0 process listening on loopback, with its state in ``base_dir / "tpmstate"``.

    On first start the state is created: copied from ``clone_from`` (a provisioned state directory — fast, but the
    clone shares that state's EKs and certificates) or else manufactured by ``ca.provision`` (a distinct EK). A state
    that already exists is reused, so stop/start models a reboot of the same machine. Use as a context manager;
    :meth:`stop` terminates the process by PID and reaps it.
    """

    def __init__(
        self,
        base_dir: Path,
        ca: SwtpmCa,
        *,
        clone_from: Path | None = None,
        host: str = _LOOPBACK,
        start_timeout: float = 10.0,
    ) -> None:
        self.base_dir = base_dir.resolve()
        self.ca = ca
        self.host = host
        self.start_timeout = start_timeout
        self._clone_from = clone_from
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self.base_dir.mkdir(parents=True, exist_ok=True)

    # --- state ----------------------------------------------------------------------------------------------
    @property
    def state_dir(self) -> Path:
        return self.base_dir / "tpmstate"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "swtpm.log"

    @property
    def ca_cert_pem(self) -> bytes:
        """The local CA certificate that signed this TPM's EK certificates (PEM)."""
        return self.ca.ca_cert_pem

    def _ensure_state(self) -> None:
        if (self.state_dir / _STATE_FILE).exists():
            return
        if self._clone_from is None:
            self.ca.provision(self.state_dir)
            return
        source = self._clone_from / _STATE_FILE
        if not source.exists():
            raise ConfigError(f"{self._clone_from} holds no provisioned TPM state to clone")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, self.state_dir / _STATE_FILE)

    # --- process ----------------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise DeviceError("swtpm is not running")
        return self._port

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise DeviceError("swtpm is not running")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def tcti(self) -> str:
        """The TCTI configuration string for tpm2-tss / tpm2-tools (control channel is port + 1)."""
        return f"swtpm:host={self.host},port={self.port}"

    def start(self, *, attempts: int = 4) -> SwtpmProcess:
        """Create the state if needed, start swtpm on a free port pair and wait until its control channel answers."""
        if self.running:
            return self
        self._ensure_state()
        attempt = 0
        while True:
            attempt += 1
            port = _port_pair(self.host)
            log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
            proc = self._spawn(port)
            failure = self._await_ready(proc, port)
            if not failure:
                self._proc, self._port = proc, port
                return self
            _stop(proc)
            log = _tail(self.log_path, start=log_start)
            if "in use" not in log or attempt >= attempts:  # only a lost race for the port pair is worth a retry
                raise DeviceError(f"swtpm did not start ({failure}); log: {log}")

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        tools = self.ca.tools
        command = [
            str(tools.swtpm),
            "socket",
            "--tpm2",
            "--server",
            f"type=tcp,port={port},bindaddr={self.host}",
            "--ctrl",
            f"type=tcp,port={port + 1},bindaddr={self.host}",
            "--tpmstate",
            f"dir={self.state_dir}",
            "--flags",
            "not-need-init,startup-clear",
            "--log",
            f"file={self.log_path}",
        ]
        try:
            return subprocess.Popen(
                command,
                env=tools.environment(self.base_dir),
                cwd=self.base_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError as exc:
            raise DeviceError(f"cannot run {tools.swtpm}: {exc}") from exc

    def _await_ready(self, proc: subprocess.Popen[bytes], port: int) -> str:
        """Empty string once the control channel answers CMD_GET_CAPABILITY, else why it did not."""
        deadline = time.monotonic() + self.start_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                return f"exited with status {code}"
            try:
                result = _control(self.host, port + 1, _CMD_GET_CAPABILITY, b"", 8)
                if result == 0:
                    return ""
                last = f"control channel answered 0x{result:08x}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.005)
        return f"not ready after {self.start_timeout} s: {last}"

    def power_cycle(self) -> None:
        """Reset the TPM as at power-on (swtpm CMD_INIT on the control channel); process, ports and state stay.

        Like firmware after a real power-on, the host must then send TPM2_Startup (``TpmDevice.startup()``) before
        any other command. PCRs are reset and resetCount increments, as on a reboot.
        """
        try:
            result = _control(self.host, self.port + 1, _CMD_INIT, struct.pack(">I", 0), 4)
        except OSError as exc:
            raise DeviceError(f"swtpm control channel on port {self.port + 1}: {exc}") from exc
        if result != 0:
            raise DeviceError(f"swtpm CMD_INIT failed with result 0x{result:08x}")

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after ``timeout``) and reap it. Idempotent."""
        proc, self._proc, self._port = self._proc, None, None
        if proc is not None:
            _stop(proc, timeout)

    def __enter__(self) -> SwtpmProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = f"{self.host}:{self._port} pid {self._proc.pid}" if self._proc and self._port else "stopped"
        return f"SwtpmProcess({self.base_dir}, {where})"


def _control(host: str, port: int, command: int, payload: bytes, reply_size: int) -> int:
    """One swtpm control-channel command; returns the result code (first 4 bytes of the reply)."""
    with socket.create_connection((host, port), timeout=2.0) as ctrl:
        ctrl.sendall(struct.pack(">I", command) + payload)
        reply = b""
        while len(reply) < reply_size:
            chunk = ctrl.recv(reply_size - len(reply))
            if not chunk:
                raise ConnectionError(f"control channel closed after {len(reply)} of {reply_size} bytes")
            reply += chunk
    result: int = struct.unpack(">I", reply[:4])[0]
    return result


def _stop(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
    else:
        proc.wait()
