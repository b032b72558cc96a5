"""TPM 2.0 quote verification, as separate checks that each raise a typed error, and ``verify_quote`` running them all.

A quote is (TPMS_ATTEST bytes, TPMT_SIGNATURE) from TPM2_Quote, plus the PCR values it covers. It is genuine when the
attestation key signed exactly those bytes, the AK is a TPM-restricted signing key (so the TPM only signs structures
it made itself, starting with TPM_GENERATED_VALUE), it is a quote, its extraData is the verifier's nonce, and the
digest of the supplied PCR values, in the order of the quoted selection, is the signed pcrDigest. TPM2_Quote computes
pcrDigest with the hash of the signing scheme (TPM 2.0 Part 3, 18.4), so that hash is the one used here.

The software signer in :mod:`veritee.tpm.signer` is re-exported here (``sign_attest``, ``build_quote_attest``).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm as CryptoUnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from veritee.errors import SignatureError, UnsupportedAlgorithmError
from veritee.tpm.alg import HashAlg
from veritee.tpm.attest import QuoteInfo, TpmsAttest, TpmsClockInfo
from veritee.tpm.constants import TPM_GENERATED_VALUE, ObjectAttributes, TpmAlgId, TpmSt
from veritee.tpm.errors import (
    AkAttributeError,
    AttestFormatError,
    NonceMismatchError,
    PcrDigestMismatchError,
    QualifiedSignerError,
    QuoteReplayError,
    QuoteRollbackError,
    SchemeMismatchError,
)
from veritee.tpm.pcrs import PcrBanks, pcr_composite_digest, selected_values
from veritee.tpm.public import PublicKey, TpmtPublic
from veritee.tpm.signature import TpmtSignature
from veritee.tpm.signer import build_quote_attest, crypto_hash, sign_attest

__all__ = [
    "ClockCheck",
    "ClockTransition",
    "VerifiedQuote",
    "build_quote_attest",
    "check_ak",
    "check_attest",
    "check_clock",
    "check_pcr_digest",
    "check_qualified_signer",
    "crypto_hash",
    "sign_attest",
    "verify_quote",
    "verify_quote_signature",
]


# --- the attestation key -------------------------------------------------------------------------------------
def check_ak(ak: TpmtPublic) -> None:
    """Require a restricted signing key (RSA or ECC): only such a key guarantees the TPM made what it signed."""
    if ak.type not in (TpmAlgId.RSA, TpmAlgId.ECC):
        raise AkAttributeError(f"an attestation key must be RSA or ECC, not {ak.type.name}")
    attrs = int(ak.object_attributes)
    missing = [f.name for f in (ObjectAttributes.SIGN_ENCRYPT, ObjectAttributes.RESTRICTED) if not attrs & f.value]
    if missing:
        raise AkAttributeError(f"attestation key lacks {', '.join(str(m) for m in missing)} (attributes 0x{attrs:08x})")
    if attrs & ObjectAttributes.DECRYPT.value:
        raise AkAttributeError(f"attestation key is also a decryption key (attributes 0x{attrs:08x})")


# --- signature -----------------------------------------------------------------------------------------------
def verify_quote_signature(ak: TpmtPublic | PublicKey, attest_raw: bytes, sig: TpmtSignature) -> HashAlg:
    """Verify ``sig`` over ``attest_raw`` (the exact TPMS_ATTEST bytes); return the signing hash.

    With a TpmtPublic, a signature whose scheme or hash differs from the key's (non-NULL) scheme is rejected, as the
    TPM would never produce it. RSASSA is PKCS#1 v1.5; RSAPSS is tried with salt length = digest length (FIPS TPMs)
    and then the maximum length (what other TPMs use); ECDSA's (r, s) are DER-encoded for verification.
    """
    if isinstance(ak, TpmtPublic):
        _check_scheme(ak, sig)
        key = ak.public_key()
    else:
        key = ak
    if sig.hash_alg is None:
        raise SignatureError(f"a {sig.sig_alg.name} signature signs nothing")
    try:
        hash_obj = crypto_hash(sig.hash_alg)
        digest = sig.hash_alg.digest(bytes(attest_raw))
        prehashed = Prehashed(hash_obj)
        if sig.sig_alg is TpmAlgId.RSASSA:
            _rsa(key, sig).verify(sig.signature, digest, padding.PKCS1v15(), prehashed)
        elif sig.sig_alg is TpmAlgId.RSAPSS:
            _verify_pss(_rsa(key, sig), sig.signature, digest, hash_obj)
        elif sig.sig_alg is TpmAlgId.ECDSA:
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise SignatureError(f"an ECDSA signature cannot come from a {type(key).__name__}")
            key.verify(sig.der(), digest, ec.ECDSA(prehashed))
        else:
            raise UnsupportedAlgorithmError(f"{sig.sig_alg.name} quote signatures are not supported")
    except InvalidSignature:
        raise SignatureError(f"{sig.sig_alg.name}/{sig.hash_alg.name} quote signature does not verify") from None
    except CryptoUnsupportedAlgorithm as exc:
        raise UnsupportedAlgorithmError(f"{sig.sig_alg.name}/{sig.hash_alg.name} is not available: {exc}") from exc
    return sig.hash_alg


def _check_scheme(ak: TpmtPublic, sig: TpmtSignature) -> None:
    scheme = ak.signing_scheme
    if scheme.scheme is TpmAlgId.NULL:
        return
    if sig.sig_alg is not scheme.scheme or sig.hash_alg is None or int(sig.hash_alg) != int(scheme.hash_alg):
        got = f"{sig.sig_alg.name}/{sig.hash_alg.name if sig.hash_alg else 'NULL'}"
        raise SchemeMismatchError(
            f"signature is {got} but the key's scheme is {scheme.scheme.name}/{scheme.hash_alg.name}"
        )


def _rsa(key: PublicKey, sig: TpmtSignature) -> rsa.RSAPublicKey:
    if not isinstance(key, rsa.RSAPublicKey):
        raise SignatureError(f"an {sig.sig_alg.name} signature cannot come from a {type(key).__name__}")
    return key


def _verify_pss(key: rsa.RSAPublicKey, signature: bytes, digest: bytes, hash_obj: hashes.HashAlgorithm) -> None:
    # Explicit integers: OpenSSL treats "maximum" as "any length" when verifying, which is laxer than a TPM.
    max_salt = (key.key_size - 1 + 7) // 8 - hash_obj.digest_size - 2
    for salt in dict.fromkeys(x for x in (hash_obj.digest_size, max_salt) if 0 <= x <= max_salt):
        try:
            key.verify(
                signature, digest, padding.PSS(mgf=padding.MGF1(hash_obj), salt_length=salt), Prehashed(hash_obj)
            )
            return
        except (InvalidSignature, ValueError):  # ValueError: a salt the key size cannot hold
            continue
    raise InvalidSignature


# --- attestation contents --------------------------------------------------------------------------------------
def check_attest(attest: TpmsAttest, nonce: bytes) -> QuoteInfo:
    """A TPM-generated quote whose extraData is exactly ``nonce`` (byte for byte; no text or base64 guessing)."""
    if attest.magic != TPM_GENERATED_VALUE:
        raise AttestFormatError(f"magic 0x{attest.magic:08x} is not TPM_GENERATED_VALUE 0x{TPM_GENERATED_VALUE:08x}")
    quote = _quote_info(attest)
    if attest.extra_data != bytes(nonce):
        raise NonceMismatchError(
            f"quote extraData {attest.extra_data.hex() or '(empty)'} is not the nonce {bytes(nonce).hex() or '(empty)'}"
        )
    return quote


def _quote_info(attest: TpmsAttest) -> QuoteInfo:
    if attest.type is not TpmSt.ATTEST_QUOTE or not isinstance(attest.attested, QuoteInfo):
        raise AttestFormatError(f"attestation type is {attest.type.name}, not ATTEST_QUOTE")
    return attest.attested


def check_pcr_digest(attest: TpmsAttest, banks: Mapping[HashAlg, Mapping[int, bytes]], hash_alg: HashAlg) -> PcrBanks:
    """Recompute pcrDigest from ``banks`` with ``hash_alg`` (the signature's hash); return the quoted PCR values.

    A PCR the quote selects but ``banks`` lacks raises MissingPcrError (a ValidationError); a different digest raises
    PcrDigestMismatchError (a DigestMismatchError) naming the selection.
    """
    quote = _quote_info(attest)
    selections = quote.pcr_select.selections
    computed = pcr_composite_digest(hash_alg, selections, banks)
    if not hmac.compare_digest(computed, quote.pcr_digest):
        described = quote.pcr_select.describe()
        raise PcrDigestMismatchError(
            f"PCR values for {described} hash ({hash_alg.label}) to {computed.hex()}, "
            f"but the quote signed pcrDigest {quote.pcr_digest.hex()}",
            selection=described,
            expected=quote.pcr_digest,
            computed=computed,
        )
    return selected_values(selections, banks)


def check_qualified_signer(attest: TpmsAttest, expected_name: bytes) -> None:
    """qualifiedSigner must be ``expected_name`` (the AK's qualified name: see ``public.qualified_name``)."""
    if attest.qualified_signer != bytes(expected_name):
        raise QualifiedSignerError(
            f"quote qualifiedSigner {attest.qualified_signer.hex()} is not the expected {bytes(expected_name).hex()}"
        )


# --- clock -----------------------------------------------------------------------------------------------------
class ClockTransition(Enum):
    """How the TPM's boot cycle moved between two quotes."""

    FIRST = "first"  # no previous quote to compare with
    SAME_BOOT = "same-boot"  # same resetCount and restartCount; the clock moved forward
    RESTART = "restart"  # restartCount increased (TPM Restart/Resume: hibernation, suspend) within one reset cycle
    RESET = "reset"  # resetCount increased (TPM Reset: a reboot)


@dataclass(frozen=True, slots=True)
class ClockCheck:
    """The legal change between two quotes' TPMS_CLOCK_INFO. ``safe`` False means the TPM cannot vouch that it never
    reported a later Clock before (an unorderly shutdown): worth reporting, not an error by itself."""

    transition: ClockTransition
    resets: int
    restarts: int
    clock_delta_ms: int | None
    safe: bool


def _delta32(current: int, previous: int) -> int:
    """current - previous as a signed 32-bit difference: exact for counters offset by the same obfuscation value."""
    d = (current - previous) & 0xFFFFFFFF
    return d - 0x1_0000_0000 if d >= 0x8000_0000 else d


def check_clock(previous: TpmsClockInfo | None, current: TpmsClockInfo) -> ClockCheck:
    """Compare a quote's clock info with the previous accepted quote's from the same AK.

    * resetCount lower, or restartCount lower within the same resetCount: QuoteRollbackError;
    * same resetCount and restartCount but Clock not higher: QuoteReplayError;
    * a reset or restart (counts increased): legal, returned as the transition; Clock may then be lower only if the
      TPM reports safe=NO (it restored Clock after an unorderly shutdown); lower with safe=YES is QuoteRollbackError.

    Counters are compared as signed 32-bit differences, which is exact both for plain counters and for the ones a
    TPM obfuscates (adds a constant per key) when the AK is outside the endorsement and platform hierarchies.
    """
    if previous is None:
        return ClockCheck(ClockTransition.FIRST, 0, 0, None, current.safe)
    resets = _delta32(current.reset_count, previous.reset_count)
    restarts = _delta32(current.restart_count, previous.restart_count)
    clock_delta = current.clock - previous.clock
    if resets < 0:
        raise QuoteRollbackError(f"resetCount went back by {-resets} (clock {previous.clock} -> {current.clock})")
    if resets == 0 and restarts < 0:
        raise QuoteRollbackError(f"restartCount went back by {-restarts} within one reset cycle")
    if resets == 0 and restarts == 0:
        if clock_delta <= 0:
            raise QuoteReplayError(
                f"same boot cycle (resetCount/restartCount unchanged) but Clock {previous.clock} -> {current.clock}"
            )
        return ClockCheck(ClockTransition.SAME_BOOT, 0, 0, clock_delta, current.safe)
    if clock_delta < 0 and current.safe:
        raise QuoteRollbackError(
            f"Clock went back from {previous.clock} to {current.clock} while the TPM reports safe=YES "
            "(it never reported a later Clock): state was rolled back or the TPM was cleared"
        )
    transition = ClockTransition.RESET if resets > 0 else ClockTransition.RESTART
    return ClockCheck(transition, resets, restarts if resets == 0 else 0, clock_delta, current.safe)


# --- everything -----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class VerifiedQuote:
    """A quote that passed every check: its attestation, the signature's hash and the PCR values it covers."""

    attest: TpmsAttest
    signature: TpmtSignature
    hash_alg: HashAlg
    pcrs: PcrBanks
    clock: ClockCheck


def verify_quote(
    ak: TpmtPublic | PublicKey,
    attest_raw: bytes,
    signature: TpmtSignature | bytes,
    banks: Mapping[HashAlg, Mapping[int, bytes]],
    nonce: bytes,
    *,
    expected_qualified_signer: bytes | None = None,
    previous_clock: TpmsClockInfo | None = None,
) -> VerifiedQuote:
    """Run every check, in order: AK attributes (TpmtPublic only), signature, TPMS_ATTEST decoding, magic/type/nonce,
    qualified signer (when expected), PCR digest, clock against ``previous_clock``. The first failure is raised."""
    sig = signature if isinstance(signature, TpmtSignature) else TpmtSignature.unpack(signature)
    if isinstance(ak, TpmtPublic):
        check_ak(ak)
    hash_alg = verify_quote_signature(ak, attest_raw, sig)
    attest = TpmsAttest.unpack(attest_raw)
    check_attest(attest, nonce)
    if expected_qualified_signer is not None:
        check_qualified_signer(attest, expected_qualified_signer)
    pcrs = check_pcr_digest(attest, banks, hash_alg)
    clock = check_clock(previous_clock, attest.clock_info)
    return VerifiedQuote(attest, sig, hash_alg, pcrs, clock)
