"""What a push round reads of a node's row, and a cache of it so a round needs no read of its own.

:class:`NodeView` holds the columns a push round needs (:data:`~veritee.store.verifier_repo.ROUND_COLUMNS`). With
:class:`NodeViews` enabled (on SQLite, where one verifier process holds every node), the view a commit leaves is
kept in memory, so the next challenge and the next evidence of the node read nothing from the database.

A view may be stale (another process changed the row). That never decides anything: the commit locks the row and
checks that everything the appraisal depended on (:func:`basis_of`: round, keys, policy assignment, incremental
state) is still what the view said, refuses the round otherwise (the node asks for a new challenge), and drops the
view, so the next round reads the row again. In-process changes (admin actions, activation, unreachable marks)
drop the view at once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from typing import Any

from veritee.appraisal.node_state import NodeState
from veritee.store.verifier_models import NodeMode
from veritee.store.verifier_repo import ROUND_COLUMNS

__all__ = ["BASIS_COLUMNS", "NodeView", "NodeViews", "basis_of"]

BASIS_COLUMNS = (
    "round",
    "ak_public",
    "activated_at",
    "mode",
    "policy_name",
    "group_name",
    "clock",
    "ima_state",
    "event_log_digest",
    "boot_pcrs_digest",
    "want_full",
)
"""The columns an appraisal depends on: a round commits only if they did not change since it read them."""


@dataclass(frozen=True, slots=True)
class NodeView:
    """The columns of a node's row a push round reads (``ROUND_COLUMNS``)."""

    node_id: str
    mode: NodeMode
    state: NodeState
    ak_public: bytes
    agent_url: str | None
    policy_name: str | None
    group_name: str | None
    attributes: Mapping[str, Any] | None
    round: int
    clock: Any
    ima_state: Any
    event_log_digest: str | None
    boot_pcrs_digest: str | None
    want_full: bool
    activated: bool
    activated_at: datetime | None
    ak_revoked_at: datetime | None

    @classmethod
    def of(cls, row: Any) -> NodeView:
        """From a row (or any object) with these columns."""
        return cls(**{name: getattr(row, name) for name in ROUND_COLUMNS})

    def after(self, values: Mapping[str, Any]) -> NodeView:
        """This view with the columns a commit set (others are ignored)."""
        return replace(self, **{name: value for name, value in values.items() if name in _FIELDS})


_FIELDS = frozenset(field.name for field in fields(NodeView))


def basis_of(row: Any) -> tuple[Any, ...]:
    """What an appraisal of this node depended on (compare two with ``==``)."""
    return tuple(getattr(row, name) for name in BASIS_COLUMNS)


class NodeViews:
    """Node views by id (LRU, at most ``limit``; thread-safe). Disabled, it keeps nothing."""

    def __init__(self, *, enabled: bool, limit: int = 1_000_000) -> None:
        self.enabled = enabled
        self._limit = limit
        self._lock = threading.Lock()
        self._views: OrderedDict[str, NodeView] = OrderedDict()

    def get(self, node_id: str) -> NodeView | None:
        with self._lock:
            return self._views.get(node_id)

    def put(self, view: NodeView) -> None:
        """Keep ``view`` unless a view of a later round is kept already."""
        if not self.enabled:
            return
        with self._lock:
            current = self._views.get(view.node_id)
            if current is not None and current.round > view.round:
                return
            self._views[view.node_id] = view
            self._views.move_to_end(view.node_id)
            while len(self._views) > self._limit:
                self._views.popitem(last=False)

    def drop(self, node_id: str) -> None:
        with self._lock:
            self._views.pop(node_id, None)

    def __len__(self) -> int:
        return len(self._views)
