"""The Trusted Application Manager service: catalog, devices, deployment policy and admin tokens over the store.

:class:`TamService` is what the admin API and the CLI call; :class:`veritee.service.tam_teep.TeepEndpoint` runs the
TEEP sessions on top of it. Every operation is one database transaction: an operation that raises leaves nothing
behind (a tampered or untrusted envelope is refused at upload with nothing stored).

Identifiers: Trusted Components are named by the canonical text of their component id
(:mod:`veritee.service.tam_ids`); devices by their numeric id, the hex SHA-256 RFC 9679 thumbprint of their TEEP
key, or their name when it is unique (:meth:`TamService.device_row`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session

from veritee import cbor
from veritee.cose import Algorithm, CoseKey
from veritee.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    KeyFormatError,
    NotFoundError,
    UnsupportedAlgorithmError,
    ValidationError,
    VeriteeError,
)
from veritee.service.tam_attest import AttestationConfig
from veritee.service.tam_ids import canonical_component_id, component_id_to_text, digest_text
from veritee.service.tam_policy import Selector
from veritee.service.tam_views import DeploymentView, DeviceView, SignerView, TcView
from veritee.store import tam_repo as repo
from veritee.store.db import Database
from veritee.store.tam_models import Device
from veritee.suit.envelope import decode_envelope
from veritee.suit.labels import Command, Parameter
from veritee.suit.manifest import Manifest
from veritee.suit.model import SuitDigest
from veritee.teep.codes import LEGACY_CIPHER_SUITES, MTI_CIPHER_SUITES, CipherSuite

__all__ = [
    "TamService",
    "TamServiceConfig",
    "authenticate",
    "create_admin_token",
    "image_digest_of",
    "list_admin_tokens",
    "revoke_admin_token",
    "utc",
]

_THUMBPRINT: Final = re.compile(r"^[0-9a-fA-F]{64}$")
TOKEN_PREFIX: Final = "vt_"
_ATTRIBUTE_TYPES = (str, int, float, bool)
_PEM: Final = serialization.Encoding.PEM
_SPKI: Final = serialization.PublicFormat.SubjectPublicKeyInfo


def utc(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


def _can_sign(key: CoseKey, suite: CipherSuite) -> bool:
    alg = suite.sign1_algorithm
    if alg is None:
        return False
    try:
        key.check_alg(Algorithm.from_id(alg))
    except (UnsupportedAlgorithmError, KeyFormatError):
        return False
    return True


@dataclass(frozen=True)
class TamServiceConfig:
    """Configuration of a TAM (passed in; nothing is read from the environment).

    ``tam_keys`` sign TEEP messages (a P-256 key gives the ESP256 suite, an Ed25519 key the Ed25519 suite; with
    ``compat`` also ES256 / EdDSA for older agents). ``require_attestation`` makes every QueryRequest ask for
    attestation and gates every Update on a passing result. ``enroll_on_first_contact`` lets an unknown Agent that
    presents its key (kccs) enrol; otherwise devices must be registered first.
    """

    tam_keys: tuple[CoseKey, ...]
    attestation: AttestationConfig = field(default_factory=AttestationConfig)
    require_attestation: bool = True
    enroll_on_first_contact: bool = True
    compat: bool = False
    token_lifetime: float = 300.0
    max_sessions: int = 10_000
    max_keyless_candidates: int = 1_000
    clock: Callable[[], float] = time.time
    random: Callable[[int], bytes] = secrets.token_bytes

    def __post_init__(self) -> None:
        if not self.tam_keys or not all(k.is_private for k in self.tam_keys):
            raise ConfigError("the TAM needs one or more private signing keys")
        if not self.cipher_suites:
            raise ConfigError("no TAM key can sign with a TEEP cipher suite (use a P-256 or Ed25519 key)")
        if self.token_lifetime <= 0 or self.max_sessions <= 0:
            raise ConfigError("token_lifetime and max_sessions must be positive")

    @property
    def cipher_suites(self) -> tuple[CipherSuite, ...]:
        candidates = (*MTI_CIPHER_SUITES, *(LEGACY_CIPHER_SUITES if self.compat else ()))
        return tuple(s for s in candidates if any(_can_sign(k, s) for k in self.tam_keys))


def image_digest_of(manifest: Manifest) -> str | None:
    """The image digest the manifest's shared sequence sets for component 0 (None when it sets none)."""
    found: SuitDigest | None = None
    index: Any = 0
    for command in manifest.common.shared_sequence or ():
        if command.code == Command.SET_COMPONENT_INDEX:
            index = command.argument
        elif command.code in (Command.OVERRIDE_PARAMETERS, Command.SET_PARAMETERS):
            applies = index is True or index == 0 or (isinstance(index, tuple) and 0 in index)
            value = command.argument.get(int(Parameter.IMAGE_DIGEST)) if applies else None
            if isinstance(value, SuitDigest) and (command.code == Command.OVERRIDE_PARAMETERS or found is None):
                found = value
    return None if found is None else digest_text(found)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_attributes(attributes: Mapping[str, Any]) -> None:
    for key, value in attributes.items():
        if not isinstance(key, str) or not key or len(key) > 64:
            raise ValidationError("attribute names are 1..64 characters")
        if value is not None and not isinstance(value, _ATTRIBUTE_TYPES):
            raise ValidationError(f"attribute {key!r}: values are text, numbers or booleans")


