"""TPM-backed platform evidence inside the TEEP Agent's EAT (see docs/teep-platform-evidence.md).

When the device has a TPM, the Agent's evidence carries a TPM2_Quote over the TEEP challenge as the private EAT claim
``-70001`` ("platform-evidence")::

    platform-evidence = {
      "ak": bstr,      ; TPM2B_PUBLIC of the attestation key (AK) that signed the quote
      "attest": bstr,  ; TPMS_ATTEST, as TPM2_Quote returned it (the signed bytes)
      "sig": bstr,     ; TPMT_SIGNATURE
      "pcrs": bstr,    ; the quoted PCR values, in tpm2-tools' `tpm2_quote -o` format
    }

The quote's qualifying data is the TEEP challenge (the QueryRequest's challenge, else its token) when it has at most
64 bytes (the TPM's limit), else its SHA-256. The EAT is signed by the Agent's attestation key and names the TEEP key
in cnf, so the quote is bound to this session through the nonce, and to this Agent through the signed EAT.

* :class:`TpmPlatform` takes quotes with a persisted AK on a TPM at a TCTI (swtpm, /dev/tpmrm0);
* :class:`PlatformEvidenceAgent` is a :class:`TeepAgent` that adds the claim to its evidence;
* :func:`decode_platform_evidence` / :func:`verify_platform_evidence` are the Verifier's side (pure, no I/O).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from veritee import cbor
from veritee.errors import DecodeError, DeviceError, StorageError, ValidationError, VeriteeError
from veritee.service.tee_crypto import check_private, write_private_file
from veritee.suit.store import ComponentStore, Fetcher
from veritee.teep.agent import AgentConfig, TeepAgent, _Reject
from veritee.teep.codes import ErrorCode
from veritee.teep.eat import EatClaims, make_teep_claims, sign_eat
from veritee.teep.messages import QueryRequest
from veritee.tpm.alg import HashAlg
from veritee.tpm.attest import QuoteInfo, TpmsAttest
from veritee.tpm.device import AkAlg, AttestationKey, EkKind, TpmDevice
from veritee.tpm.pcrs import build_tpm2tools_pcr_blob, parse_tpm2tools_pcr_blob
from veritee.tpm.public import TpmtPublic
from veritee.tpm.quote import VerifiedQuote, verify_quote

__all__ = [
    "DEFAULT_PCRS",
    "PLATFORM_EVIDENCE_CLAIM",
    "PlatformEvidence",
    "PlatformEvidenceAgent",
    "PlatformEvidenceSource",
    "TpmPlatform",
    "decode_platform_evidence",
    "quote_nonce",
    "verify_platform_evidence",
]

PLATFORM_EVIDENCE_CLAIM: Final = -70001
DEFAULT_PCRS: Final[Mapping[str, Sequence[int]]] = {"sha256": tuple(range(8))}
_MAX_QUOTE_NONCE: Final = 64
_FIELDS: Final = ("ak", "attest", "sig", "pcrs")


def quote_nonce(challenge: bytes) -> bytes:
    """The quote's qualifying data for a TEEP challenge: itself up to 64 bytes, else its SHA-256."""
    return challenge if len(challenge) <= _MAX_QUOTE_NONCE else hashlib.sha256(challenge).digest()


@dataclass(frozen=True)
class PlatformEvidence:
    ak: bytes
    attest: bytes
    sig: bytes
    pcrs: bytes

    def to_cbor(self) -> dict[str, bytes]:
        return {"ak": self.ak, "attest": self.attest, "sig": self.sig, "pcrs": self.pcrs}

    @classmethod
    def from_cbor(cls, value: Any) -> PlatformEvidence:
        if not isinstance(value, Mapping) or set(value) != set(_FIELDS):
            raise ValidationError(f"platform-evidence is a map with exactly {', '.join(_FIELDS)}")
        for name in _FIELDS:
            if not isinstance(value[name], bytes) or not value[name]:
                raise ValidationError(f"platform-evidence {name} is a non-empty byte string")
        return cls(value["ak"], value["attest"], value["sig"], value["pcrs"])


def decode_platform_evidence(claims: EatClaims) -> PlatformEvidence | None:
    """The platform-evidence claim of an EAT (None when absent); ValidationError when malformed."""
    value = claims.claims.get(PLATFORM_EVIDENCE_CLAIM)
    return None if value is None else PlatformEvidence.from_cbor(value)


