"""Build and sign SUIT envelopes for a Trusted Component (the layouts of draft-ietf-teep-protocol Appendix E).

A :class:`TrustedComponentSpec` describes one component: where its payload comes from (a URI, an integrated payload,
or content written by the manifest, optionally encrypted for the device), its identity checks, the sequences to emit
(install, validate, invoke, uninstall), text, dependencies (such as the Trusted Application a personalization
manifest depends on) and which members to sever. :func:`build_envelope` turns it into a signed SUIT_Envelope.

Emitted manifest (one component; dependencies take the indices after it):

* shared: [set-component-index 0 (only with dependencies)], override {vendor, class, digest, size},
  vendor/class conditions;
* dependency-resolution: per dependency set-index, override {digest, size, uri}, fetch, image-match;
* install: per dependency set-index, dependency-integrity, process-dependency; then set-index 0, override
  {uri} + fetch (or {content [, encryption-info]} + write), image-match;
* validate / invoke / uninstall as requested (uninstall: per dependency set-index, override {digest},
  dependency-integrity, process-dependency - which releases this manifest's reference - then unlinks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from veritee import cbor
from veritee.cose import SUIT_KDF_OTHER, AlgKind, Algorithm, CoseKey, Recipient, encrypt_detached, sign1
from veritee.errors import EncodeError
from veritee.suit.envelope import decode_envelope
from veritee.suit.labels import (
    SEVERABLE_MEMBERS,
    SUIT_ENVELOPE_TAG,
    Command,
    CommonKey,
    DependencyKey,
    EnvelopeKey,
    ManifestKey,
    Parameter,
)
from veritee.suit.model import ComponentId, SuitDigest

__all__ = ["DependencySpec", "EncryptionSpec", "TrustedComponentSpec", "build_envelope", "encrypt_payload"]

POLICY_ALL = 15  # record and report system information on success and failure


@dataclass(frozen=True, slots=True)
class DependencySpec:
    """A dependency manifest: its signed envelope, the component id it is stored under (its dependency prefix),
    and where the device gets it: ``uri``, or integrated in this envelope under ``integrated_key`` ("#name")."""

    envelope: bytes
    component_id: ComponentId
    uri: str | None = None
    integrated_key: str | None = None


@dataclass(frozen=True, slots=True)
class EncryptionSpec:
    """Encrypt the payload for ``recipient``: its public key with ECDH-ES + A128KW (default), or a symmetric KEK with
    A128KW. The encrypted payload is written by the manifest (parameter-content + encryption-info + write)."""

    recipient: CoseKey
    key_alg: Algorithm = Algorithm.ECDH_ES_A128KW
    content_alg: Algorithm = Algorithm.A128GCM
    iv: bytes | None = None


@dataclass(frozen=True, slots=True)
class TrustedComponentSpec:
    component_id: ComponentId
    sequence_number: int
    payload: bytes | None = None
    uri: str | None = None
    integrated: bool = False
    write_content: bool = False
    image_digest: SuitDigest | None = None
    image_size: int | None = None
    vendor_id: bytes | None = None
    class_id: bytes | None = None
    manifest_component_id: ComponentId | None = None
    reference_uri: str | None = None
    validate: bool = False
    invoke: bool = False
    invoke_args: bytes | None = None
    uninstall: bool = True
    text: Mapping[str, Mapping[Any, Any]] | None = None
    dependencies: Sequence[DependencySpec] = ()
    encryption: EncryptionSpec | None = None
    severable: frozenset[ManifestKey] = field(default_factory=frozenset)
    tagged: bool = False


def encrypt_payload(plaintext: bytes, spec: EncryptionSpec) -> tuple[bytes, bytes]:
    """(SUIT_Encryption_Info, detached ciphertext) for ``plaintext``."""
    recipient = Recipient(
        spec.recipient.public() if spec.key_alg.kind is AlgKind.KEY_AGREEMENT else spec.recipient,
        alg=spec.key_alg,
        kdf_other=SUIT_KDF_OTHER,
    )
    return encrypt_detached(plaintext, [recipient], alg=spec.content_alg, iv=spec.iv)


def _seq(*commands: tuple[int, Any]) -> bytes:
    items: list[Any] = []
    for code, arg in commands:
        items.extend((int(code), arg))
    return cbor.encode(items)


def _p(label: Parameter) -> int:
    return int(label)


def _check(spec: TrustedComponentSpec) -> None:
    sources = sum((spec.uri is not None and not spec.integrated, spec.integrated, spec.write_content))
    if sources != 1:
        raise EncodeError("give exactly one payload source: uri, integrated=True, or write_content=True")
    if (spec.integrated or spec.write_content or spec.encryption) and spec.payload is None:
        raise EncodeError("integrated, written and encrypted payloads need the payload bytes")
    if spec.payload is None and spec.image_digest is None:
        raise EncodeError("a payload by URI needs the payload or its image_digest")
    if spec.encryption is not None and not spec.write_content:
        raise EncodeError("an encrypted payload is delivered with write_content=True")
    bad = set(spec.severable) - SEVERABLE_MEMBERS
    if bad:
        raise EncodeError(f"not severable: {sorted(k.name for k in bad)}")
    if spec.sequence_number < 0:
        raise EncodeError("the sequence number must not be negative")


_Commands = list[tuple[int, Any]]


def _dependency_commands(deps: Sequence[DependencySpec]) -> tuple[_Commands, _Commands, _Commands]:
    """(dependency-resolution, install and uninstall commands) for the dependencies."""
    resolution: _Commands = []
    install: _Commands = []
    uninstall: _Commands = []
    for position, dep in enumerate(deps, start=1):
        envelope = decode_envelope(dep.envelope)
        uri = dep.integrated_key if dep.integrated_key is not None else dep.uri
        if uri is None:
            raise EncodeError("a dependency needs a uri or an integrated_key")
        params = {
            _p(Parameter.IMAGE_DIGEST): envelope.digest.encode(),
            _p(Parameter.IMAGE_SIZE): len(dep.envelope),
            _p(Parameter.URI): uri,
        }
        resolution += [
            (Command.SET_COMPONENT_INDEX, position),
            (Command.OVERRIDE_PARAMETERS, params),
            (Command.FETCH, 2),
            (Command.IMAGE_MATCH, POLICY_ALL),
        ]
        install += [
            (Command.SET_COMPONENT_INDEX, position),
            (Command.DEPENDENCY_INTEGRITY, POLICY_ALL),
            (Command.PROCESS_DEPENDENCY, 0),
        ]
        # uninstall runs alone: set the digest again so dependency-integrity can precede process-dependency
        uninstall += [
            (Command.SET_COMPONENT_INDEX, position),
            (Command.OVERRIDE_PARAMETERS, {_p(Parameter.IMAGE_DIGEST): envelope.digest.encode()}),
            (Command.DEPENDENCY_INTEGRITY, POLICY_ALL),
            (Command.PROCESS_DEPENDENCY, 0),
        ]
    return resolution, install, uninstall


def _manifest(spec: TrustedComponentSpec, content: bytes | None, encryption_info: bytes | None) -> dict[int, Any]:
    multi = bool(spec.dependencies)
    select: list[tuple[int, Any]] = [(Command.SET_COMPONENT_INDEX, 0)] if multi else []
    digest = spec.image_digest or SuitDigest.compute(spec.payload or b"")
    size = spec.image_size if spec.image_size is not None else len(spec.payload or b"")
    shared_params: dict[int, Any] = {}
    if spec.vendor_id is not None:
        shared_params[_p(Parameter.VENDOR_IDENTIFIER)] = spec.vendor_id
    if spec.class_id is not None:
        shared_params[_p(Parameter.CLASS_IDENTIFIER)] = spec.class_id
    shared_params[_p(Parameter.IMAGE_DIGEST)] = digest.encode()
    shared_params[_p(Parameter.IMAGE_SIZE)] = size
    shared = [*select, (Command.OVERRIDE_PARAMETERS, shared_params)]
    if spec.vendor_id is not None:
        shared.append((Command.VENDOR_IDENTIFIER, POLICY_ALL))
    if spec.class_id is not None:
        shared.append((Command.CLASS_IDENTIFIER, POLICY_ALL))
    common: dict[int, Any] = {}
    if multi:
        common[CommonKey.DEPENDENCIES.value] = {
            i: {DependencyKey.PREFIX.value: list(d.component_id)} for i, d in enumerate(spec.dependencies, start=1)
        }
    common[CommonKey.COMPONENTS.value] = [list(spec.component_id)]
    common[CommonKey.SHARED_SEQUENCE.value] = _seq(*shared)
    resolution, dep_install, dep_uninstall = _dependency_commands(spec.dependencies)

    if spec.write_content:
        params = {_p(Parameter.CONTENT): content}
        if encryption_info is not None:
            params[_p(Parameter.ENCRYPTION_INFO)] = encryption_info
        delivery = [(Command.OVERRIDE_PARAMETERS, params), (Command.WRITE, POLICY_ALL)]
    else:
        uri = spec.uri if spec.uri is not None else "#" + (spec.component_id[-1].hex() if spec.component_id else "p")
        delivery = [(Command.OVERRIDE_PARAMETERS, {_p(Parameter.URI): uri}), (Command.FETCH, POLICY_ALL)]
    install = [*dep_install, *select, *delivery, (Command.IMAGE_MATCH, POLICY_ALL)]

    manifest: dict[int, Any] = {
        ManifestKey.VERSION.value: 1,
        ManifestKey.SEQUENCE_NUMBER.value: spec.sequence_number,
        ManifestKey.COMMON.value: cbor.encode(common),
    }
    if spec.reference_uri is not None:
        manifest[ManifestKey.REFERENCE_URI.value] = spec.reference_uri
    if spec.manifest_component_id is not None:
        manifest[ManifestKey.MANIFEST_COMPONENT_ID.value] = list(spec.manifest_component_id)
    if spec.validate:
        manifest[ManifestKey.VALIDATE.value] = _seq(*select, (Command.IMAGE_MATCH, POLICY_ALL))
    if spec.invoke:
        args = (
            [(Command.OVERRIDE_PARAMETERS, {_p(Parameter.INVOKE_ARGS): spec.invoke_args})] if spec.invoke_args else []
        )
        manifest[ManifestKey.INVOKE.value] = _seq(*select, *args, (Command.INVOKE, POLICY_ALL))
    if resolution:
        manifest[ManifestKey.DEPENDENCY_RESOLUTION.value] = _seq(*resolution)
    manifest[ManifestKey.INSTALL.value] = _seq(*install)
    if spec.text is not None:
        manifest[ManifestKey.TEXT.value] = cbor.encode({lang: dict(m) for lang, m in spec.text.items()})
    if spec.uninstall:
        manifest[ManifestKey.UNINSTALL.value] = _seq(*dep_uninstall, *select, (Command.UNLINK, POLICY_ALL))
    return manifest


def build_envelope(spec: TrustedComponentSpec, signing_key: CoseKey, *, kid: bytes | None = None) -> bytes:
    """Build, sever and sign the envelope; ``kid`` (e.g. the key's thumbprint) goes into the unprotected header."""
    _check(spec)
    content, encryption_info = spec.payload, None
    if spec.encryption is not None:
        assert spec.payload is not None
        encryption_info, content = encrypt_payload(spec.payload, spec.encryption)
    manifest = _manifest(spec, content, encryption_info)
    severed: dict[int, bytes] = {}
    for key in sorted(spec.severable):
        member = manifest.get(key.value)
        if member is None:
            raise EncodeError(f"{key.name.lower()} is not in the manifest, it cannot be severed")
        severed[key.value] = member
        manifest[key.value] = SuitDigest.compute(cbor.encode(member)).to_cbor()
    manifest_raw = cbor.encode(manifest)
    digest_raw = SuitDigest.compute(cbor.encode(manifest_raw)).encode()
    unprotected = {4: kid} if kid is not None else {}
    signature = sign1(digest_raw, signing_key, unprotected=unprotected, detached=True)
    body: dict[Any, Any] = {
        EnvelopeKey.AUTHENTICATION_WRAPPER.value: cbor.encode([digest_raw, signature]),
        EnvelopeKey.MANIFEST.value: manifest_raw,
        **severed,
    }
    if spec.integrated:
        assert spec.payload is not None
        key_name = (
            spec.uri if spec.uri is not None else "#" + (spec.component_id[-1].hex() if spec.component_id else "p")
        )
        body[key_name] = spec.payload
    for dep in spec.dependencies:
        if dep.integrated_key is not None:
            body[dep.integrated_key] = dep.envelope
    return cbor.encode(cbor.CBORTag(SUIT_ENVELOPE_TAG, body) if spec.tagged else body)
