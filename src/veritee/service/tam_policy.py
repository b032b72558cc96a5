"""Deployment policy of the TAM: selectors, and the decision of what an Update carries (no I/O here).

Selector syntax (``veritee deploy TC --to SELECTOR``):

* ``all`` - every device;
* ``attr:KEY=VALUE[,KEY=VALUE...]`` - devices whose attributes have all these values (compared as text; booleans as
  ``true``/``false``);
* ``device:REF[,REF...]`` - explicit devices, by numeric id or by TEEP key thumbprint (64 hex digits).

Deciding an Update (:func:`plan_update`): for every Trusted Component that a deployment targets at the device, the
newest catalog version is sent when the device lacks the component or has an older sequence number; nothing is sent
when the device has that version or a newer one, or an unrecognised version (it would refuse a rollback, and one
refused manifest fails the whole atomic Update), or once had a version at or above the newest (its anti-rollback
record outlives a removal). Components the TAM manages that the device has but no deployment targets any more go
into unneeded-manifest-list. A deployment's ``min_sequence_number`` is a floor: when the catalog has nothing at or
above it, the component is not sent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from veritee.errors import PolicyError

__all__ = [
    "CatalogVersion",
    "DeviceTc",
    "Selector",
    "SelectorKind",
    "SkipReason",
    "Skipped",
    "UpdatePlan",
    "Want",
    "plan_update",
    "wanted_components",
]

_THUMBPRINT: Final = re.compile(r"^[0-9a-f]{64}$")
_KEY: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class SelectorKind(StrEnum):
    ALL = "all"
    ATTRIBUTES = "attr"
    DEVICES = "device"


def attribute_text(value: Any) -> str:
    """How an attribute value compares with a selector value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Selector:
    """Which devices a deployment targets."""

    kind: SelectorKind
    attributes: Mapping[str, str] = field(default_factory=dict)
    device_ids: frozenset[int] = frozenset()
    thumbprints: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str) -> Selector:
        """Parse the selector syntax of the module docstring; raises PolicyError."""
        text = text.strip()
        if text == SelectorKind.ALL.value:
            return cls(SelectorKind.ALL)
        kind, sep, rest = text.partition(":")
        items = [item.strip() for item in rest.split(",")] if sep else []
        if not items or not all(items):
            raise PolicyError(f"selector {text!r}: use all, attr:KEY=VALUE[,...] or device:ID[,...]")
        if kind == SelectorKind.ATTRIBUTES.value:
            attributes: dict[str, str] = {}
            for item in items:
                key, eq, value = item.partition("=")
                if not eq or not _KEY.match(key.strip()):
                    raise PolicyError(f"selector {text!r}: {item!r} is not KEY=VALUE")
                if key.strip() in attributes:
                    raise PolicyError(f"selector {text!r}: attribute {key.strip()!r} given twice")
                attributes[key.strip()] = value.strip()
            return cls(SelectorKind.ATTRIBUTES, attributes=attributes)
        if kind == SelectorKind.DEVICES.value:
            ids: set[int] = set()
            thumbprints: set[str] = set()
            for item in items:
                if item.isdigit():
                    ids.add(int(item))
                elif _THUMBPRINT.match(item.lower()):
                    thumbprints.add(item.lower())
                else:
                    raise PolicyError(f"selector {text!r}: {item!r} is neither a device id nor a key thumbprint")
            return cls(SelectorKind.DEVICES, device_ids=frozenset(ids), thumbprints=frozenset(thumbprints))
        raise PolicyError(f"selector {text!r}: unknown kind {kind!r} (all, attr, device)")

    def text(self) -> str:
        if self.kind is SelectorKind.ALL:
            return "all"
        if self.kind is SelectorKind.ATTRIBUTES:
            return "attr:" + ",".join(f"{k}={v}" for k, v in sorted(self.attributes.items()))
        refs = [str(i) for i in sorted(self.device_ids)] + sorted(self.thumbprints)
        return "device:" + ",".join(refs)

    def to_json(self) -> dict[str, Any]:
        """The stored form (the ``selector`` JSON column)."""
        out: dict[str, Any] = {"kind": self.kind.value}
        if self.kind is SelectorKind.ATTRIBUTES:
            out["attributes"] = dict(sorted(self.attributes.items()))
        if self.kind is SelectorKind.DEVICES:
            out["device_ids"] = sorted(self.device_ids)
            out["thumbprints"] = sorted(self.thumbprints)
        return out

    @classmethod
    def from_json(cls, value: Any) -> Selector:
        if not isinstance(value, Mapping):
            raise PolicyError("a stored selector is a JSON object")
        try:
            kind = SelectorKind(str(value.get("kind")))
        except ValueError:
            raise PolicyError(f"unknown selector kind {value.get('kind')!r}") from None
        attributes = value.get("attributes", {})
        ids = value.get("device_ids", [])
        thumbprints = value.get("thumbprints", [])
        if not isinstance(attributes, Mapping) or not all(isinstance(v, str) for v in attributes.values()):
            raise PolicyError("selector attributes map names to text values")
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise PolicyError("selector device_ids is a list of integers")
        if not isinstance(thumbprints, list) or not all(isinstance(t, str) for t in thumbprints):
            raise PolicyError("selector thumbprints is a list of hex strings")
        return cls(kind, dict(attributes), frozenset(ids), frozenset(thumbprints))

    def matches(self, device_id: int, thumbprint: str, attributes: Mapping[str, Any]) -> bool:
        if self.kind is SelectorKind.ALL:
            return True
        if self.kind is SelectorKind.DEVICES:
            return device_id in self.device_ids or thumbprint in self.thumbprints
        return all(key in attributes and attribute_text(attributes[key]) == v for key, v in self.attributes.items())


