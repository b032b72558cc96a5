"""Security domains of the software TEE and the isolation rules a commit must pass.

A security domain is the SUIT trust domain of one manifest: every manifest component id (the id a Trusted Component's
manifest is stored under, and the prefix of each dependency) maps to a domain name through :class:`DomainRules`
(configured prefixes first, e.g. to put a TA and its personalization manifest in one domain; otherwise a name derived
from the manifest id, so each manifest - and each dependency - is a domain of its own). A domain owns the manifest's
envelope, the components the manifest lists (its dependencies excepted: they are domains of their own), the manifest's
installed record and the personalization data written through the domain's API.

:func:`plan_commit` turns a SUIT :class:`StagingArea` into per-domain operations and refuses with
:class:`IsolationError` anything that would let one domain write or remove what another owns:

* a staged write must be claimed by exactly one domain (listed by exactly one staged manifest's domain) and the
  component must be unowned or owned by that domain;
* a staged unlink of a component owned by domain D must be claimed by D, or (when no staged manifest lists it, not
  even as a dependency) come with the unlink of a manifest whose authority covers D: its own domain and,
  transitively, its dependencies' domains (a dependency's uninstall runs inside its dependent's);
* a manifest record goes to its manifest's domain, and must not move from another domain.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from veritee import cbor
from veritee.errors import AuthError, ConfigError, VeriteeError
from veritee.suit.envelope import decode_envelope
from veritee.suit.model import ComponentId
from veritee.suit.store import InstalledManifest, StagingArea

__all__ = ["CommitPlan", "DomainRules", "IsolationError", "check_domain_name", "component_key", "plan_commit"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MAX_AUTHORITY_DEPTH: Final = 8


class IsolationError(AuthError):
    """An operation of one security domain on what another domain owns (read, replace, remove) was refused."""


def check_domain_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"invalid security domain name {name!r}: 1..64 of [A-Za-z0-9._-], not starting with . - _")
    return name


def component_key(component_id: ComponentId) -> str:
    """The file name of a component (or manifest record) inside its domain: SHA-256 of its CBOR encoding."""
    return hashlib.sha256(cbor.encode([bytes(p) for p in component_id])).hexdigest()


@dataclass(frozen=True)
class DomainRules:
    """Manifest component id -> security domain. ``prefixes``: (manifest-id prefix, domain name), longest match
    first; other manifests get ``tc-<first 16 hex digits of the SHA-256 of the id's CBOR>``."""

    prefixes: Sequence[tuple[ComponentId, str]] = ()

    def __post_init__(self) -> None:
        for prefix, name in self.prefixes:
            check_domain_name(name)
            if not prefix or not all(isinstance(p, bytes) for p in prefix):
                raise ConfigError("a domain rule's prefix is a non-empty component id (byte strings)")

    def domain_for(self, manifest_id: ComponentId) -> str:
        best: tuple[int, str] | None = None
        for prefix, name in self.prefixes:
            if tuple(manifest_id[: len(prefix)]) == tuple(prefix) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), name)
        if best is not None:
            return best[1]
        return "tc-" + component_key(manifest_id)[:16]


@dataclass
class CommitPlan:
    """What a commit does, per domain."""

    writes: dict[ComponentId, tuple[str, bytes]] = field(default_factory=dict)  # cid -> (domain, content)
    unlinks: dict[ComponentId, str] = field(default_factory=dict)  # cid -> owning domain
    records: dict[ComponentId, tuple[str, InstalledManifest]] = field(default_factory=dict)
    references: dict[ComponentId, tuple[str, frozenset[ComponentId]]] = field(default_factory=dict)

    @property
    def domains(self) -> set[str]:
        records = {d for d, _ in self.records.values()} | {d for d, _ in self.references.values()}
        return {d for d, _ in self.writes.values()} | set(self.unlinks.values()) | records


def _listed(envelope: bytes | None) -> tuple[list[ComponentId], list[ComponentId]]:
    """(components a manifest lists as its own, its dependencies' prefixes); nothing for an unreadable envelope."""
    if envelope is None:
        return [], []
    try:
        common = decode_envelope(envelope).manifest.common
    except VeriteeError:
        return [], []
    own = [cid for i, cid in enumerate(common.components) if not common.is_dependency(i)]
    deps: list[ComponentId] = []
    for index in sorted(common.dependencies):
        try:
            deps.append(common.component_id(index))
        except VeriteeError:
            continue  # a dependency without a component id cannot be stored, so it owns nothing here
    return own, deps


