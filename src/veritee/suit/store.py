"""Pluggable I/O of the SUIT processor: a :class:`Fetcher` and a :class:`ComponentStore`.

The processor never writes to the store while it runs. Every write, unlink and manifest record goes into a
:class:`StagingArea` (reads see the staged state); only when the whole procedure succeeded does the processor hand the
staging area to :meth:`ComponentStore.commit`, which must apply it atomically. A failed procedure commits nothing.
Invocations are queued in the staging area too and run, in order, after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
        """Apply every staged write, unlink and manifest record atomically (all or nothing)."""
        ...

    def invoke(self, component_id: ComponentId, arguments: bytes | None) -> None:
        """Run a component; raise a VeriteeError if it cannot be invoked."""
        ...


@dataclass
class StagingArea:
    """Changes of one procedure, not yet committed. ``read`` overlays them on the store."""

    store: ComponentStore
    writes: dict[ComponentId, bytes] = field(default_factory=dict)
    unlinks: set[ComponentId] = field(default_factory=set)
    manifests: dict[ComponentId, InstalledManifest] = field(default_factory=dict)
    invocations: list[Invocation] = field(default_factory=list)

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


class InMemoryComponentStore:
    """A dict-backed :class:`ComponentStore` for tests and tools."""

    def __init__(
        self,
        components: Mapping[ComponentId, bytes] | None = None,
        *,
        slots: Mapping[ComponentId, int] | None = None,
        manifests: Mapping[ComponentId, InstalledManifest] | None = None,
        invoke_hook: Callable[[ComponentId, bytes | None], None] | None = None,
    ) -> None:
        self.components: dict[ComponentId, bytes] = dict(components or {})
        self.slots: dict[ComponentId, int] = dict(slots or {})
        self.manifests: dict[ComponentId, InstalledManifest] = dict(manifests or {})
        self.invoked: list[Invocation] = []
        self.commits = 0
        self._invoke_hook = invoke_hook

    def read(self, component_id: ComponentId) -> bytes | None:
        return self.components.get(component_id)

    def slot(self, component_id: ComponentId) -> int | None:
        return self.slots.get(component_id)

    def installed_manifest(self, manifest_id: ComponentId) -> InstalledManifest | None:
        return self.manifests.get(manifest_id)

    def commit(self, staging: StagingArea) -> None:
        components = dict(self.components)
        for cid in staging.unlinks:
            components.pop(cid, None)
        components.update(staging.writes)
        manifests = {**self.manifests, **staging.manifests}
        self.components, self.manifests = components, manifests
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
