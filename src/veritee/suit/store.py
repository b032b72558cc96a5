"""Pluggable I/O of the SUIT processor: a :class:`Fetcher` and a :class:`ComponentStore`.

The processor never writes to the store while it runs. Every write, unlink and manifest record goes into a
:class:`StagingArea` (reads see the staged state); only when the whole procedure succeeded does the processor hand the
staging area to :meth:`ComponentStore.commit`, which must apply it atomically. A failed procedure commits nothing.
Invocations are queued in the staging area too and run, in order, after the commit.

Reference counting (trust-domains-12 §5.6.5, "suit-directive-unlink"): the store keeps, per component, the set of
manifests (by manifest component id) that hold a reference to it; the count is the size of that set. A manifest holds
a reference to every dependency it processed in a successful update, and a root manifest with a
manifest-component-id holds one to its own envelope. The processor stages the new holder sets in
:attr:`StagingArea.reference_changes`; :meth:`ComponentStore.commit` must persist them with everything else ("This
reference counter MUST persist across restarts") and :meth:`ComponentStore.references` must return them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from veritee.errors import NotFoundError
from veritee.suit.model import ComponentId, SuitDigest

__all__ = [
    "ComponentStore",
    "Fetcher",
    "InMemoryComponentStore",
    "InstalledManifest",
    "Invocation",
    "MappingFetcher",
    "StagingArea",
    "stored_references",
]


@runtime_checkable
class Fetcher(Protocol):
    """Fetches the payload named by a URI. Failures must be raised as VeriteeError subclasses (TransportError,
    NotFoundError, ...); they become a failed fetch directive in the report."""

    def fetch(self, uri: str) -> bytes: ...


@dataclass(frozen=True, slots=True)
class InstalledManifest:
    """What the store remembers of an installed manifest, keyed by its manifest component id."""

    sequence_number: int
    digest: SuitDigest


@dataclass(frozen=True, slots=True)
class Invocation:
    component_id: ComponentId
    arguments: bytes | None


@runtime_checkable
class ComponentStore(Protocol):
    """Persistent components of a device (by component id), their slots, and the installed-manifest records."""

    def read(self, component_id: ComponentId) -> bytes | None:
        """The committed content of a component, or None when it does not exist."""
        ...

    def slot(self, component_id: ComponentId) -> int | None:
        """The slot index a component currently occupies (A/B images), or None if the device has no slots for it."""
        ...

    def installed_manifest(self, manifest_id: ComponentId) -> InstalledManifest | None:
        """The record of the installed manifest for that manifest component id (for anti-rollback)."""
        ...

    def commit(self, staging: StagingArea) -> None:
        """Apply every staged write, unlink, manifest record and reference change atomically (all or nothing).

        ``staging.reference_changes`` maps a component id to its complete new set of holders; an empty set removes
        the component's reference record.
        """
        ...

    def invoke(self, component_id: ComponentId, arguments: bytes | None) -> None:
        """Run a component; raise a VeriteeError if it cannot be invoked."""
        ...

    def references(self, component_id: ComponentId) -> frozenset[ComponentId]:
        """The committed holders of ``component_id``: the manifest component ids of the manifests that reference it
        (empty when none does). Must survive restarts."""
        ...


def stored_references(store: ComponentStore, component_id: ComponentId) -> frozenset[ComponentId]:
    """``store.references(component_id)``; a store written before reference counting was added (it has no
    ``references`` method) counts no references, so components are deleted on unlink as they were then."""
    lookup = getattr(store, "references", None)
    if lookup is None:
        return frozenset()
    return frozenset(lookup(component_id))


@dataclass
class StagingArea:
    """Changes of one procedure, not yet committed. ``read`` overlays them on the store."""

    store: ComponentStore
    writes: dict[ComponentId, bytes] = field(default_factory=dict)
    unlinks: set[ComponentId] = field(default_factory=set)
    manifests: dict[ComponentId, InstalledManifest] = field(default_factory=dict)
    invocations: list[Invocation] = field(default_factory=list)
    reference_changes: dict[ComponentId, frozenset[ComponentId]] = field(default_factory=dict)

    def read(self, component_id: ComponentId) -> bytes | None:
        if component_id in self.writes:
            return self.writes[component_id]
        if component_id in self.unlinks:
            return None
        return self.store.read(component_id)

    def write(self, component_id: ComponentId, data: bytes) -> None:
        self.unlinks.discard(component_id)
        self.writes[component_id] = bytes(data)

    def unlink(self, component_id: ComponentId) -> None:
        self.writes.pop(component_id, None)
        self.unlinks.add(component_id)

    def installed_manifest(self, manifest_id: ComponentId) -> InstalledManifest | None:
        if manifest_id in self.manifests:
            return self.manifests[manifest_id]
        return self.store.installed_manifest(manifest_id)

    def record_manifest(self, manifest_id: ComponentId, record: InstalledManifest) -> None:
        self.manifests[manifest_id] = record

    def references(self, component_id: ComponentId) -> frozenset[ComponentId]:
        """The holders of ``component_id`` with the staged changes applied."""
        if component_id in self.reference_changes:
            return self.reference_changes[component_id]
        return stored_references(self.store, component_id)

    def add_reference(self, component_id: ComponentId, holder: ComponentId) -> frozenset[ComponentId]:
        """Record that manifest ``holder`` references ``component_id``; returns the new holders."""
        holders = self.references(component_id) | {holder}
        self.reference_changes[component_id] = holders
        return holders

    def drop_reference(self, component_id: ComponentId, holder: ComponentId) -> frozenset[ComponentId]:
        """Drop ``holder``'s reference (a manifest can only drop its own, once); returns the remaining holders."""
        holders = self.references(component_id)
        if holder in holders:
            holders = holders - {holder}
            self.reference_changes[component_id] = holders
        return holders

    def merge(self, other: StagingArea) -> None:
        """Apply the changes staged in ``other`` on top of this staging area (for a store that collects the commits
        of several procedures into one transaction). Invocations are not merged: the processor runs them."""
        for component_id in other.unlinks:
            self.unlink(component_id)
        for component_id, data in other.writes.items():
            self.write(component_id, data)
        self.manifests.update(other.manifests)
        self.reference_changes.update(other.reference_changes)


