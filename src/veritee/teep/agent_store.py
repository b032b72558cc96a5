"""The TEEP Agent's view of its SUIT component store: an all-or-nothing transaction over one Update, and the
inventory it reports in tc-list.

The SUIT processor commits each manifest on its own. A TEEP Update may carry several manifests and unlink others, and
the Agent applies it atomically: :class:`UpdateTransaction` is a ComponentStore that absorbs every per-manifest commit
(and defers invocations) until :meth:`UpdateTransaction.finish` hands the combined changes to the real store in a
single commit. If anything fails the transaction is dropped and the real store is untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from veritee.errors import DecodeError, ValidationError
from veritee.suit.envelope import decode_envelope
from veritee.suit.model import ComponentId, SuitDigest
from veritee.suit.store import ComponentStore, InMemoryComponentStore, InstalledManifest, Invocation, StagingArea
from veritee.teep.fields import SystemPropertyClaims

__all__ = ["InstalledTc", "ManifestInventory", "UpdateTransaction", "installed_manifests", "installed_tcs", "tc_list"]

_IMAGE_DIGEST = 3
_IMAGE_SIZE = 14


@runtime_checkable
class ManifestInventory(Protocol):
    """A store that can list its installed-manifest records (needed to report tc-list)."""

    def installed_manifests(self) -> Mapping[ComponentId, InstalledManifest]: ...


def installed_manifests(store: ComponentStore) -> Mapping[ComponentId, InstalledManifest]:
    """The installed-manifest records of ``store`` (empty when the store cannot list them)."""
    if isinstance(store, UpdateTransaction):
        return {**installed_manifests(store.base), **store.staging.manifests}
    if isinstance(store, ManifestInventory):
        return store.installed_manifests()
    if isinstance(store, InMemoryComponentStore):
        return dict(store.manifests)
    return {}


class UpdateTransaction:
    """A ComponentStore layered over ``base`` that collects the commits of several SUIT procedures."""

    def __init__(self, base: ComponentStore) -> None:
        self.base = base
        self.staging = StagingArea(base)
        self.finished = False

    def read(self, component_id: ComponentId) -> bytes | None:
        return self.staging.read(component_id)

    def slot(self, component_id: ComponentId) -> int | None:
        return self.base.slot(component_id)

    def installed_manifest(self, manifest_id: ComponentId) -> InstalledManifest | None:
        return self.staging.installed_manifest(manifest_id)

    def references(self, component_id: ComponentId) -> frozenset[ComponentId]:
        return self.staging.references(component_id)

    def commit(self, staging: StagingArea) -> None:
        self.staging.merge(staging)

    def invoke(self, component_id: ComponentId, arguments: bytes | None) -> None:
        self.staging.invocations.append(Invocation(component_id, arguments))

    def finish(self) -> None:
        """Apply everything to the real store in one commit, then run the deferred invocations."""
        if self.finished:
            raise ValidationError("the update transaction was already applied")
        self.finished = True
        self.base.commit(self.staging)
        for invocation in self.staging.invocations:
            self.base.invoke(invocation.component_id, invocation.arguments)


@dataclass(frozen=True)
class InstalledTc:
    manifest_id: ComponentId
    sequence_number: int
    component_ids: tuple[ComponentId, ...]


def installed_tcs(store: ComponentStore) -> tuple[InstalledTc, ...]:
    """The installed manifests whose envelopes the store keeps (under their manifest component id)."""
    out: list[InstalledTc] = []
    for manifest_id, record in sorted(installed_manifests(store).items()):
        raw = store.read(manifest_id)
        if raw is None:
            continue
        try:
            envelope = decode_envelope(raw)
        except (DecodeError, ValidationError):
            continue
        out.append(InstalledTc(manifest_id, record.sequence_number, tuple(envelope.manifest.common.components)))
    return tuple(out)


def tc_list(store: ComponentStore) -> tuple[SystemPropertyClaims, ...]:
    """system-property-claims for every installed component: id, image digest and size of what is stored."""
    entries: list[SystemPropertyClaims] = []
    seen: set[ComponentId] = set()
    for tc in installed_tcs(store):
        for component_id in tc.component_ids:
            content = store.read(component_id)
            if content is None or component_id in seen:
                continue
            seen.add(component_id)
            claims = {
                0: list(component_id),
                _IMAGE_DIGEST: SuitDigest.compute(content).encode(),
                _IMAGE_SIZE: len(content),
            }
            entries.append(SystemPropertyClaims(claims))
    return tuple(entries)
