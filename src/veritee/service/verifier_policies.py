"""Policies in the verifier: stored by name with a version, assigned per node or node group, compiled once.

:class:`PolicyCache` keeps one :class:`CompiledPolicy` per (name, version), shared by every node that uses it, and a
small index of names, versions and groups refreshed from the database every ``refresh_s`` (so a change made through
another replica is seen within that). A node uses its own policy, else its group's, else the configured default;
with none of them it is appraised against the empty policy (quote, and logs bound to the quote, only).

Policy inputs (files, the one-shot API) are veritee policy documents or Keylime policies; :func:`parse_policy_part`
tells them apart.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from veritee.appraisal.policy import (
    BootPolicy,
    CompiledPolicy,
    PolicySet,
    RuntimePolicy,
    compile_policy,
    export_policy,
    import_keylime_refstate,
    import_keylime_runtime_policy,
    parse_policy,
)
from veritee.appraisal.policy.document import FORMAT, VERSION
from veritee.errors import NotFoundError, PolicyError
from veritee.store.base import utcnow
from veritee.store.db import Database
from veritee.store.verifier_models import VerifierGroup, VerifierPolicy

__all__ = [
    "EMPTY_POLICY",
    "GroupInfo",
    "PolicyCache",
    "PolicyRef",
    "delete_policy",
    "get_policy",
    "list_policies",
    "parse_boot_policy",
    "parse_policy_part",
    "parse_runtime_policy",
    "put_group",
    "put_policy",
]

EMPTY_POLICY = compile_policy(None, None, name="none")
"""No boot or runtime policy: the quote is checked, and logs that are sent must replay to the quoted PCRs."""

_OUR_RUNTIME = frozenset(
    {"log_hash_alg", "digests", "excludes", "keyrings", "ignored_keyrings", "buffers", "signing_keys"}
)


@dataclass(frozen=True, slots=True)
class PolicyRef:
    name: str
    version: int
    policy_id: str


@dataclass(frozen=True, slots=True)
class GroupInfo:
    name: str
    policy_name: str | None
    interval_s: float | None


def parse_policy_part(value: Any, part: str) -> BootPolicy | RuntimePolicy | None:
    """``part`` ("boot" or "runtime") from a veritee policy document, our section format, or a Keylime policy
    (runtime_policy.json / mb_refstate.json). Accepts decoded JSON or JSON text/bytes."""
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{part} policy is not JSON: {exc}") from None
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise PolicyError(f"{part} policy must be a JSON object, not {type(value).__name__}")
    if part not in ("boot", "runtime"):
        raise PolicyError(f"unknown policy part {part!r}")
    if value.get("format") == FORMAT:
        document = parse_policy(value)
        return document.boot if part == "boot" else document.runtime
    if part == "runtime":
        if set(value) <= _OUR_RUNTIME and "digests" in value and "meta" not in value:
            return parse_policy({"format": FORMAT, "version": VERSION, "runtime": dict(value)}).runtime
        return import_keylime_runtime_policy(dict(value))
    if "scrtm_and_bios" in value:
        return import_keylime_refstate(dict(value))
    return parse_policy({"format": FORMAT, "version": VERSION, "boot": dict(value)}).boot


def parse_boot_policy(value: Any) -> BootPolicy | None:
    part = parse_policy_part(value, "boot")
    if part is not None and not isinstance(part, BootPolicy):
        raise PolicyError("expected a boot policy")
    return part


def parse_runtime_policy(value: Any) -> RuntimePolicy | None:
    part = parse_policy_part(value, "runtime")
    if part is not None and not isinstance(part, RuntimePolicy):
        raise PolicyError("expected a runtime policy")
    return part


def _document(policy: PolicySet) -> dict[str, Any]:
    return export_policy(policy.boot, policy.runtime, name=policy.name)


def put_policy(db: Database, policy: PolicySet) -> PolicyRef:
    """Store (or replace) the policy named ``policy.name``; the version grows only when the content changes."""
    if not policy.name or len(policy.name) > 200:
        raise PolicyError("a stored policy needs a name of 1..200 characters")
    compiled = compile_policy(policy.boot, policy.runtime, name=policy.name)  # refuse what does not compile
    document = _document(policy)
    with db.transaction() as session:
        row = session.get(VerifierPolicy, policy.name, with_for_update=True)
        if row is None:
            row = VerifierPolicy(
                name=policy.name, version=1, document=document, policy_id=compiled.policy_id, updated_at=utcnow()
            )
            session.add(row)
        elif row.policy_id != compiled.policy_id:
            row.version += 1
            row.document = document
            row.policy_id = compiled.policy_id
            row.updated_at = utcnow()
        return PolicyRef(row.name, row.version, row.policy_id)


def get_policy(db: Database, name: str) -> tuple[PolicyRef, PolicySet]:
    with db.transaction() as session:
        row = session.get(VerifierPolicy, name)
        if row is None:
            raise NotFoundError(f"no policy {name!r}")
        return PolicyRef(row.name, row.version, row.policy_id), parse_policy(row.document)


def list_policies(db: Database) -> list[PolicyRef]:
    with db.transaction() as session:
        rows = session.scalars(select(VerifierPolicy).order_by(VerifierPolicy.name))
        return [PolicyRef(r.name, r.version, r.policy_id) for r in rows]


def delete_policy(db: Database, name: str) -> None:
    with db.transaction() as session:
        row = session.get(VerifierPolicy, name)
        if row is None:
            raise NotFoundError(f"no policy {name!r}")
        session.delete(row)


def put_group(db: Database, name: str, *, policy_name: str | None, interval_s: float | None) -> GroupInfo:
    if not name or len(name) > 200:
        raise PolicyError("a group needs a name of 1..200 characters")
    if interval_s is not None and not interval_s > 0:
        raise PolicyError("a group's interval must be positive")
    with db.transaction() as session:
        row = session.get(VerifierGroup, name)
        if row is None:
            row = VerifierGroup(name=name)
            session.add(row)
        row.policy_name = policy_name
        row.interval_s = interval_s
        return GroupInfo(name, policy_name, interval_s)


@dataclass(frozen=True, slots=True)
class _Index:
    policies: Mapping[str, PolicyRef]
    groups: Mapping[str, GroupInfo]
    loaded_at: float


class PolicyCache:
    """Compiled policies by (name, version), plus the index that resolves a node's policy. Thread-safe."""

    def __init__(
        self,
        db: Database,
        *,
        default_policy: str | None,
        refresh_s: float = 1.0,
        max_compiled: int = 64,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.default_policy = default_policy
        self.refresh_s = refresh_s
        self.max_compiled = max_compiled
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._index: _Index | None = None
        self._compiled: OrderedDict[tuple[str, int], CompiledPolicy] = OrderedDict()
        self._oneshot: OrderedDict[str, CompiledPolicy] = OrderedDict()
        self.compilations = 0

    def invalidate(self) -> None:
        """Reload the index on next use (after a change made through this process)."""
        with self._lock:
            self._index = None

    def _current_index(self) -> _Index:
        with self._lock:
            index = self._index
            if index is not None and self._monotonic() - index.loaded_at < self.refresh_s:
                return index
        with self.db.transaction() as session:
            policies = {
                name: PolicyRef(name, version, policy_id)
                for name, version, policy_id in session.execute(
                    select(VerifierPolicy.name, VerifierPolicy.version, VerifierPolicy.policy_id)
                )
            }
            groups = {
                g.name: GroupInfo(g.name, g.policy_name, g.interval_s) for g in session.scalars(select(VerifierGroup))
            }
        index = _Index(policies, groups, self._monotonic())
        with self._lock:
            self._index = index
        return index

    def group(self, name: str | None) -> GroupInfo | None:
        return None if name is None else self._current_index().groups.get(name)

    def resolve(self, policy_name: str | None, group_name: str | None) -> PolicyRef | None:
        """The policy a node uses: its own, its group's, the default; None for the empty policy.

        A node or group that names a policy that does not exist is a PolicyError (the node is not appraised
        against a weaker policy by accident)."""
        index = self._current_index()
        name = policy_name
        if name is None and group_name is not None:
            group = index.groups.get(group_name)
            name = group.policy_name if group is not None else None
        if name is None:
            default = self.default_policy
            return index.policies.get(default) if default is not None else None
        ref = index.policies.get(name)
        if ref is None:
            raise PolicyError(f"policy {name!r} is assigned but does not exist")
        return ref

    def compiled(self, ref: PolicyRef | None) -> CompiledPolicy:
        """The compiled policy for ``ref`` (compiled at most once per name and version while cached)."""
        if ref is None:
            return EMPTY_POLICY
        key = (ref.name, ref.version)
        with self._lock:
            policy = self._compiled.get(key)
            if policy is not None:
                self._compiled.move_to_end(key)
                return policy
        with self.db.transaction() as session:
            row = session.get(VerifierPolicy, ref.name)
            if row is None:
                raise NotFoundError(f"policy {ref.name!r} was deleted")
            document, version = row.document, row.version
        parsed = parse_policy(document)
        policy = compile_policy(parsed.boot, parsed.runtime, name=parsed.name)
        with self._lock:
            self.compilations += 1
            self._compiled[(ref.name, version)] = policy
            while len(self._compiled) > self.max_compiled:
                self._compiled.popitem(last=False)
        return policy

    def for_node(self, policy_name: str | None, group_name: str | None) -> CompiledPolicy:
        return self.compiled(self.resolve(policy_name, group_name))

    def oneshot(self, boot: BootPolicy | None, runtime: RuntimePolicy | None) -> CompiledPolicy:
        """A compiled policy for the one-shot API, cached by content (the same policy sent again is not recompiled)."""
        if boot is None and runtime is None:
            return EMPTY_POLICY
        key = hashlib.sha256(json.dumps(export_policy(boot, runtime, name="oneshot"), sort_keys=True).encode())
        digest = key.hexdigest()
        with self._lock:
            policy = self._oneshot.get(digest)
            if policy is not None:
                self._oneshot.move_to_end(digest)
                return policy
        policy = compile_policy(boot, runtime, name="oneshot")
        with self._lock:
            self.compilations += 1
            self._oneshot[digest] = policy
            while len(self._oneshot) > 16:
                self._oneshot.popitem(last=False)
        return policy