def verify_platform_evidence(
    evidence: PlatformEvidence, challenge: bytes, *, expected_ak_name: bytes | None = None
) -> VerifiedQuote:
    """Verify the quote: AK attributes and signature, TPM magic and type, qualifying data = :func:`quote_nonce`
    of the challenge, PCR values against the signed digest; with ``expected_ak_name`` the AK must be that one (the
    Verifier's registered AK: trust in the AK itself comes from credential activation, outside TEEP)."""
    ak = TpmtPublic.from_tpm2b(evidence.ak)
    if expected_ak_name is not None and ak.name() != expected_ak_name:
        raise ValidationError("platform-evidence: the quote's AK is not the registered one")
    _selections, banks = parse_tpm2tools_pcr_blob(evidence.pcrs)
    return verify_quote(ak, evidence.attest, evidence.sig, banks, quote_nonce(challenge))


class PlatformEvidenceSource(Protocol):
    def evidence(self, challenge: bytes) -> PlatformEvidence: ...


def _encode_ak(ak: AttestationKey) -> bytes:
    return cbor.encode([ak.public, ak.private, ak.name, ak.alg.value, ak.parent.value])


def _decode_ak(data: bytes) -> AttestationKey:
    try:
        public, private, name, alg, parent = cbor.decode(data)
        return AttestationKey(bytes(public), bytes(private), bytes(name), AkAlg(alg), EkKind(parent))
    except (DecodeError, ValueError, TypeError) as exc:
        raise StorageError(f"the stored TPM attestation key is corrupt: {exc}") from exc


class TpmPlatform:
    """Quotes by an AK on the TPM at ``tcti`` over ``pcrs`` (bank label -> indices)."""

    def __init__(self, tcti: str, ak: AttestationKey, *, pcrs: Mapping[str, Sequence[int]] = DEFAULT_PCRS) -> None:
        self.tcti = tcti
        self.ak = ak
        self.pcrs = {bank: tuple(indices) for bank, indices in pcrs.items()}

    @classmethod
    def load_or_create(
        cls,
        tcti: str,
        ak_file: Path,
        *,
        alg: AkAlg = AkAlg.ECC_P256_ECDSA_SHA256,
        pcrs: Mapping[str, Sequence[int]] = DEFAULT_PCRS,
    ) -> TpmPlatform:
        """Reuse the AK blob in ``ak_file`` (0600), or create an AK under the TPM's EK and store it there."""
        if ak_file.exists():
            check_private(ak_file)
            return cls(tcti, _decode_ak(ak_file.read_bytes()), pcrs=pcrs)
        with TpmDevice(tcti) as device:
            ak = device.create_ak(alg, parent=EkKind.RSA)
        ak_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private_file(ak_file, _encode_ak(ak))
        return cls(tcti, ak, pcrs=pcrs)

    def evidence(self, challenge: bytes) -> PlatformEvidence:
        with TpmDevice(self.tcti) as device:
            quote = device.quote(self.ak, self.pcrs, quote_nonce(challenge))
        attest = TpmsAttest.unpack(quote.attest)
        if not isinstance(attest.attested, QuoteInfo):
            raise DeviceError("TPM2_Quote returned an attestation that is not a quote")
        selections = attest.attested.pcr_select.selections
        banks = {HashAlg.from_label(label): values for label, values in quote.pcrs.items()}
        return PlatformEvidence(
            self.ak.public, quote.attest, quote.signature, build_tpm2tools_pcr_blob(selections, banks)
        )


class PlatformEvidenceAgent(TeepAgent):
    """A TEEP Agent whose EAT also carries platform evidence (a TPM quote over the challenge).

    If the platform cannot produce evidence (the TPM fails), the QueryRequest is answered with ERR_TEMPORARY_ERROR.
    """

    def __init__(
        self,
        config: AgentConfig,
        store: ComponentStore,
        fetcher: Fetcher | None = None,
        *,
        platform: PlatformEvidenceSource,
    ) -> None:
        super().__init__(config, store, fetcher)
        self.platform = platform

    def _evidence(self, request: QueryRequest, now: float) -> bytes:
        config = self.config
        nonce = request.challenge if request.challenge is not None else request.token
        if config.attestation_key is None or config.device is None or nonce is None:
            return super()._evidence(request, now)  # answers with the Error the Agent prescribes
        try:
            platform = self.platform.evidence(nonce)
        except VeriteeError as exc:
            raise _Reject(ErrorCode.TEMPORARY_ERROR, f"platform evidence unavailable: {exc}") from None
        device = config.device
        claims = make_teep_claims(
            agent_key=config.agent_key,
            ueid=device.ueid,
            oemid=device.oemid,
            hwmodel=device.hwmodel,
            hwversion=device.hwversion,
            manifests=device.manifests,
            nonce=nonce,
            iat=int(now),
            extra={PLATFORM_EVIDENCE_CLAIM: platform.to_cbor()},
        )
        return sign_eat(claims, config.attestation_key)
