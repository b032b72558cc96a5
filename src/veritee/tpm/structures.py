"""TPM 2.0 structures used in attestation, decoded from (and marshalled to) their exact wire bytes.

Every ``unpack`` checks every length: truncated, oversized or trailing input raises :class:`DecodeError` with the
offset of the offending field; values outside an enum raise :class:`UnknownAlgorithmError` (a DecodeError too).
Decoded objects keep their input bytes in ``raw``; TPM marshalling is canonical, so ``pack()`` returns them.
"""

from __future__ import annotations

from veritee.tpm.attest import (
    Attested,
    CertifyInfo,
    CommandAuditInfo,
    CreationInfo,
    NvCertifyInfo,
    NvDigestCertifyInfo,
    PcrSelection,
    QuoteInfo,
    SessionAuditInfo,
    TimeAttestInfo,
    TpmlPcrSelection,
    TpmsAttest,
    TpmsClockInfo,
)
from veritee.tpm.constants import (
    AK_ATTRIBUTES,
    TPM_GENERATED_VALUE,
    ObjectAttributes,
    TpmAlgId,
    TpmEccCurve,
    TpmSt,
)
from veritee.tpm.public import (
    EccParms,
    EccPoint,
    KeyedHashParms,
    Parameters,
    PublicKey,
    RsaParms,
    Scheme,
    SymCipherParms,
    SymDefObject,
    TpmtPublic,
    Unique,
)
from veritee.tpm.signature import TpmtSignature

__all__ = [
    "AK_ATTRIBUTES",
    "TPM_GENERATED_VALUE",
    "Attested",
    "CertifyInfo",
    "CommandAuditInfo",
    "CreationInfo",
    "EccParms",
    "EccPoint",
    "KeyedHashParms",
    "NvCertifyInfo",
    "NvDigestCertifyInfo",
    "ObjectAttributes",
    "Parameters",
    "PcrSelection",
    "PublicKey",
    "QuoteInfo",
    "RsaParms",
    "Scheme",
    "SessionAuditInfo",
    "SymCipherParms",
    "SymDefObject",
    "TimeAttestInfo",
    "TpmAlgId",
    "TpmEccCurve",
    "TpmSt",
    "TpmlPcrSelection",
    "TpmsAttest",
    "TpmsClockInfo",
    "TpmtPublic",
    "TpmtSignature",
    "Unique",
]
