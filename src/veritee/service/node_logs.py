"""The measurement logs a node agent sends: the firmware event log and the IMA list, read from files.

On a Linux host they are the kernel's securityfs files (:data:`DEFAULT_EVENT_LOG`, :data:`DEFAULT_IMA_LOG`); a
simulated node has its own files. The IMA list only grows, so the reader remembers where the last line it returned
ends and continues from there next time (checked against the bytes of that line, so a list that was replaced — a
reboot, a new simulated node — is read from the start again). Only complete lines are returned: a line the kernel
is still writing is left for the next round.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from veritee.errors import DeviceError

__all__ = ["DEFAULT_EVENT_LOG", "DEFAULT_IMA_LOG", "ImaLogReader", "ImaSlice", "read_event_log"]

DEFAULT_EVENT_LOG = Path("/sys/kernel/security/tpm0/binary_bios_measurements")
DEFAULT_IMA_LOG = Path("/sys/kernel/security/ima/ascii_runtime_measurements")

_log = logging.getLogger("veritee.node")


def read_event_log(path: Path | None) -> bytes | None:
    """The firmware event log, or None when there is none (no path, or the file does not exist)."""
    if path is None:
        return None
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DeviceError(f"cannot read the firmware event log {path}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ImaSlice:
    """IMA lines ``offset .. offset + count - 1`` (text, each line ending in a newline)."""

    offset: int
    text: str
    count: int
    total: int
    """How many complete lines the list had when it was read."""


@dataclass(frozen=True, slots=True)
class _Mark:
    line: int  # number of complete lines before ``end``
    end: int  # byte position right after line ``line - 1``
    last: bytes  # the bytes of line ``line - 1`` (with its newline), to recognise the same list next time


class ImaLogReader:
    """Reads an IMA ASCII measurement list from a line offset on. Thread-safe."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._mark: _Mark | None = None
        self._lock = threading.Lock()
        self._warned = False

    def lines_from(self, offset: int) -> ImaSlice:
        """The complete lines from line ``offset`` (0-based) on; empty when the list has no more lines.

        A missing file (IMA not enabled, no path) reads as an empty list.
        """
        if offset < 0:
            raise DeviceError(f"IMA line offset {offset} is negative")
        if self.path is None:
            return ImaSlice(offset, "", 0, 0)
        with self._lock:
            try:
                return self._read(self.path, offset)
            except FileNotFoundError:
                if not self._warned:
                    _log.warning("IMA measurement list %s does not exist: sending no IMA entries", self.path)
                    self._warned = True
                self._mark = None
                return ImaSlice(offset, "", 0, 0)
            except OSError as exc:
                raise DeviceError(f"cannot read the IMA measurement list {self.path}: {exc}") from exc

    def _read(self, path: Path, offset: int) -> ImaSlice:
        with path.open("rb") as f:
            line, base = self._resume(f, offset)
            data = f.read()
        pos = 0  # relative to ``base``, always at the start of line ``line``
        while line < offset:
            newline = data.find(b"\n", pos)
            if newline < 0:
                break
            pos = newline + 1
            line += 1
        if line < offset:  # the list is shorter than the verifier thinks (it was replaced, or the offset is wrong)
            self._remember(data, base, pos, line)
            return ImaSlice(offset, "", 0, line)
        end = data.rfind(b"\n") + 1  # complete lines only
        if end <= pos:
            self._remember(data, base, pos, line)
            return ImaSlice(offset, "", 0, line)
        chunk = data[pos:end]
        count = chunk.count(b"\n")
        self._remember(data, base, end, offset + count)
        return ImaSlice(offset, chunk.decode("utf-8", "surrogateescape"), count, offset + count)

    def _resume(self, f: BinaryIO, offset: int) -> tuple[int, int]:
        """Seek ``f`` to the remembered line when it is at or before ``offset`` and the list is still the same one;
        returns (line number, byte position) where reading starts."""
        mark = self._mark
        if mark is None or mark.line > offset:
            return 0, 0
        f.seek(mark.end - len(mark.last))
        if f.read(len(mark.last)) == mark.last:
            return mark.line, mark.end
        f.seek(0)
        self._mark = None
        return 0, 0

    def _remember(self, data: bytes, base: int, end: int, lines: int) -> None:
        """Remember that ``lines`` complete lines end at ``base + end`` (``end`` relative to ``data``)."""
        if end <= 0:
            return  # nothing read past the remembered position: it still holds
        start = data.rfind(b"\n", 0, end - 1) + 1
        self._mark = _Mark(lines, base + end, data[start:end])
