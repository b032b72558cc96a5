"""The device side on disk: the Agent's state directory, its keys and claims, and a TEEP Agent over the software TEE.

Layout of a state directory (created on first use; private files 0600, directories 0700)::

    keys/teep-agent.pem      the Agent's TEEP signing key (P-256, PKCS#8), created on first run
    keys/attestation.pem     the key that signs the Agent's EAT evidence (P-256), created on first run
    keys/tee-master.key      the TEE master key (wraps the per-domain keys), or
    keys/tee-master.sealed   the TEE master key sealed by the TPM (when the TEE was created with a TPM)
    keys/tpm-ak.cbor         the TPM attestation key blob (only with a TPM)
    device.json              the device's EAT claims (ueid, oemid, hwmodel, hwversion)
    requests.json            Trusted Components the device asked for and has not received yet
    trust/tam/*.pem          TAM keys the Agent trusts
    trust/tc-signers/*.pem   keys the Agent accepts as SUIT manifest signers
    tee/                     the software TEE (see veritee.service.tee)
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives import serialization

from veritee import __version__, cbor
from veritee.cose import Algorithm, CoseKey
from veritee.errors import ConfigError, KeyFormatError, StorageError
from veritee.service.tee import SoftTee
from veritee.service.tee_crypto import FileMasterKey, MasterKeySource, check_private, fsync_dir, write_private_file
from veritee.service.tee_domains import DomainRules
from veritee.service.tee_evidence import PlatformEvidenceAgent, PlatformEvidenceSource
from veritee.service.tee_tpm import TpmSealedMasterKey
from veritee.suit.model import ComponentId
from veritee.suit.store import Fetcher
from veritee.teep.agent import AgentConfig, DeviceClaims, TeepAgent

__all__ = [
    "DEVICE_ATTRIBUTES",
    "AgentIdentity",
    "StateLayout",
    "TrustKind",
    "add_trust_anchor",
    "build_agent",
    "load_identity",
    "load_requests",
    "master_key_source",
    "open_tee",
    "save_requests",
]

DEVICE_ATTRIBUTES: Final = ("ueid", "oemid", "hwmodel", "hwversion", "hwversion-scheme")
_CBOR_CONTENT_FORMAT: Final = 60  # application/cbor
_SCHEME_MULTIPARTNUMERIC: Final = 1


class StateLayout:
    """The paths of one Agent state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.root = Path(state_dir)
        self.keys = self.root / "keys"
        self.teep_key = self.keys / "teep-agent.pem"
        self.attestation_key = self.keys / "attestation.pem"
        self.master_key = self.keys / "tee-master.key"
        self.sealed_master_key = self.keys / "tee-master.sealed"
        self.tpm_ak = self.keys / "tpm-ak.cbor"
        self.device = self.root / "device.json"
        self.requests = self.root / "requests.json"
        self.trust = self.root / "trust"
        self.tee = self.root / "tee"

    def trust_dir(self, kind: TrustKind) -> Path:
        return self.trust / kind.value

    def create(self) -> StateLayout:
        try:
            for path in (self.root, self.keys, self.trust):
                path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StorageError(f"cannot create the Agent state directory {self.root}: {exc}") from exc
        return self


class TrustKind(StrEnum):
    TAM = "tam"
    TC_SIGNER = "tc-signers"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc}") from exc
    fsync_dir(path.parent)