class TamService:
    """Catalog, devices, deployments and admin tokens (one database transaction per call)."""

    def __init__(self, db: Database, config: TamServiceConfig) -> None:
        self.db = db
        self.config = config

    def now(self) -> datetime:
        return utc(self.config.clock())

    # --- TC signers -------------------------------------------------------------------------------------------
    def add_signer(self, name: str, public_key_pem: str, *, exist_ok: bool = False) -> SignerView:
        """Trust ``public_key_pem`` (a PEM public key, private key or certificate) to sign Trusted Components."""
        key = CoseKey.from_pem(public_key_pem.encode("utf-8")).public()
        if not name or len(name) > 200:
            raise ValidationError("a signer name is 1..200 characters")
        thumbprint = key.thumbprint().hex()
        pem = key.public_key.public_bytes(_PEM, _SPKI).decode("ascii")  # store the public half only
        with self.db.transaction() as s:
            existing = repo.signer_by_thumbprint(s, thumbprint)
            if existing is not None:
                if exist_ok:
                    return SignerView.of(existing)
                raise ConflictError(f"this key is already a TC signer ({existing.name})")
            return SignerView.of(repo.add_signer(s, name=name, public_key_pem=pem, thumbprint=thumbprint))

    def list_signers(self) -> list[SignerView]:
        with self.db.transaction() as s:
            return [SignerView.of(row) for row in repo.list_signers(s)]

    def delete_signer(self, signer_id: int) -> None:
        with self.db.transaction() as s:
            repo.delete_signer(s, signer_id)

    # --- catalog ----------------------------------------------------------------------------------------------
    def upload_tc(self, envelope: bytes, description: str | None = None) -> TcView:
        """Verify a SUIT envelope against the TC signers and add it to the catalog (its sequence number is the
        version). Raises DecodeError / ValidationError (malformed, no manifest component id), SignatureError /
        UntrustedSignerError / DigestMismatchError (tampered or untrusted), ConflictError (version exists)."""
        decoded = decode_envelope(envelope)
        manifest = decoded.manifest
        if manifest.component_id is None:
            raise ValidationError("the TAM manages manifests by their manifest component id: the manifest has none")
        if not manifest.common.components:
            raise ValidationError("the manifest names no component")
        component_id = component_id_to_text(manifest.common.components[0])
        manifest_id = component_id_to_text(manifest.component_id)
        with self.db.transaction() as s:
            signers = repo.list_signers(s)
            if not signers:
                raise ConfigError("no TC signers are configured: add one before uploading")
            anchors = [CoseKey.from_pem(row.public_key_pem.encode("ascii")) for row in signers]
            verified = decoded.verify(anchors)
            thumbprint = verified.signer.thumbprint().hex()
            signer = next((row for row in signers if row.thumbprint == thumbprint), None)
            if signer is None:  # a key delegated by a trusted signer (SUIT_Delegation): record that signer
                signer = _delegating_signer(signers, anchors, decoded)
            for other in repo.list_tcs(s):
                if other.manifest_id == manifest_id and other.component_id != component_id:
                    raise ConflictError(f"manifest id {manifest_id} already belongs to {other.component_id}")
                if other.component_id == component_id and other.manifest_id != manifest_id:
                    raise ConflictError(f"{component_id} is kept under manifest id {other.manifest_id}")
            row = repo.add_tc(
                s,
                component_id=component_id,
                manifest_id=manifest_id,
                sequence_number=manifest.sequence_number,
                envelope=bytes(envelope),
                manifest_digest=digest_text(decoded.digest),
                image_digest=image_digest_of(manifest),
                signer_id=signer.id,
                description=description,
            )
            return TcView.of(row)

    def list_tcs(self, component_id: str | None = None) -> list[TcView]:
        wanted = canonical_component_id(component_id) if component_id is not None else None
        with self.db.transaction() as s:
            return [TcView.of(row) for row in repo.list_tcs(s, wanted)]

    def tc(self, tc_id: int) -> TcView:
        with self.db.transaction() as s:
            return TcView.of(repo.tc_by_id(s, tc_id))

    def tc_envelope(self, tc_id: int) -> bytes:
        with self.db.transaction() as s:
            return bytes(repo.tc_by_id(s, tc_id).envelope)

    def delete_tc(self, tc_id: int) -> None:
        """Withdraw one catalog version (devices that have it keep it; they are never rolled back)."""
        with self.db.transaction() as s:
            repo.delete_tc(s, tc_id)

    # --- devices ----------------------------------------------------------------------------------------------
    def device_row(self, s: Session, ref: str | int) -> Device:
        """The device ``ref`` names in the caller's transaction: a numeric id, a key thumbprint, or a unique name."""
        text = str(ref).strip()
        if text.isdigit():
            return repo.device_by_id(s, int(text))
        if _THUMBPRINT.match(text):
            device = repo.device_by_thumbprint(s, text.lower())
            if device is None:
                raise NotFoundError(f"no device with key thumbprint {text.lower()}")
            return device
        named = repo.devices_by_name(s, text)
        if not named:
            raise NotFoundError(f"no device with id, key thumbprint or name {text!r}")
        if len(named) > 1:
            raise ValidationError(f"{len(named)} devices are named {text!r}: use an id or a key thumbprint")
        return named[0]

    def device(self, ref: str | int) -> DeviceView:
        with self.db.transaction() as s:
            return DeviceView.of(self.device_row(s, ref))

    def list_devices(self) -> list[DeviceView]:
        with self.db.transaction() as s:
            return [DeviceView.of(row) for row in repo.list_devices(s)]

    def register_device(
        self,
        teep_key: CoseKey,
        *,
        name: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        attestation_key: CoseKey | None = None,
    ) -> DeviceView:
        """Pre-register a device by its TEEP Agent key (and the key that signs its evidence, if it has its own)."""
        public = teep_key.public()
        _check_attributes(attributes or {})
        attributes_clean = {k: v for k, v in (attributes or {}).items() if v is not None}
        with self.db.transaction() as s:
            device = repo.create_device(
                s,
                key_thumbprint=public.thumbprint().hex(),
                cose_key=cbor.encode(public.to_cose_key()),
                name=name,
                attributes=attributes_clean,
                attestation_key=cbor.encode(attestation_key.public().to_cose_key()) if attestation_key else None,
            )
            return DeviceView.of(device)

    def update_device(
        self,
        ref: str | int,
        *,
        attributes: Mapping[str, Any] | None = None,
        name: str | None = None,
        attestation_key: CoseKey | None = None,
    ) -> DeviceView:
        """Merge ``attributes`` into the device's (a None value removes that attribute); set name / key if given."""
        _check_attributes(attributes or {})
        with self.db.transaction() as s:
            device = self.device_row(s, ref)
            if attributes:
                merged = dict(device.attributes or {})
                for key, value in attributes.items():
                    if value is None:
                        merged.pop(key, None)
                    else:
                        merged[key] = value
                device.attributes = merged
            if name is not None:
                device.name = name
            if attestation_key is not None:
                device.attestation_key = cbor.encode(attestation_key.public().to_cose_key())
            s.flush()
            return DeviceView.of(device)

    def block_device(self, ref: str | int, reason: str) -> DeviceView:
        """Stop every deployment to this device (e.g. the platform verifier quarantined the node)."""
        with self.db.transaction() as s:
            device = self.device_row(s, ref)
            device.blocked = True
            device.blocked_reason = reason or "blocked"
            s.flush()
            return DeviceView.of(device)

    def unblock_device(self, ref: str | int) -> DeviceView:
        with self.db.transaction() as s:
            device = self.device_row(s, ref)
            device.blocked = False
            device.blocked_reason = None
            s.flush()
            return DeviceView.of(device)

    # --- deployment policy ------------------------------------------------------------------------------------
    def add_deployment(
        self, component_id: str, selector: str, min_sequence_number: int | None = None
    ) -> DeploymentView:
        component = canonical_component_id(component_id)
        parsed = Selector.parse(selector)
        if min_sequence_number is not None and min_sequence_number < 0:
            raise ValidationError("min_sequence_number must not be negative")
        with self.db.transaction() as s:
            for existing in repo.list_deployments(s, component):
                if Selector.from_json(existing.selector) == parsed:
                    raise ConflictError(
                        f"{component} is already deployed to {parsed.text()} (deployment {existing.id})"
                    )
            row = repo.add_deployment(
                s, component_id=component, selector=parsed.to_json(), min_sequence_number=min_sequence_number
            )
            return DeploymentView.of(row)

    def list_deployments(self, component_id: str | None = None) -> list[DeploymentView]:
        wanted = canonical_component_id(component_id) if component_id is not None else None
        with self.db.transaction() as s:
            return [DeploymentView.of(row) for row in repo.list_deployments(s, wanted)]

    def delete_deployment(self, deployment_id: int) -> None:
        with self.db.transaction() as s:
            repo.delete_deployment(s, deployment_id)

    def undeploy(self, component_id: str, selector: str | None = None) -> list[int]:
        """Delete the deployments of a component (only the one with ``selector`` when given); their ids."""
        component = canonical_component_id(component_id)
        parsed = Selector.parse(selector) if selector is not None else None
        with self.db.transaction() as s:
            rows = [r for r in repo.list_deployments(s, component)
                    if parsed is None or Selector.from_json(r.selector) == parsed]  # fmt: skip
            if not rows:
                raise NotFoundError(f"no deployment of {component}" + (f" to {parsed.text()}" if parsed else ""))
            ids = [r.id for r in rows]
            for deployment_id in ids:
                repo.delete_deployment(s, deployment_id)
            return ids

    # --- admin tokens -----------------------------------------------------------------------------------------
    def create_admin_token(self, name: str) -> str:
        return create_admin_token(self.db, name)

    def revoke_admin_token(self, name: str) -> None:
        revoke_admin_token(self.db, name, self.now())

    def list_admin_tokens(self) -> list[dict[str, Any]]:
        return list_admin_tokens(self.db)

    def authenticate(self, token: str | None) -> str:
        return authenticate(self.db, token)


