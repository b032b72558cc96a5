"""The exception hierarchy: one root, flat families.

Every error veritee raises derives from :class:`VeriteeError`. Families that describe bad input also derive from the
builtin a caller would expect (``ValueError`` for malformed or invalid data, ``LookupError`` for missing things,
``OSError`` for device and transport failures), so generic handlers keep working.

Verification never returns a bool: it returns the verified object or raises a :class:`VerificationError` subclass.
"""

from __future__ import annotations


class VeriteeError(Exception):
    """Root of every error raised by veritee."""


# --- input that cannot be decoded -------------------------------------------------------------------------------
class DecodeError(VeriteeError, ValueError):
    """Bytes or text that are not well-formed for the format being parsed.

    ``offset`` is the byte (or line) offset at which the problem was found, when known.
    """

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        self.offset = offset
        super().__init__(f"{message} (at offset {offset})" if offset is not None else message)


class EncodeError(VeriteeError, ValueError):
    """A value that cannot be encoded in the requested format."""


class ValidationError(VeriteeError, ValueError):
    """Well-formed data that breaks the rules of its schema (CDDL, draft text, policy schema)."""


# --- cryptography and verification --------------------------------------------------------------------------------
class UnsupportedAlgorithmError(VeriteeError, ValueError):
    """An algorithm identifier (COSE, TPM, hash) that veritee does not implement or does not allow here."""


class KeyFormatError(VeriteeError, ValueError):
    """A key that is malformed or unusable for the requested operation."""


class VerificationError(VeriteeError):
    """Evidence or a signed object failed verification."""


class SignatureError(VerificationError):
    """A signature does not verify with the given key."""


class UntrustedSignerError(VerificationError):
    """The object was signed by a key that is not among the trust anchors."""


class FreshnessError(VerificationError):
    """A nonce, token or challenge does not match, or was already used, or a quote was replayed or rolled back."""


class DigestMismatchError(VerificationError):
    """A digest (PCR composite, SUIT image, severed member) does not match what it is bound to."""


class DecryptionError(VerificationError):
    """Ciphertext that cannot be decrypted or whose integrity check fails."""


# --- policies and configuration ---------------------------------------------------------------------------------
class PolicyError(VeriteeError, ValueError):
    """A policy (runtime, measured boot, deployment) that is malformed or inconsistent."""


class ConfigError(VeriteeError, ValueError):
    """Invalid configuration passed to a component."""


# --- protocols --------------------------------------------------------------------------------------------------
class ProtocolError(VeriteeError):
    """A protocol peer sent something the state machine does not allow in its current state; the session ends."""


class SuitError(VeriteeError):
    """A SUIT manifest could not be processed (condition failed, command not allowed, rollback, ...)."""


# --- storage, services, devices ---------------------------------------------------------------------------------
class NotFoundError(VeriteeError, LookupError):
    """A requested record does not exist."""


class ConflictError(VeriteeError):
    """The request conflicts with the current state (duplicate, stale version, lease held by another replica)."""


class StorageError(VeriteeError):
    """The database failed or is unreachable (the operation was rolled back)."""


class AuthError(VeriteeError):
    """Missing or invalid credentials."""


class ForbiddenError(AuthError):
    """Credentials were presented but do not grant this: a wrong activation secret, a revoked key."""


class DeviceError(VeriteeError, OSError):
    """A TPM or TEE device (or simulator) failed or is unreachable."""


class TransportError(VeriteeError, OSError):
    """A network peer could not be reached or answered outside the protocol."""
