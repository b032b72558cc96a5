"""The node side of the node <-> verifier HTTP API (docs/node-verifier-api.md): JSON shapes, strictly checked.

Binary values travel as standard padded base64 strings, PCR values as lowercase hex. Every ``from_json`` takes the
decoded JSON value (anything) and returns a typed object or raises :class:`~veritee.errors.ValidationError` /
:class:`~veritee.errors.DecodeError` naming the field; nothing else escapes.

* :class:`Challenge` — what the verifier asks for (pull: the body of ``POST {agent_url}/v1/quote``; push: the reply
  of ``GET /v1/nodes/{id}/challenge``).
* :class:`NodeEvidence` — the node's answer (pull: the response; push: ``POST /v1/nodes/{id}/evidence``).
* :class:`RegistrationRequest`, :class:`CredentialChallenge`, :class:`ActivationRequest` — registration.
* :class:`Verdict` — the verifier's reply to pushed evidence.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from veritee.errors import DecodeError, UnsupportedAlgorithmError, ValidationError
from veritee.tpm.alg import HashAlg

__all__ = [
    "MAX_NONCE",
    "MAX_PCR",
    "ActivationRequest",
    "Challenge",
    "CredentialChallenge",
    "NodeEvidence",
    "RegistrationRequest",
    "Verdict",
    "b64decode",
    "b64encode",
]

MAX_NONCE = 64
"""The largest qualifying data a TPM takes (TPM2B_DATA of a SHA-512 digest)."""
MAX_PCR = 23


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(value: object, what: str) -> bytes:
    """Strict standard base64 (padded, no whitespace, no URL-safe alphabet)."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a base64 string, not {type(value).__name__}")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise DecodeError(f"{what} is not standard base64: {exc}") from None