@dataclass(frozen=True)
class CatalogVersion:
    """One catalog version, as the decision needs it."""

    id: int
    component_id: str
    manifest_id: str
    sequence_number: int
    manifest_digest: str
    image_digest: str | None


@dataclass(frozen=True)
class DeviceTc:
    """What the TAM knows a device has (or had: ``installed`` false keeps its anti-rollback floor)."""

    component_id: str
    sequence_number: int | None
    installed: bool


@dataclass(frozen=True)
class Want:
    component_id: str
    min_sequence_number: int | None


class SkipReason(StrEnum):
    NOT_IN_CATALOG = "not-in-catalog"
    BELOW_MINIMUM = "catalog-below-minimum"
    DEVICE_NEWER = "device-has-newer"
    UNKNOWN_VERSION = "device-has-unknown-version"
    ROLLBACK_FLOOR = "device-had-this-or-newer"


@dataclass(frozen=True)
class Skipped:
    component_id: str
    reason: SkipReason
    detail: str


@dataclass(frozen=True)
class UpdatePlan:
    install: tuple[CatalogVersion, ...] = ()
    remove: tuple[CatalogVersion, ...] = ()
    skipped: tuple[Skipped, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.install and not self.remove

    def to_json(self) -> dict[str, Any]:
        return {
            "install": [{"component_id": v.component_id, "sequence_number": v.sequence_number} for v in self.install],
            "remove": [{"component_id": v.component_id, "manifest_id": v.manifest_id} for v in self.remove],
            "skipped": [{"component_id": s.component_id, "reason": s.reason.value, "detail": s.detail}
                        for s in self.skipped],
        }  # fmt: skip


def wanted_components(
    deployments: Iterable[tuple[str, Selector, int | None]],
    device_id: int,
    thumbprint: str,
    attributes: Mapping[str, Any],
) -> dict[str, Want]:
    """The components that deployments (component, selector, minimum) target at this device (highest minimum)."""
    wanted: dict[str, Want] = {}
    for component_id, selector, minimum in deployments:
        if not selector.matches(device_id, thumbprint, attributes):
            continue
        previous = wanted.get(component_id)
        floor = minimum
        if previous is not None and previous.min_sequence_number is not None:
            floor = previous.min_sequence_number if floor is None else max(floor, previous.min_sequence_number)
        wanted[component_id] = Want(component_id, floor)
    return wanted


def plan_update(
    wanted: Mapping[str, Want],
    has: Mapping[str, DeviceTc],
    newest: Mapping[str, CatalogVersion],
    versions_of: Mapping[str, Mapping[int, CatalogVersion]],
) -> UpdatePlan:
    """Decide what an Update carries (see the module docstring).

    ``newest`` is the newest catalog version of each component; ``versions_of`` every catalog version by component
    and sequence number (to name the manifest id of the version a device has when it is removed).
    """
    install: list[CatalogVersion] = []
    skipped: list[Skipped] = []
    for component_id, want in sorted(wanted.items()):
        top = newest.get(component_id)
        if top is None:
            skipped.append(Skipped(component_id, SkipReason.NOT_IN_CATALOG, "no catalog version"))
            continue
        if want.min_sequence_number is not None and top.sequence_number < want.min_sequence_number:
            detail = f"newest is {top.sequence_number}, the deployment wants at least {want.min_sequence_number}"
            skipped.append(Skipped(component_id, SkipReason.BELOW_MINIMUM, detail))
            continue
        current = has.get(component_id)
        if current is None:
            install.append(top)
            continue
        if current.installed and current.sequence_number is None:
            detail = "the device reports a version that matches no catalog entry"
            skipped.append(Skipped(component_id, SkipReason.UNKNOWN_VERSION, detail))
            continue
        seq = current.sequence_number
        if seq is not None and seq >= top.sequence_number:
            if current.installed and seq > top.sequence_number:
                detail = f"device has {seq}, the newest catalog version is {top.sequence_number}"
                skipped.append(Skipped(component_id, SkipReason.DEVICE_NEWER, detail))
            elif not current.installed:
                detail = f"device recorded {seq} before removal; upload a version above it"
                skipped.append(Skipped(component_id, SkipReason.ROLLBACK_FLOOR, detail))
            continue
        install.append(top)
    remove: list[CatalogVersion] = []
    for component_id, current in sorted(has.items()):
        if not current.installed or component_id in wanted or component_id not in newest:
            continue
        versions = versions_of.get(component_id, {})
        exact = versions.get(current.sequence_number) if current.sequence_number is not None else None
        remove.append(exact if exact is not None else newest[component_id])
    return UpdatePlan(tuple(install), tuple(remove), tuple(skipped))