def plan_commit(
    staging: StagingArea,
    rules: DomainRules,
    *,
    owner_of: Callable[[ComponentId], str | None],
    stored: Callable[[ComponentId], bytes | None],
    record_owner: Callable[[ComponentId], str | None],
    reference_owner: Callable[[ComponentId], str | None],
) -> CommitPlan:
    """Check ``staging`` against the isolation rules and say which domain each change goes to.

    ``owner_of`` gives the domain that owns a stored component, ``stored`` the committed content of a component,
    ``record_owner`` the domain holding a manifest's installed record, ``reference_owner`` the domain holding a
    component's reference holders. The holders of a component (manifests referencing it, trust-domains-12 §5.6.5)
    are kept in the domain of that component, whoever the holders are.
    """
    claims: dict[ComponentId, set[str]] = {}
    references: set[ComponentId] = set()  # dependency slots of the staged manifests

    def claim(cid: ComponentId, domain: str) -> None:
        claims.setdefault(tuple(cid), set()).add(domain)

    plan = CommitPlan()
    for manifest_id, record in staging.manifests.items():
        domain = rules.domain_for(manifest_id)
        previous = record_owner(manifest_id)
        if previous is not None and previous != domain:
            raise IsolationError(f"the record of manifest {manifest_id!r} belongs to domain {previous}, not {domain}")
        plan.records[manifest_id] = (domain, record)
        claim(manifest_id, domain)
        envelope = staging.writes.get(manifest_id)
        if envelope is None and manifest_id not in staging.unlinks:
            envelope = stored(manifest_id)
        own, dependencies = _listed(envelope)
        for cid in own:
            claim(cid, domain)
        references.update(tuple(d) for d in dependencies)

    for cid, data in staging.writes.items():
        claimers = claims.get(cid, set())
        if len(claimers) != 1:
            why = "no manifest of this commit lists it" if not claimers else f"domains {sorted(claimers)} all list it"
            raise IsolationError(f"cannot attribute component {cid!r} to one security domain: {why}")
        (domain,) = claimers
        owner = owner_of(cid)
        if owner is not None and owner != domain:
            raise IsolationError(f"component {cid!r} belongs to domain {owner}; domain {domain} cannot replace it")
        plan.writes[cid] = (domain, data)

    authority: set[str] = set()
    for cid in staging.unlinks:
        if record_owner(cid) is not None:  # an uninstalled manifest's envelope: its authority reaches its deps
            authority |= _authority(cid, rules, stored, set(), 0)
    for cid in staging.unlinks:
        owner = owner_of(cid)
        if owner is None:
            continue  # nothing stored: nothing to remove
        claimed = claims.get(cid, set())
        if claimed:
            if claimed != {owner}:
                raise IsolationError(
                    f"component {cid!r} belongs to domain {owner}; {sorted(claimed - {owner})} cannot remove it"
                )
        elif cid in references:
            raise IsolationError(f"component {cid!r} of domain {owner} is a dependency: its dependent cannot remove it")
        elif owner not in authority:
            raise IsolationError(f"component {cid!r} belongs to domain {owner}; no manifest of it is uninstalled")
        plan.unlinks[cid] = owner
    for cid, holders in staging.reference_changes.items():
        written = plan.writes.get(cid)
        domain = reference_owner(cid) or (written[0] if written else None) or owner_of(cid) or rules.domain_for(cid)
        plan.references[cid] = (domain, frozenset(holders))
    return plan


def _authority(
    manifest_id: ComponentId,
    rules: DomainRules,
    stored: Callable[[ComponentId], bytes | None],
    seen: set[ComponentId],
    depth: int,
) -> set[str]:
    if manifest_id in seen or depth > _MAX_AUTHORITY_DEPTH:
        return set()
    seen.add(manifest_id)
    out = {rules.domain_for(manifest_id)}
    for dep in _listed(stored(manifest_id))[1]:
        out |= _authority(dep, rules, stored, seen, depth + 1)
    return out
