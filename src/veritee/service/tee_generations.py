"""Crash-safe state for the software TEE: immutable generation directories and an atomically replaced pointer.

Layout under ``root``::

    CURRENT            "gen-00000007" - the one committed generation
    gen-00000007/      its files (relative paths; the software TEE keeps them flat: one directory to fsync)
    lock               flock(2): shared for readers, exclusive for a commit or recovery

A commit never touches the current generation. It builds the next one in ``gen-N.tmp`` (unchanged files are hard
links, new files are written and fsync'd), fsyncs every directory, renames it to ``gen-N``, writes ``CURRENT.tmp``
(fsync'd) and renames it over ``CURRENT`` (the commit point), then removes the previous generation. A crash before
the rename of ``CURRENT`` leaves the previous generation as the state; a crash after it leaves the new one. Opening
the store (:meth:`Generations.recover`) removes whatever a crash left behind. ``fault`` is called after every step
(:class:`CommitStep`) so that tests can inject a failure or kill the process there.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Final

from veritee.errors import StorageError
from veritee.service.tee_crypto import fsync_dir

__all__ = ["CommitStep", "FaultHook", "Generations"]

_POINTER: Final = "CURRENT"
_POINTER_TMP: Final = "CURRENT.tmp"
_LOCK: Final = "lock"
_GEN = re.compile(r"^gen-(\d{8})$")
_REL = re.compile(r"^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$")


class CommitStep(Enum):
    STAGED = "staged"  # the next generation is written in gen-N.tmp (not yet durable)
    SYNCED = "synced"  # every file and directory of it is fsync'd and it is renamed to gen-N
    POINTER_WRITTEN = "pointer-written"  # CURRENT.tmp names gen-N (fsync'd); CURRENT still names the previous one
    SWITCHED = "switched"  # CURRENT names gen-N: the commit point
    CLEANED = "cleaned"  # the previous generation is removed


FaultHook = Callable[[CommitStep], None]


def _gen_name(number: int) -> str:
    return f"gen-{number:08d}"


def _check_rel(path: str) -> None:
    if not _REL.match(path) or any(part in (".", "..") for part in path.split("/")):
        raise StorageError(f"invalid path inside the TEE state: {path!r}")


class Generations:
    """Generation directories with a CURRENT pointer under ``root`` (created if missing)."""

    def __init__(self, root: Path, *, fault: FaultHook | None = None) -> None:
        self.root = Path(root)
        self.fault = fault
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StorageError(f"cannot create the TEE state directory {self.root}: {exc}") from exc

    # --- locking --------------------------------------------------------------------------------------------------
    @contextmanager
    def lock(self, *, exclusive: bool) -> Iterator[None]:
        """flock on ``root/lock``: shared for reads, exclusive for commits (not reentrant)."""
        try:
            fd = os.open(self.root / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot open the TEE lock file: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # releases the lock

    # --- reading --------------------------------------------------------------------------------------------------
    def current(self) -> int:
        """The committed generation number (0 = nothing committed yet)."""
        try:
            text = (self.root / _POINTER).read_text("ascii").strip()
        except FileNotFoundError:
            return 0
        except (OSError, UnicodeDecodeError) as exc:
            raise StorageError(f"cannot read {self.root / _POINTER}: {exc}") from exc
        match = _GEN.match(text)
        if match is None:
            raise StorageError(f"{self.root / _POINTER} is corrupt: {text[:40]!r}")
        number = int(match.group(1))
        if not (self.root / text).is_dir():
            raise StorageError(f"{self.root / _POINTER} names {text}, which does not exist")
        return number

    def path(self, number: int) -> Path | None:
        return self.root / _gen_name(number) if number > 0 else None

    def files(self, number: int) -> list[str]:
        """Every file of generation ``number``, as relative paths."""
        base = self.path(number)
        if base is None:
            return []
        out: list[str] = []
        try:
            for dirpath, _dirs, names in os.walk(base):
                rel = Path(dirpath).relative_to(base)
                out.extend(str(rel / name) if str(rel) != "." else name for name in names)
        except OSError as exc:
            raise StorageError(f"cannot list {base}: {exc}") from exc
        return sorted(out)

    def read(self, number: int, rel: str) -> bytes | None:
        _check_rel(rel)
        base = self.path(number)
        if base is None:
            return None
        try:
            return (base / rel).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"cannot read {base / rel}: {exc}") from exc

    # --- recovery -------------------------------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Remove what an interrupted commit left behind (call with the exclusive lock held); returns the names."""
        current = self.current()
        keep = _gen_name(current) if current else None
        removed: list[str] = []
        try:
            entries = sorted(os.listdir(self.root))
        except OSError as exc:
            raise StorageError(f"cannot list {self.root}: {exc}") from exc
        for name in entries:
            stale = (name.startswith("gen-") and name != keep) or name == _POINTER_TMP
            if not stale:
                continue
            target = self.root / name
            try:
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink()
            except OSError as exc:
                raise StorageError(f"cannot remove the stale {target}: {exc}") from exc
            removed.append(name)
        if removed:
            fsync_dir(self.root)
        return removed

    # --- committing -----------------------------------------------------------------------------------------------
    def _step(self, step: CommitStep) -> None:
        if self.fault is not None:
            self.fault(step)

    def commit(self, changes: Mapping[str, bytes | None]) -> int:
        """Make a new generation = current + ``changes`` (path -> new content, None = delete); call with the exclusive
        lock held. Returns the new generation number once it is the committed state."""
        for rel in changes:
            _check_rel(rel)
        previous = self.current()
        number = previous + 1
        final = self.root / _gen_name(number)
        staging = self.root / (_gen_name(number) + ".tmp")
        try:
            self._build(previous, staging, changes)
        except (OSError, StorageError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, StorageError):
                raise
            raise StorageError(f"cannot stage TEE generation {number}: {exc}") from exc
        self._step(CommitStep.STAGED)
        try:
            self._sync_tree(staging)
            if final.exists():  # left by a crash between rename and pointer switch (recover() removes these)
                shutil.rmtree(final)
            os.rename(staging, final)
            fsync_dir(self.root)
        except (OSError, StorageError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise StorageError(f"cannot make TEE generation {number} durable: {exc}") from exc
        self._step(CommitStep.SYNCED)
        pointer_tmp = self.root / _POINTER_TMP
        try:
            fd = os.open(pointer_tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, (_gen_name(number) + "\n").encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StorageError(f"cannot write {pointer_tmp}: {exc}") from exc
        self._step(CommitStep.POINTER_WRITTEN)
        try:
            os.replace(pointer_tmp, self.root / _POINTER)  # the commit point
        except OSError as exc:
            raise StorageError(f"cannot switch the TEE to generation {number}: {exc}") from exc
        fsync_dir(self.root)  # durability of the switch; the switch itself already happened
        self._step(CommitStep.SWITCHED)
        old = self.path(previous)
        if old is not None:  # garbage from now on: if this is interrupted, recover() finishes it
            shutil.rmtree(old, ignore_errors=True)
        self._step(CommitStep.CLEANED)
        return number

    def _build(self, previous: int, staging: Path, changes: Mapping[str, bytes | None]) -> None:
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(mode=0o700)
        old = self.path(previous)
        for rel in self.files(previous):
            if rel in changes:
                continue
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            assert old is not None
            os.link(old / rel, target)  # unchanged content is shared with the previous generation
        for rel, data in changes.items():
            if data is None:
                continue
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)

    @staticmethod
    def _sync_tree(top: Path) -> None:
        for dirpath, _dirs, _names in os.walk(top, topdown=False):
            fsync_dir(Path(dirpath))
