"""Quote appraisal: decode the AK, quote and signature, then run every quote check, each failure one finding.

The checks are the TPM package's separate checks (signature, TPM-generated quote and nonce, PCR digest, clock
against the previous quote); unlike :func:`veritee.tpm.quote.verify_quote` they do not stop at the first failure.
"""

from __future__ import annotations

from dataclasses import dataclass

from veritee.appraisal.findings import Finding, finding
from veritee.appraisal.result import Evidence, PcrBanks
from veritee.errors import DecodeError, KeyFormatError, SignatureError, UnsupportedAlgorithmError, ValidationError
from veritee.tpm.alg import HashAlg
from veritee.tpm.attest import QuoteInfo, TpmsAttest, TpmsClockInfo
from veritee.tpm.errors import (
    AttestFormatError,
    NonceMismatchError,
    PcrDigestMismatchError,
    QuoteReplayError,
    QuoteRollbackError,
)
from veritee.tpm.pcrs import selected_values
from veritee.tpm.public import TpmtPublic
from veritee.tpm.quote import (
    ClockTransition,
    check_ak,
    check_attest,
    check_clock,
    check_pcr_digest,
    verify_quote_signature,
)
from veritee.tpm.signature import TpmtSignature

__all__ = ["QuoteOutcome", "appraise_quote", "load_ak"]


@dataclass(frozen=True, slots=True)
class QuoteOutcome:
    """The decoded quote (None when it could not be decoded), the PCR values it covers, whether it is genuine and
    fresh (signature, nonce, digest, clock all good), and its clock."""

    attest: TpmsAttest | None
    pcrs: PcrBanks
    trusted: bool
    clock: TpmsClockInfo | None


def load_ak(data: bytes) -> TpmtPublic:
    """The AK from a TPM2B_PUBLIC (size-prefixed, as tpm2-tools writes ak.pub) or a bare TPMT_PUBLIC."""
    if len(data) >= 2 and int.from_bytes(data[:2], "big") == len(data) - 2:
        return TpmtPublic.from_tpm2b(data)
    return TpmtPublic.unpack(data)


def _malformed(part: str, exc: Exception) -> Finding:
    return finding("evidence.malformed", f"{part} cannot be decoded: {exc}", part=part)


def appraise_quote(evidence: Evidence, previous_clock: TpmsClockInfo | None, findings: list[Finding]) -> QuoteOutcome:
    """Run every quote check; append a finding per failure."""
    start = len(findings)
    ak: TpmtPublic | None = None
    try:
        ak = load_ak(evidence.ak_public)
    except (DecodeError, UnsupportedAlgorithmError) as exc:
        findings.append(_malformed("ak_public", exc))
    sig: TpmtSignature | None = None
    try:
        sig = TpmtSignature.unpack(evidence.signature)
    except (DecodeError, UnsupportedAlgorithmError) as exc:
        findings.append(_malformed("signature", exc))
    attest: TpmsAttest | None = None
    try:
        attest = TpmsAttest.unpack(evidence.quote)
    except (DecodeError, UnsupportedAlgorithmError, ValidationError) as exc:
        findings.append(_malformed("quote", exc))
    if ak is not None:
        try:
            check_ak(ak)
        except KeyFormatError as exc:
            findings.append(finding("quote.ak_invalid", f"attestation key: {exc}"))
    hash_alg: HashAlg | None = sig.hash_alg if sig is not None else None
    if ak is not None and sig is not None:
        try:
            hash_alg = verify_quote_signature(ak, evidence.quote, sig)
        except (SignatureError, UnsupportedAlgorithmError, KeyFormatError) as exc:
            findings.append(finding("quote.signature_invalid", f"quote signature: {exc}", signature=sig.sig_alg.name))
    if attest is None:
        return QuoteOutcome(None, {}, False, None)
    try:
        check_attest(attest, evidence.nonce)
    except NonceMismatchError as exc:
        findings.append(finding("quote.nonce_mismatch", str(exc), nonce=evidence.nonce.hex()))
    except AttestFormatError as exc:
        findings.append(finding("quote.attest_invalid", str(exc)))
        if attest.extra_data != evidence.nonce:
            findings.append(
                finding(
                    "quote.nonce_mismatch",
                    f"quote extraData {attest.extra_data.hex()} is not the nonce {evidence.nonce.hex()}",
                    nonce=evidence.nonce.hex(),
                )
            )
    pcrs = _quoted_pcrs(attest, evidence, hash_alg, findings)
    clock = attest.clock_info
    try:
        transition = check_clock(previous_clock, clock)
    except QuoteReplayError as exc:
        findings.append(finding("quote.replayed", str(exc), clock=clock.clock))
    except QuoteRollbackError as exc:
        findings.append(finding("quote.rolled_back", str(exc), reset_count=clock.reset_count))
    else:
        if transition.transition is ClockTransition.RESET:
            findings.append(
                finding("quote.reset", f"the TPM was reset {transition.resets} time(s) since the previous quote")
            )
    if not clock.safe:
        findings.append(finding("quote.clock_unsafe", "the TPM reports its clock as not safe (clockInfo.safe = NO)"))
    trusted = not any(item.fails for item in findings[start:])
    return QuoteOutcome(attest, pcrs, trusted, clock)


def _quoted_pcrs(attest: TpmsAttest, evidence: Evidence, hash_alg: HashAlg | None, findings: list[Finding]) -> PcrBanks:
    """The supplied PCR values the quote selects, after checking their digest against the signed pcrDigest (when
    the digest does not match they are still returned, for the later checks to report what they contradict)."""
    info = attest.attested
    if not isinstance(info, QuoteInfo):
        return {}  # check_attest reported that this is not a quote
    try:
        if hash_alg is not None:
            return check_pcr_digest(attest, evidence.pcrs, hash_alg)
        return selected_values(info.pcr_select.selections, evidence.pcrs)
    except PcrDigestMismatchError as exc:
        findings.append(finding("quote.pcr_digest_mismatch", str(exc), selection=exc.selection))
        return selected_values(info.pcr_select.selections, evidence.pcrs)
    except ValidationError as exc:  # MissingPcrError: a selected PCR has no (or a wrongly sized) value
        findings.append(_malformed("pcrs", exc))
        return {}
