"""Simulated nodes: a swtpm whose PCRs hold exactly what a firmware event log and an IMA list say was measured.

:meth:`SimulatedNode.boot` does what firmware and the kernel would have done on a real machine: the TPM is reset
and started (from the locality a StartupLocality event names), every digest of every measured event of the firmware
log is extended into its PCR (every bank the log and the TPM both have), then every IMA entry into its PCR (10):
the SHA-1 bank gets the logged template hash, every other bank the hash of the template data (violations: all
0xff bytes, as the kernel does). The logs are written to the node's files (``binary_bios_measurements``,
``ascii_runtime_measurements``), where a node agent reads them.

At run time :meth:`SimulatedNode.measure` adds an IMA entry the way the kernel does (append the line, extend PCR
10), :meth:`SimulatedNode.run_unapproved_binary` measures a binary no policy knows, and
:meth:`SimulatedNode.tamper_pcr` extends a PCR without logging it (what a verifier must catch).

The TPM is opened for each operation and closed again, so a node agent can use it in between (swtpm serves one
connection at a time).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from tpm2_pytss import ESAPI, TSS2_Exception
from tpm2_pytss.constants import TPM2_SU

from veritee import eventlog, ima
from veritee.errors import DeviceError, ValidationError
from veritee.eventlog.replay import PCR_COUNT, startup_locality
from veritee.ima import ImaEntry
from veritee.ima.entry import digest_ng_field, name_ng_field, ng_template_data
from veritee.tpm.alg import HashAlg
from veritee.tpm.device import TpmDevice
from veritee.tpm.swtpm import SwtpmCa, SwtpmProcess

__all__ = ["EVENT_LOG_FILE", "IMA_LOG_FILE", "UNAPPROVED_BINARY", "SimulatedNode"]

EVENT_LOG_FILE = "binary_bios_measurements"
IMA_LOG_FILE = "ascii_runtime_measurements"
UNAPPROVED_BINARY = "/usr/local/bin/unapproved-tool"
_IMA_PCR = ima.IMA_PCR
_NO_ACTION = eventlog.EventType.EV_NO_ACTION


class SimulatedNode:
    """A simulated machine: a started swtpm plus the measurement log files in ``directory``.

    Create one with :meth:`start` (starts its own swtpm) or :meth:`create` (takes a started one); either boots it.
    ``banks`` are the TPM's active PCR banks (default: those its CA provisions).
    """

    def __init__(self, process: SwtpmProcess, directory: Path, *, banks: Iterable[HashAlg] | None = None) -> None:
        self.process = process
        self.directory = directory
        self.banks: tuple[HashAlg, ...] = (
            tuple(banks) if banks is not None else tuple(HashAlg.from_label(label) for label in process.ca.pcr_banks)
        )
        self.ima_lines = 0
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True)

    # --- construction ---------------------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        process: SwtpmProcess,
        directory: Path,
        *,
        event_log: bytes | None,
        ima_log: str | bytes | None,
        banks: Iterable[HashAlg] | None = None,
    ) -> SimulatedNode:
        """A node on the started swtpm ``process``, booted with these logs."""
        node = cls(process, directory, banks=banks)
        node.boot(event_log, ima_log)
        return node

    @classmethod
    def start(
        cls,
        directory: Path,
        ca: SwtpmCa,
        *,
        event_log: bytes | None,
        ima_log: str | bytes | None,
        clone_from: Path | None = None,
    ) -> SimulatedNode:
        """Start a swtpm under ``directory / "swtpm"`` (a clone of ``clone_from``, or a freshly provisioned TPM with
        its own EK) and boot it with these logs. Stop it with :meth:`stop` (or use the node as a context manager)."""
        process = SwtpmProcess(directory / "swtpm", ca, clone_from=clone_from).start()
        booted = False
        try:
            node = cls.create(process, directory, event_log=event_log, ima_log=ima_log)
            booted = True
            return node
        finally:
            if not booted:
                process.stop()

    def stop(self) -> None:
        self.process.stop()

    def __enter__(self) -> SimulatedNode:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- files ----------------------------------------------------------------------------------------------
    @property
    def tcti(self) -> str:
        return self.process.tcti

    @property
    def event_log_path(self) -> Path:
        return self.directory / EVENT_LOG_FILE

    @property
    def ima_log_path(self) -> Path:
        return self.directory / IMA_LOG_FILE

    # --- boot -----------------------------------------------------------------------------------------------
    def boot(self, event_log: bytes | None, ima_log: str | bytes | None) -> None:
        """Reset the TPM and measure ``event_log`` and ``ima_log`` into it as firmware and kernel would; write the
        log files (a missing log leaves no file). Malformed logs raise the parsers' errors before the TPM is touched.
        """
        parsed = eventlog.parse(event_log) if event_log is not None else None
        text = _text(ima_log) if ima_log is not None else None
        entries = ima.parse(text) if text is not None else []
        locality = startup_locality(parsed)[0] if parsed is not None else None
        with self._lock:
            self._reset(locality or 0)
            with TpmDevice(self.tcti) as tpm:
                if parsed is not None:
                    self._extend_events(tpm, parsed)
                for entry in entries:
                    tpm.pcr_extend(entry.pcr, self._ima_digests(entry))
            self._write(EVENT_LOG_FILE, event_log)
            self._write(IMA_LOG_FILE, None if text is None else text.encode("utf-8", "surrogateescape"))
            self.ima_lines = len(entries)

    def _reset(self, locality: int) -> None:
        """Reboot: TPM2_Shutdown(CLEAR) as an orderly OS does (so the TPM clock stays "safe"), power-cycle the TPM
        (PCRs back to their reset values), then TPM2_Startup(CLEAR) from ``locality`` as firmware does (after a
        StartupLocality event of 3 or 4, PCR 0 starts at that value)."""
        with self._esys() as esys:
            try:
                esys.shutdown(TPM2_SU.CLEAR)
            except TSS2_Exception as exc:
                raise DeviceError(f"TPM2_Shutdown failed: {exc}") from exc
        self.process.power_cycle()
        with self._esys() as esys:
            try:
                tcti = esys.tcti
                if tcti is None:
                    raise DeviceError(f"{self.tcti} has no TCTI to set the locality on")
                tcti.set_locality(locality)
                esys.startup(TPM2_SU.CLEAR)
                tcti.set_locality(0)
            except TSS2_Exception as exc:
                raise DeviceError(f"TPM2_Startup from locality {locality} failed: {exc}") from exc

    @contextmanager
    def _esys(self) -> Iterator[ESAPI]:
        """A raw ESAPI connection, for the two commands TpmDevice does not send (Shutdown, Startup at a locality)."""
        try:
            esys = ESAPI(self.tcti)
        except TSS2_Exception as exc:
            raise DeviceError(f"cannot open {self.tcti}: {exc}") from exc
        try:
            yield esys
        finally:
            esys.close()

    def _extend_events(self, tpm: TpmDevice, log: eventlog.EventLog) -> None:
        for event in log.events:
            if event.type == _NO_ACTION or event.pcr >= PCR_COUNT:
                continue  # EV_NO_ACTION is never extended; a PCR that does not exist cannot be
            digests = {alg.label: digest for alg, digest in event.digests.items() if alg in self.banks}
            if digests:
                tpm.pcr_extend(event.pcr, digests)

    def _ima_digests(self, entry: ImaEntry) -> dict[str, bytes]:
        """What the kernel extends for ``entry`` in each bank."""
        out: dict[str, bytes] = {}
        for alg in self.banks:
            if entry.is_violation:
                out[alg.label] = b"\xff" * alg.digest_size
            elif alg is HashAlg.SHA1 and len(entry.template_hash) == alg.digest_size:
                out[alg.label] = entry.template_hash  # the logged template hash, whatever it is
            else:
                out[alg.label] = alg.digest(entry.template_data)
        return out

    def _write(self, name: str, data: bytes | None) -> None:
        path = self.directory / name
        if data is None:
            path.unlink(missing_ok=True)
            return
        temporary = path.with_name(f".{name}.tmp")
        temporary.write_bytes(data)
        temporary.replace(path)

    # --- run time -------------------------------------------------------------------------------------------
    def measure(self, path: str, content: bytes, *, pcr: int = _IMA_PCR) -> str:
        """Measure a file as IMA does with the ``ima-ng`` template and a SHA-256 file digest: append the line to the
        list, then extend the PCR. Returns the line (without its newline)."""
        if not path.startswith("/") or any(c.isspace() for c in path) or not path.isprintable():
            raise ValidationError(f"IMA path names are absolute, printable and without blanks: {path!r}")
        if not 0 <= pcr < PCR_COUNT:
            raise ValidationError(f"PCR {pcr} does not exist")
        digest = hashlib.sha256(content).digest()
        data = ng_template_data(digest_ng_field("sha256", digest), name_ng_field(path.encode()))
        line = f"{pcr:2d} {hashlib.sha1(data).hexdigest()} ima-ng sha256:{digest.hex()} {path}"
        with self._lock:
            entry = ima.parse_line(line, self.ima_lines)
            with self.ima_log_path.open("a", encoding="utf-8") as f:
                f.write(line + "\n")
            self.ima_lines += 1
            with TpmDevice(self.tcti) as tpm:
                tpm.pcr_extend(entry.pcr, self._ima_digests(entry))
        return line

    def run_unapproved_binary(self, path: str = UNAPPROVED_BINARY, content: bytes | None = None) -> str:
        """Measure a binary no runtime policy allows (by default one with content made up on the spot)."""
        return self.measure(path, content if content is not None else b"#!/bin/sh\necho unapproved " + path.encode())

    def tamper_pcr(self, pcr: int, data: bytes = b"veritee: tampered") -> None:
        """Extend ``pcr`` in every bank with a hash of ``data`` and log nothing: the logs no longer replay to it."""
        with self._lock, TpmDevice(self.tcti) as tpm:
            tpm.pcr_extend(pcr, {alg.label: alg.digest(data) for alg in self.banks})

    def pcrs(self, selection: dict[str, list[int]]) -> dict[str, dict[int, bytes]]:
        """The TPM's current PCR values (bank label -> index -> value)."""
        with self._lock, TpmDevice(self.tcti) as tpm:
            return tpm.pcr_read(selection)


def _text(log: str | bytes) -> str:
    text = log.decode("utf-8", "surrogateescape") if isinstance(log, bytes) else log
    return text if not text or text.endswith("\n") else text + "\n"