def load_or_create_key(path: Path) -> CoseKey:
    """A P-256 private key from a 0600 PEM file, generated (and written 0600) when the file does not exist."""
    if not path.exists():
        key = CoseKey.generate(Algorithm.ESP256)
        assert not isinstance(key.key, bytes)
        pem = key.key.private_bytes(  # type: ignore[union-attr]
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private_file(path, pem)
    check_private(path)
    key = CoseKey.from_pem(path.read_bytes())
    if not key.is_private:
        raise KeyFormatError(f"{path} does not hold a private key")
    return CoseKey(key.key)  # not restricted to one algorithm: P-256 signs ESP256 and ES256


def public_pem(key: CoseKey) -> bytes:
    public = key.public().key
    return public.public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def add_trust_anchor(layout: StateLayout, kind: TrustKind, pem: bytes) -> Path:
    """Store a trusted public key (from a PEM key or certificate) as ``trust/<kind>/<thumbprint>.pem``."""
    key = CoseKey.from_pem(pem)
    directory = layout.trust_dir(kind)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = directory / f"{key.public().thumbprint().hex()}.pem"
    if not target.exists():
        _atomic_write(target, public_pem(key))
    return target


def load_trust_anchors(layout: StateLayout, kind: TrustKind) -> tuple[CoseKey, ...]:
    directory = layout.trust_dir(kind)
    if not directory.is_dir():
        return ()
    return tuple(CoseKey.from_pem(p.read_bytes()) for p in sorted(directory.glob("*.pem")))


# --- device claims --------------------------------------------------------------------------------------------------
def _bytes_attr(name: str, value: str) -> str:
    """Attributes given as hex, or (hwmodel only) as text; stored as hex."""
    text = value.strip()
    try:
        return bytes.fromhex(text.removeprefix("0x")).hex()
    except ValueError:
        if name == "hwmodel":
            return text.encode().hex()
        raise ConfigError(f"device attribute {name} must be hex, not {value!r}") from None


def _default_device() -> dict[str, Any]:
    return {
        "ueid": (b"\x01" + secrets.token_bytes(16)).hex(),  # RAND type UEID
        "oemid": secrets.token_bytes(16).hex(),  # a random OEM id
        "hwmodel": b"veritee-soft-tee".hex(),
        "hwversion": __version__,
        "hwversion-scheme": _SCHEME_MULTIPARTNUMERIC,
    }


def _apply_attributes(device: dict[str, Any], attrs: Mapping[str, str]) -> dict[str, Any]:
    out = dict(device)
    for name, value in attrs.items():
        if name not in DEVICE_ATTRIBUTES:
            raise ConfigError(f"unknown device attribute {name!r} (known: {', '.join(DEVICE_ATTRIBUTES)})")
        if name in ("ueid", "hwmodel"):
            out[name] = _bytes_attr(name, value)
        elif name == "oemid":
            out[name] = int(value) if value.strip().isdigit() else _bytes_attr(name, value)  # PEN or bytes
        elif name == "hwversion-scheme":
            if not value.strip().lstrip("-").isdigit():
                raise ConfigError("hwversion-scheme is an integer (CoSWID version scheme)")
            out[name] = int(value)
        else:
            out[name] = value
    return out


def _device_claims(device: Mapping[str, Any]) -> DeviceClaims:
    try:
        oemid = device["oemid"] if isinstance(device["oemid"], int) else bytes.fromhex(device["oemid"])
        ueid = bytes.fromhex(device["ueid"])
        hwmodel = bytes.fromhex(device["hwmodel"])
        version = str(device["hwversion"])
        scheme = device.get("hwversion-scheme")
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigError(f"device.json is invalid: {exc}") from None
    if not 7 <= len(ueid) <= 33 or not 1 <= len(hwmodel) <= 32:
        raise ConfigError("device claims: ueid must have 7..33 bytes and hwmodel 1..32")
    body = cbor.encode({"name": "veritee-soft-tee", "version": __version__})
    hwversion: tuple[str, int] | tuple[str] = (version, int(scheme)) if scheme is not None else (version,)
    return DeviceClaims(ueid, oemid, hwmodel, hwversion, ((_CBOR_CONTENT_FORMAT, body),))


def load_device(layout: StateLayout, attrs: Mapping[str, str] | None = None) -> tuple[DeviceClaims, dict[str, Any]]:
    """The device claims from device.json (created with random ids on first use); ``attrs`` change and persist."""
    if layout.device.exists():
        try:
            device = json.loads(layout.device.read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {layout.device}: {exc}") from None
        if not isinstance(device, dict):
            raise ConfigError(f"{layout.device} must hold a JSON object")
    else:
        device = _default_device()
    updated = _apply_attributes(device, attrs or {})
    claims = _device_claims(updated)
    if updated != device or not layout.device.exists():
        _atomic_write(layout.device, (json.dumps(updated, indent=2, sort_keys=True) + "\n").encode())
    return claims, updated


# --- identity -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgentIdentity:
    teep_key: CoseKey
    attestation_key: CoseKey
    device: DeviceClaims
    device_attributes: Mapping[str, Any]
    tam_keys: tuple[CoseKey, ...]
    tc_signer_keys: tuple[CoseKey, ...]


def load_identity(layout: StateLayout, attrs: Mapping[str, str] | None = None) -> AgentIdentity:
    """Keys (created on first run), device claims and trust anchors of the Agent in ``layout``."""
    layout.create()
    device, attributes = load_device(layout, attrs)
    return AgentIdentity(
        teep_key=load_or_create_key(layout.teep_key),
        attestation_key=load_or_create_key(layout.attestation_key),
        device=device,
        device_attributes=attributes,
        tam_keys=load_trust_anchors(layout, TrustKind.TAM),
        tc_signer_keys=load_trust_anchors(layout, TrustKind.TC_SIGNER),
    )


def master_key_source(layout: StateLayout, tcti: str | None = None) -> MasterKeySource:
    """The TEE's master key: sealed by the TPM if the TEE was created with one (then ``tcti`` is required), in a
    0600 file if it was created without; a new TEE seals its key when ``tcti`` is given."""
    if layout.sealed_master_key.exists() or (tcti is not None and not layout.master_key.exists()):
        if tcti is None:
            raise ConfigError("the TEE master key is sealed by a TPM: give its TCTI (--tcti)")
        return TpmSealedMasterKey(tcti, layout.sealed_master_key)
    return FileMasterKey(layout.master_key)


def open_tee(layout: StateLayout, *, tcti: str | None = None, rules: DomainRules | None = None) -> SoftTee:
    layout.create()
    return SoftTee(layout.tee, master_key_source(layout, tcti), rules=rules)


def build_agent(
    identity: AgentIdentity,
    tee: SoftTee,
    *,
    platform: PlatformEvidenceSource | None = None,
    fetcher: Fetcher | None = None,
    present_key: bool = True,
    compat: bool = False,
) -> TeepAgent:
    """A TEEP Agent over ``tee`` (with platform evidence in its EAT when ``platform`` is given)."""
    if not identity.tam_keys:
        raise ConfigError("no trusted TAM key: add one (agent run --tam-key PEM)")
    config = AgentConfig(
        agent_key=identity.teep_key,
        tam_keys=identity.tam_keys,
        tc_signer_keys=identity.tc_signer_keys,
        attestation_key=identity.attestation_key,
        device=identity.device,
        present_key=present_key,
        compat=compat,
    )
    if platform is not None:
        return PlatformEvidenceAgent(config, tee, fetcher, platform=platform)
    return TeepAgent(config, tee, fetcher)


# --- pending requests -----------------------------------------------------------------------------------------------
def load_requests(layout: StateLayout) -> list[ComponentId]:
    """Trusted Components requested (RequestTA) and not installed yet."""
    if not layout.requests.exists():
        return []
    try:
        raw = json.loads(layout.requests.read_text("utf-8"))
        return [tuple(bytes.fromhex(p) for p in cid) for cid in raw]
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read {layout.requests}: {exc}") from None


def save_requests(layout: StateLayout, requests: Sequence[ComponentId]) -> None:
    unique = list(dict.fromkeys(tuple(c) for c in requests))
    _atomic_write(layout.requests, (json.dumps([[p.hex() for p in c] for c in unique]) + "\n").encode())
