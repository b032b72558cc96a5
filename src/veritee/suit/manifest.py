"""SUIT_Manifest and SUIT_Common: strict decoding into frozen dataclasses (manifest-37 §8.4, trust-domains-12 §5).

Component indices: ``suit-components`` gives indices 0..n-1. ``suit-dependencies`` marks indices that hold dependency
manifests; the trust-domains examples (and libcsuit) put dependencies at indices *after* the component list, naming
them by their ``dependency-prefix``. Both placements are accepted: an index inside the list is that component; an index
beyond it needs a prefix, which is then its component identifier. Gaps in the index space are rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from veritee import cbor
from veritee.errors import ValidationError
from veritee.suit.labels import SEVERABLE_MEMBERS, CommonKey, DependencyKey, ManifestKey
from veritee.suit.model import (
    CommandSequence,
    ComponentId,
    SuitDigest,
    component_id_from_cbor,
    is_array,
    is_map,
    is_uint,
    parse_sequence,
)

__all__ = ["Common", "Dependency", "Manifest", "TextEntry", "decode_manifest", "decode_text"]

SEQUENCE_MEMBERS: frozenset[ManifestKey] = frozenset(
    {
        ManifestKey.VALIDATE,
        ManifestKey.LOAD,
        ManifestKey.INVOKE,
        ManifestKey.DEPENDENCY_RESOLUTION,
        ManifestKey.PAYLOAD_FETCH,
        ManifestKey.CANDIDATE_VERIFICATION,
        ManifestKey.INSTALL,
        ManifestKey.UNINSTALL,
    }
)
_MAX_INDEX = 255


@dataclass(frozen=True, slots=True)
class Dependency:
    """An entry of suit-dependencies: the component index holding a dependency envelope, and its prefix."""

    index: int
    prefix: ComponentId | None = None


@dataclass(frozen=True, slots=True)
class Common:
    """SUIT_Common: components, dependencies (trust domains) and the shared sequence."""

    raw: bytes
    components: tuple[ComponentId, ...]
    dependencies: Mapping[int, Dependency]
    shared_sequence: CommandSequence | None

    @property
    def slot_count(self) -> int:
        """Number of component indices: components plus dependency slots beyond the component list."""
        return max([len(self.components), *(i + 1 for i in self.dependencies)])

    def component_id(self, index: int) -> ComponentId:
        if index < len(self.components):
            return self.components[index]
        dependency = self.dependencies.get(index)
        if dependency is None or dependency.prefix is None:
            raise ValidationError(f"component index {index} is not declared")
        return dependency.prefix

    def is_dependency(self, index: int) -> bool:
        return index in self.dependencies

    def dependency_position(self, index: int) -> int:
        """The position of dependency ``index`` in the sorted dependency map (a step of a report manifest-id)."""
        return sorted(self.dependencies).index(index)


@dataclass(frozen=True, slots=True)
class TextEntry:
    """One language of suit-text: manifest-wide texts and per-component texts."""

    manifest: Mapping[int, str]
    components: Mapping[ComponentId, Mapping[int, str]]


@dataclass(frozen=True, slots=True)
class Manifest:
    """A decoded SUIT_Manifest. ``raw`` is the content of the envelope's manifest bstr, exactly as signed.

    ``sequences`` holds the command sequences present in the manifest itself; ``severed`` the digests of severable
    members that were moved to the envelope (the envelope supplies them, see :class:`~veritee.suit.envelope.Envelope`).
    """

    raw: bytes
    version: int
    sequence_number: int
    common: Common
    reference_uri: str | None
    component_id: ComponentId | None
    sequences: Mapping[ManifestKey, CommandSequence]
    severed: Mapping[ManifestKey, SuitDigest]
    text: Mapping[str, TextEntry] | None
    extensions: Mapping[int, Any]


def _uint(value: object, what: str) -> int:
    if not is_uint(value):
        raise ValidationError(f"{what} must be an unsigned integer")
    return value


def _decode_dependencies(value: object) -> dict[int, Dependency]:
    if not is_map(value) or not value:
        raise ValidationError("suit-dependencies must be a non-empty map of component index => metadata")
    result: dict[int, Dependency] = {}
    for index, meta in value.items():
        index = _uint(index, "a dependency component index")
        if index > _MAX_INDEX:
            raise ValidationError(f"dependency index {index} is out of range")
        if not is_map(meta):
            raise ValidationError("dependency metadata must be a map")
        prefix = None
        for key, item in meta.items():
            if key == DependencyKey.PREFIX:
                prefix = component_id_from_cbor(item, "dependency-prefix")
            elif not isinstance(key, int) or isinstance(key, bool):
                raise ValidationError(f"dependency metadata key {key!r} is not an integer")
        result[index] = Dependency(index, prefix)
    return result


def decode_common(raw: bytes) -> Common:
    value = cbor.decode(raw)
    if not is_map(value):
        raise ValidationError("suit-common must be a map")
    components: tuple[ComponentId, ...] = ()
    dependencies: dict[int, Dependency] = {}
    shared: CommandSequence | None = None
    for key, item in value.items():
        if key == CommonKey.COMPONENTS:
            if not is_array(item) or not item or len(item) > _MAX_INDEX + 1:
                raise ValidationError("suit-components must be a non-empty array of component identifiers")
            components = tuple(component_id_from_cbor(c) for c in item)
        elif key == CommonKey.DEPENDENCIES:
            dependencies = _decode_dependencies(item)
        elif key == CommonKey.SHARED_SEQUENCE:
            shared = parse_sequence(item, what="shared sequence")
        elif not isinstance(key, int) or isinstance(key, bool):
            raise ValidationError(f"suit-common key {key!r} is not an integer")
    common = Common(raw, components, MappingProxyType(dict(sorted(dependencies.items()))), shared)
    for index in range(common.slot_count):
        common.component_id(index)  # every index below the highest one must be named
    if common.slot_count == 0:
        raise ValidationError("suit-common declares no components")
    return common


def decode_text(raw: bytes) -> dict[str, TextEntry]:
    """Decode suit-text: ``{+ language-tag => {int => tstr, * component-id => {int => tstr}}}``."""
    value = cbor.decode(raw)
    if not is_map(value) or not value:
        raise ValidationError("suit-text must be a non-empty map of language tag => text map")
    result: dict[str, TextEntry] = {}
    for lang, entry in value.items():
        if not isinstance(lang, str) or not lang:
            raise ValidationError("suit-text keys must be language tags (text)")
        if not is_map(entry):
            raise ValidationError(f"suit-text[{lang!r}] must be a map")
        texts: dict[int, str] = {}
        components: dict[ComponentId, Mapping[int, str]] = {}
        for key, item in entry.items():
            if isinstance(key, int) and not isinstance(key, bool):
                if not isinstance(item, str):
                    raise ValidationError(f"suit-text[{lang!r}][{key}] must be text")
                texts[key] = item
            elif is_array(key):
                cid = component_id_from_cbor(key, "suit-text component identifier")
                if not is_map(item) or not all(
                    isinstance(k, int) and not isinstance(k, bool) and isinstance(v, str) for k, v in item.items()
                ):
                    raise ValidationError("suit-text component entries must map integers to text")
                components[cid] = MappingProxyType(dict(item))
            else:
                raise ValidationError(f"suit-text[{lang!r}] key {key!r} is neither an integer nor a component id")
        result[lang] = TextEntry(MappingProxyType(texts), MappingProxyType(components))
    return result


def decode_manifest(raw: bytes) -> Manifest:
    """Decode the content of the manifest bstr. Raises DecodeError / ValidationError / UnsupportedAlgorithmError."""
    value = cbor.decode(raw)
    if not is_map(value):
        raise ValidationError("SUIT_Manifest must be a map")
    for required in (ManifestKey.VERSION, ManifestKey.SEQUENCE_NUMBER, ManifestKey.COMMON):
        if required not in value:
            raise ValidationError(f"SUIT_Manifest lacks {required.name.lower()} ({int(required)})")
    if value[ManifestKey.VERSION] != 1 or isinstance(value[ManifestKey.VERSION], bool):
        raise ValidationError(f"unsupported manifest version {value[ManifestKey.VERSION]!r} (only 1 is defined)")
    sequence_number = _uint(value[ManifestKey.SEQUENCE_NUMBER], "manifest-sequence-number")
    common_raw = value[ManifestKey.COMMON]
    if not isinstance(common_raw, bytes):
        raise ValidationError("suit-common must be a bstr-wrapped map")
    common = decode_common(common_raw)
    reference_uri: str | None = None
    component_id: ComponentId | None = None
    sequences: dict[ManifestKey, CommandSequence] = {}
    severed: dict[ManifestKey, SuitDigest] = {}
    text: dict[str, TextEntry] | None = None
    extensions: dict[int, Any] = {}
    for key, item in value.items():
        if not isinstance(key, int) or isinstance(key, bool):
            raise ValidationError(f"manifest key {key!r} is not an integer")
        if key in (ManifestKey.VERSION, ManifestKey.SEQUENCE_NUMBER, ManifestKey.COMMON):
            continue
        if key == ManifestKey.REFERENCE_URI:
            if not isinstance(item, str):
                raise ValidationError("suit-reference-uri must be text")
            reference_uri = item
        elif key == ManifestKey.MANIFEST_COMPONENT_ID:
            component_id = component_id_from_cbor(item, "manifest-component-id")
        elif key in SEVERABLE_MEMBERS and is_array(item):
            severed[ManifestKey(key)] = SuitDigest.from_cbor(item)
        elif key == ManifestKey.TEXT:
            if not isinstance(item, bytes):
                raise ValidationError("suit-text must be a bstr-wrapped map or a SUIT_Digest")
            text = decode_text(item)
        elif key in SEQUENCE_MEMBERS:
            sequences[ManifestKey(key)] = parse_sequence(item, what=f"{ManifestKey(key).name.lower()} sequence")
        else:
            extensions[key] = item
    return Manifest(
        raw=raw,
        version=1,
        sequence_number=sequence_number,
        common=common,
        reference_uri=reference_uri,
        component_id=component_id,
        sequences=MappingProxyType(sequences),
        severed=MappingProxyType(severed),
        text=MappingProxyType(text) if text is not None else None,
        extensions=MappingProxyType(extensions),
    )