# --- admin tokens (no TAM keys needed: ``veritee tam token`` uses these directly) ---------------------------------
def create_admin_token(db: Database, name: str) -> str:
    """A new bearer token for the admin API; only its SHA-256 is stored, so this is the one time it is seen."""
    if not name or len(name) > 200:
        raise ValidationError("a token name is 1..200 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with db.transaction() as s:
        repo.create_admin_token(s, name=name, token_sha256=_hash_token(token))
    return token


def revoke_admin_token(db: Database, name: str, now: datetime) -> None:
    with db.transaction() as s:
        repo.revoke_admin_token(s, name, now)


def list_admin_tokens(db: Database) -> list[dict[str, Any]]:
    with db.transaction() as s:
        return [
            {
                "name": t.name,
                "created_at": t.created_at.isoformat(),
                "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None,
            }
            for t in repo.list_admin_tokens(s)
        ]


def authenticate(db: Database, token: str | None) -> str:
    """The name of a valid admin token; AuthError for a missing, unknown or revoked one."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise AuthError("a valid admin bearer token is required")
    digest = _hash_token(token)
    with db.transaction() as s:
        row = repo.admin_token_by_hash(s, digest)
        if row is None or not hmac.compare_digest(row.token_sha256, digest):
            raise AuthError("a valid admin bearer token is required")
        return row.name


def _delegating_signer(signers: list[Any], anchors: list[CoseKey], envelope: Any) -> Any:
    """The stored signer whose key alone authenticates ``envelope`` (through a delegation chain)."""
    for row, anchor in zip(signers, anchors, strict=True):
        try:
            envelope.verify([anchor])
        except VeriteeError:
            continue
        return row
    raise ValidationError("no single TC signer authenticates this envelope")
