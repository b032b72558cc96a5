"""Errors of the TPM package: subclasses of the project's families, so callers can catch either."""

from __future__ import annotations

from veritee.errors import (
    DecodeError,
    DigestMismatchError,
    FreshnessError,
    KeyFormatError,
    SignatureError,
    UnsupportedAlgorithmError,
    UntrustedSignerError,
    ValidationError,
)


class UnknownAlgorithmError(DecodeError, UnsupportedAlgorithmError):
    """An algorithm, curve or tag value that is not allowed (or not known) where a TPM structure has it.

    It is both a :class:`DecodeError` (the rest of the structure cannot be read without it) and an
    :class:`UnsupportedAlgorithmError`.
    """


class AttestFormatError(ValidationError):
    """A well-formed TPMS_ATTEST that is not what was asked for (not TPM-generated, not a quote)."""


class AkAttributeError(KeyFormatError):
    """An attestation key whose attributes or scheme do not make it a TPM-restricted signing key."""


class SchemeMismatchError(SignatureError):
    """A signature whose scheme or hash differs from the one the key is bound to."""


class NonceMismatchError(FreshnessError):
    """TPMS_ATTEST.extraData is not the nonce the verifier sent."""


class QuoteReplayError(FreshnessError):
    """Same TPM boot cycle (resetCount and restartCount unchanged) but the clock did not move forward."""


class QuoteRollbackError(FreshnessError):
    """resetCount, or restartCount within one reset cycle, went backwards."""


class QualifiedSignerError(UntrustedSignerError):
    """TPMS_ATTEST.qualifiedSigner is not the qualified name of the expected attestation key."""


class MissingPcrError(ValidationError):
    """A PCR the quote selects has no value in the PCR banks supplied with it (or a value of the wrong size)."""

    def __init__(self, message: str, *, bank: str, index: int) -> None:
        self.bank = bank
        self.index = index
        super().__init__(message)


class PcrDigestMismatchError(DigestMismatchError):
    """The digest of the supplied PCR values is not the pcrDigest the TPM signed."""

    def __init__(self, message: str, *, selection: str, expected: bytes, computed: bytes) -> None:
        self.selection = selection
        self.expected = expected
        self.computed = computed
        super().__init__(message)