def _object(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(f"{what} must be a JSON object, not {type(value).__name__}")
    return value


def _field(data: Mapping[str, Any], name: str, what: str) -> Any:
    if name not in data:
        raise ValidationError(f"{what} lacks {name!r}")
    return data[name]


def _int(value: object, what: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{what} must be an integer, not {type(value).__name__}")
    if value < minimum:
        raise ValidationError(f"{what} must be at least {minimum}, not {value}")
    return value


def _bool(value: object, what: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"{what} must be true or false, not {type(value).__name__}")
    return value


def _str(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, not {type(value).__name__}")
    return value


def _optional_b64(value: object, what: str) -> bytes | None:
    return None if value is None else b64decode(value, what)


def parse_pcr_selection(value: object) -> dict[str, list[int]]:
    """``{"sha256": [0, 1, ..., 10, 14]}``: known banks (each once), PCR indices 0..23; sorted, deduplicated."""
    selection = _object(value, "pcr_selection")
    if not selection:
        raise ValidationError("pcr_selection selects no bank")
    out: dict[str, list[int]] = {}
    for label, pcrs in selection.items():
        try:
            alg = HashAlg.from_label(str(label))
        except UnsupportedAlgorithmError:
            raise ValidationError(f"pcr_selection names an unknown bank {label!r}") from None
        if alg.label in out:
            raise ValidationError(f"pcr_selection names bank {alg.label} twice")
        if not isinstance(pcrs, list) or not pcrs:
            raise ValidationError(f"pcr_selection[{label!r}] must be a non-empty list of PCR indices")
        indices = {_int(index, f"pcr_selection[{label!r}] entry") for index in pcrs}
        if max(indices) > MAX_PCR:
            raise ValidationError(f"pcr_selection[{label!r}] names PCR {max(indices)}; PCRs are 0..{MAX_PCR}")
        out[alg.label] = sorted(indices)
    return out


@dataclass(frozen=True, slots=True)
class Challenge:
    """An evidence request: quote these PCRs with this nonce, send the IMA lines from ``ima_offset`` on."""

    nonce: bytes
    pcr_selection: dict[str, list[int]]
    ima_offset: int = 0
    want_event_log: bool = False

    def __post_init__(self) -> None:
        if not 1 <= len(self.nonce) <= MAX_NONCE:
            raise ValidationError(f"nonce must be 1..{MAX_NONCE} bytes, not {len(self.nonce)}")

    @classmethod
    def from_json(cls, value: object) -> Challenge:
        data = _object(value, "challenge")
        return cls(
            nonce=b64decode(_field(data, "nonce", "challenge"), "challenge nonce"),
            pcr_selection=parse_pcr_selection(_field(data, "pcr_selection", "challenge")),
            ima_offset=_int(data.get("ima_offset", 0), "challenge ima_offset"),
            want_event_log=_bool(data.get("want_event_log", False), "challenge want_event_log"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "nonce": b64encode(self.nonce),
            "pcr_selection": {bank: list(pcrs) for bank, pcrs in self.pcr_selection.items()},
            "ima_offset": self.ima_offset,
            "want_event_log": self.want_event_log,
        }


@dataclass(frozen=True, slots=True)
class NodeEvidence:
    """The node's answer to a :class:`Challenge`.

    ``quote`` is the TPMS_ATTEST the TPM signed, ``signature`` the TPMT_SIGNATURE, ``pcrs`` the tpm2-tools PCR blob
    (as ``tpm2_quote -o`` writes it), ``event_log`` the firmware log (only when asked for), ``ima_entries`` the IMA
    lines from ``ima_offset`` on (complete lines only).
    """

    nonce: bytes
    quote: bytes
    signature: bytes
    pcrs: bytes
    event_log: bytes | None
    ima_offset: int
    ima_entries: str

    @classmethod
    def from_json(cls, value: object) -> NodeEvidence:
        data = _object(value, "evidence")
        ima = _object(_field(data, "ima", "evidence"), "evidence ima")
        return cls(
            nonce=b64decode(_field(data, "nonce", "evidence"), "evidence nonce"),
            quote=b64decode(_field(data, "quote", "evidence"), "evidence quote"),
            signature=b64decode(_field(data, "signature", "evidence"), "evidence signature"),
            pcrs=b64decode(_field(data, "pcrs", "evidence"), "evidence pcrs"),
            event_log=_optional_b64(data.get("event_log"), "evidence event_log"),
            ima_offset=_int(_field(ima, "offset", "evidence ima"), "evidence ima offset"),
            ima_entries=_str(_field(ima, "entries", "evidence ima"), "evidence ima entries"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "nonce": b64encode(self.nonce),
            "quote": b64encode(self.quote),
            "signature": b64encode(self.signature),
            "pcrs": b64encode(self.pcrs),
            "event_log": None if self.event_log is None else b64encode(self.event_log),
            "ima": {"offset": self.ima_offset, "entries": self.ima_entries},
        }


@dataclass(frozen=True, slots=True)
class RegistrationRequest:
    """``POST /v1/nodes``: who the node is and the keys the verifier binds the credential to."""

    node_id: str
    ek_cert: bytes | None
    ek_public: bytes
    ak_public: bytes
    attributes: dict[str, str] = field(default_factory=dict)
    agent_url: str | None = None

    @classmethod
    def from_json(cls, value: object) -> RegistrationRequest:
        data = _object(value, "registration")
        attributes = _object(data.get("attributes") or {}, "registration attributes")
        agent_url = data.get("agent_url")
        return cls(
            node_id=_str(_field(data, "node_id", "registration"), "registration node_id"),
            ek_cert=_optional_b64(data.get("ek_cert"), "registration ek_cert"),
            ek_public=b64decode(_field(data, "ek_public", "registration"), "registration ek_public"),
            ak_public=b64decode(_field(data, "ak_public", "registration"), "registration ak_public"),
            attributes={_str(k, "attribute name"): _str(v, f"attribute {k!r}") for k, v in attributes.items()},
            agent_url=None if agent_url is None else _str(agent_url, "registration agent_url"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "ek_cert": None if self.ek_cert is None else b64encode(self.ek_cert),
            "ek_public": b64encode(self.ek_public),
            "ak_public": b64encode(self.ak_public),
            "attributes": dict(self.attributes),
            "agent_url": self.agent_url,
        }


@dataclass(frozen=True, slots=True)
class CredentialChallenge:
    """The verifier's reply to a registration: a MakeCredential blob only the node's TPM can open."""

    challenge_id: str
    credential_blob: bytes
    encrypted_secret: bytes

    @classmethod
    def from_json(cls, value: object) -> CredentialChallenge:
        data = _object(value, "registration reply")
        return cls(
            challenge_id=_str(_field(data, "challenge_id", "registration reply"), "challenge_id"),
            credential_blob=b64decode(_field(data, "credential_blob", "registration reply"), "credential_blob"),
            encrypted_secret=b64decode(_field(data, "encrypted_secret", "registration reply"), "encrypted_secret"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "challenge_id": self.challenge_id,
            "credential_blob": b64encode(self.credential_blob),
            "encrypted_secret": b64encode(self.encrypted_secret),
        }


@dataclass(frozen=True, slots=True)
class ActivationRequest:
    """``POST /v1/nodes/{id}/activate``: the secret TPM2_ActivateCredential recovered."""

    challenge_id: str
    secret: bytes

    @classmethod
    def from_json(cls, value: object) -> ActivationRequest:
        data = _object(value, "activation")
        return cls(
            challenge_id=_str(_field(data, "challenge_id", "activation"), "challenge_id"),
            secret=b64decode(_field(data, "secret", "activation"), "activation secret"),
        )

    def to_json(self) -> dict[str, Any]:
        return {"challenge_id": self.challenge_id, "secret": b64encode(self.secret)}


@dataclass(frozen=True, slots=True)
class Verdict:
    """The verifier's reply to pushed evidence."""

    state: str
    passed: bool
    findings: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_json(cls, value: object) -> Verdict:
        data = _object(value, "verdict")
        findings = data.get("findings") or []
        if not isinstance(findings, list):
            raise ValidationError(f"verdict findings must be a list, not {type(findings).__name__}")
        return cls(
            state=_str(_field(data, "state", "verdict"), "verdict state"),
            passed=_bool(_field(data, "passed", "verdict"), "verdict passed"),
            findings=tuple(dict(_object(item, "finding")) for item in findings),
        )

    def finding_ids(self) -> list[str]:
        return [str(item.get("id")) for item in self.findings]