class InMemoryComponentStore:
    """A dict-backed :class:`ComponentStore` for tests and tools."""

    def __init__(
        self,
        components: Mapping[ComponentId, bytes] | None = None,
        *,
        slots: Mapping[ComponentId, int] | None = None,
        manifests: Mapping[ComponentId, InstalledManifest] | None = None,
        invoke_hook: Callable[[ComponentId, bytes | None], None] | None = None,
        references: Mapping[ComponentId, Iterable[ComponentId]] | None = None,
    ) -> None:
        self.components: dict[ComponentId, bytes] = dict(components or {})
        self.slots: dict[ComponentId, int] = dict(slots or {})
        self.manifests: dict[ComponentId, InstalledManifest] = dict(manifests or {})
        self.holders: dict[ComponentId, frozenset[ComponentId]] = {
            cid: frozenset(held) for cid, held in (references or {}).items() if held
        }
        self.invoked: list[Invocation] = []
        self.commits = 0
        self._invoke_hook = invoke_hook

    def read(self, component_id: ComponentId) -> bytes | None:
        return self.components.get(component_id)

    def slot(self, component_id: ComponentId) -> int | None:
        return self.slots.get(component_id)

    def installed_manifest(self, manifest_id: ComponentId) -> InstalledManifest | None:
        return self.manifests.get(manifest_id)

    def references(self, component_id: ComponentId) -> frozenset[ComponentId]:
        return self.holders.get(component_id, frozenset())

    def commit(self, staging: StagingArea) -> None:
        components = dict(self.components)
        for cid in staging.unlinks:
            components.pop(cid, None)
        components.update(staging.writes)
        manifests = {**self.manifests, **staging.manifests}
        holders = dict(self.holders)
        for cid, held in staging.reference_changes.items():
            if held:
                holders[cid] = frozenset(held)
            else:
                holders.pop(cid, None)
        self.components, self.manifests, self.holders = components, manifests, holders
        self.commits += 1

    def invoke(self, component_id: ComponentId, arguments: bytes | None) -> None:
        if component_id not in self.components:
            raise NotFoundError(f"cannot invoke a missing component {component_id!r}")
        if self._invoke_hook is not None:
            self._invoke_hook(component_id, arguments)
        self.invoked.append(Invocation(component_id, arguments))

    def snapshot(self) -> tuple[dict[ComponentId, bytes], dict[ComponentId, InstalledManifest]]:
        return dict(self.components), dict(self.manifests)


class MappingFetcher:
    """A :class:`Fetcher` serving fixed payloads by URI; unknown URIs raise :class:`NotFoundError`."""

    def __init__(self, payloads: Mapping[str, bytes]) -> None:
        self.payloads = dict(payloads)
        self.requests: list[str] = []

    def fetch(self, uri: str) -> bytes:
        self.requests.append(uri)
        try:
            return self.payloads[uri]
        except KeyError:
            raise NotFoundError(f"no payload at {uri}") from None
