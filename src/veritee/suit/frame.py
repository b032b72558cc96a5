"""Execution state of the SUIT interpreter: the manifest being run (:class:`Frame`), the state of one command
sequence (:class:`Ctx`), and the records/aborts built from them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from veritee.suit.envelope import VerifiedManifest
from veritee.suit.labels import ReportReason
from veritee.suit.model import CommandEntry, ComponentId
from veritee.suit.report import Record
from veritee.suit.results import ConditionFailed, ResultCode, SuitAbort

__all__ = ["Ctx", "Frame", "IndexKind", "abort", "fail", "record"]


class IndexKind(Enum):
    """The form of the current component index (manifest-37 §6.5): an integer, an array of integers, or True."""

    INTEGER = "integer"
    LIST = "list"
    ALL = "all"


@dataclass
class Frame:
    """One manifest under execution. ``path`` is its suit-record-manifest-id; ``manifest_id`` the id it holds
    references under (the root's manifest component id, or the component id a dependency is stored under);
    ``parent`` the dependent that processes it (None for the root)."""

    verified: VerifiedManifest
    path: tuple[int, ...] = ()
    depth: int = 0
    manifest_id: ComponentId = ()
    parent: Frame | None = None

    @property
    def common(self) -> Any:
        return self.verified.manifest.common

    def chain(self) -> frozenset[ComponentId]:
        """The manifest ids of this frame and of every dependent above it (the manifests being processed now)."""
        ids: set[ComponentId] = set()
        frame: Frame | None = self
        while frame is not None:
            ids.add(frame.manifest_id)
            frame = frame.parent
        return frozenset(ids)


@dataclass
class Ctx:
    """The state of one command sequence: its component index and the processor parameters scoped to it.

    ``soft_failure_set`` says whether this sequence set Soft Failure itself (the per-sequence default does not
    count as set). ``index_first`` / ``index_locked`` carry the Run Sequence rules for Strict Order False
    (manifest-37 §6.7): the sequence must begin with set-component-index, and any further one aborts.
    """

    frame: Frame
    section: int
    indices: tuple[int, ...] | None
    kind: IndexKind = IndexKind.INTEGER
    soft_failure: bool = False
    soft_failure_set: bool = False
    nested: bool = False
    shared: bool = False
    strict_order: bool = True
    index_first: bool = False
    index_locked: bool = False


def record(ctx: Ctx, entry: CommandEntry, index: int, props: Mapping[int, Any] | None = None) -> Record:
    return Record(ctx.frame.path, ctx.section, entry.offset, index, dict(props or {}))


def abort(
    ctx: Ctx,
    entry: CommandEntry,
    index: int,
    message: str,
    code: ResultCode,
    reason: ReportReason = ReportReason.OPERATION_FAILED,
    props: Mapping[int, Any] | None = None,
) -> SuitAbort:
    return SuitAbort(message, code=code, reason=reason, record=record(ctx, entry, index, props))


def fail(
    ctx: Ctx, entry: CommandEntry, index: int, message: str, props: Mapping[int, Any] | None = None
) -> ConditionFailed:
    return ConditionFailed(
        f"{entry.name} failed: {message}",
        code=ResultCode.CONDITION_FAILED,
        reason=ReportReason.CONDITION_FAILED,
        record=record(ctx, entry, index, props),
    )
