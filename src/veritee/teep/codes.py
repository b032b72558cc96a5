"""TEEP protocol numbers (draft-ietf-teep-protocol-26): message types, option labels, error codes, data items,
freshness mechanisms, TEEP cipher suites and SUIT COSE profiles.

Cipher suites and SUIT COSE profiles are data (tuples of COSE numbers), not enums: peers may offer ones we do not
know, and an offer must survive decoding so that we can answer it with the right Error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any, Final, Self

from veritee.errors import ValidationError

__all__ = [
    "ALL_SUIT_COSE_PROFILES",
    "LEGACY_CIPHER_SUITES",
    "MTI_CIPHER_SUITES",
    "SUITE_SIGN1_ED25519",
    "SUITE_SIGN1_EDDSA",
    "SUITE_SIGN1_ES256",
    "SUITE_SIGN1_ESP256",
    "SUIT_SHA256_ED25519_ECDH_A128CTR",
    "SUIT_SHA256_ED25519_ECDH_CHACHA_POLY",
    "SUIT_SHA256_ESP256_ECDH_A128CTR",
    "SUIT_SHA256_ESP256_ECDH_A128GCM",
    "TEEP_VERSION",
    "CipherSuite",
    "CoseType",
    "DataItem",
    "ErrorCode",
    "FreshnessMechanism",
    "MessageType",
    "OptionLabel",
    "SuitCoseProfile",
]

TEEP_VERSION: Final = 0
"""The only TEEP protocol version defined so far."""


class MessageType(IntEnum):
    """TEEP-TYPE-* (the CDDL and every example; 4 is unassigned).

    IANA's registry created from -26 lists success = 4 and error = 5; the draft's CDDL, prose and examples all use
    5 and 6, as does every implementation we know of, so we follow the draft (see docs/teep-decisions.md).
    """

    QUERY_REQUEST = 1
    QUERY_RESPONSE = 2
    UPDATE = 3
    SUCCESS = 5
    ERROR = 6


class OptionLabel(IntEnum):
    """Map keys of the options map (and of requested-tc-info)."""

    SUPPORTED_TEEP_CIPHER_SUITES = 1
    CHALLENGE = 2
    VERSIONS = 3
    SUPPORTED_SUIT_COSE_PROFILES = 4
    SELECTED_TEEP_CIPHER_SUITE = 5  # reserved since -17; still sent by libteep (compat mode reads it)
    SELECTED_VERSION = 6
    ATTESTATION_PAYLOAD = 7
    TC_LIST = 8
    EXT_LIST = 9
    MANIFEST_LIST = 10
    MSG = 11
    ERR_MSG = 12
    ATTESTATION_PAYLOAD_FORMAT = 13
    REQUESTED_TC_LIST = 14
    UNNEEDED_MANIFEST_LIST = 15
    COMPONENT_ID = 16
    TC_MANIFEST_SEQUENCE_NUMBER = 17
    HAVE_BINARY = 18
    SUIT_REPORTS = 19
    TOKEN = 20
    SUPPORTED_FRESHNESS_MECHANISMS = 21
    ERR_LANG = 22  # in the CDDL; the prose label table calls 22 reserved
    ERR_CODE = 23


class ErrorCode(IntEnum):
    PERMANENT_ERROR = 1
    UNSUPPORTED_EXTENSION = 2
    UNSUPPORTED_FRESHNESS_MECHANISMS = 3
    UNSUPPORTED_MSG_VERSION = 4
    UNSUPPORTED_CIPHER_SUITES = 5
    BAD_CERTIFICATE = 6
    ATTESTATION_REQUIRED = 7
    UNSUPPORTED_SUIT_REPORT = 8
    CERTIFICATE_EXPIRED = 9
    TEMPORARY_ERROR = 10
    MANIFEST_PROCESSING_FAILED = 17


class DataItem(IntFlag):
    """data-item-requested bits."""

    NONE = 0
    ATTESTATION = 1
    TRUSTED_COMPONENTS = 2
    EXTENSIONS = 4
    SUIT_REPORTS = 8

    def __or__(self, other: int) -> Self:
        # The usual ``DataItem.X | DataItem.Y`` from a table of every combination of the defined bits, instead of
        # the generic (and much slower) Flag machinery, which still answers everything else.
        if type(other) is DataItem:
            found = _DATA_ITEM_COMBINATIONS.get(self._value_ | other._value_)
            if found is not None:
                return found
        return super().__or__(other)


_DATA_ITEM_COMBINATIONS: Final[dict[int, DataItem]] = {bits: DataItem(bits) for bits in range(16)}


class FreshnessMechanism(IntEnum):
    NONCE = 0
    TIMESTAMP = 1


class CoseType(IntEnum):
    """COSE message types as CoAP Content-Format / CBOR tag numbers, used in cipher-suite operations."""

    ENCRYPT0 = 16
    MAC0 = 17
    SIGN1 = 18
    ENCRYPT = 96
    MAC = 97
    SIGN = 98


_SIGNING_TYPES: Final = frozenset({CoseType.SIGN1, CoseType.SIGN})


def _is_int(value: Any) -> bool:
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


@dataclass(frozen=True)
class CipherSuite:
    """A TEEP cipher suite: an ordered list of operations, each ``(cose-type, cose-alg)``."""

    operations: tuple[tuple[int, int], ...]

    @property
    def signing_algorithms(self) -> tuple[int, ...]:
        return tuple(alg for cose_type, alg in self.operations if cose_type in _SIGNING_TYPES)

    @property
    def sign1_algorithm(self) -> int | None:
        """The algorithm when the suite is a single COSE_Sign1 operation (the only kind we implement)."""
        if len(self.operations) == 1 and self.operations[0][0] == CoseType.SIGN1:
            return self.operations[0][1]
        return None

    def to_cbor(self) -> list[list[int]]:
        return [[cose_type, alg] for cose_type, alg in self.operations]

    @classmethod
    def from_cbor(cls, value: Any, *, where: str = "cipher suite") -> CipherSuite:
        if not isinstance(value, list | tuple) or not value:
            raise ValidationError(f"{where}: a cipher suite is a non-empty array of operations")
        operations: list[tuple[int, int]] = []
        for op in value:
            if not isinstance(op, list | tuple) or len(op) != 2 or not all(_is_int(x) for x in op):
                raise ValidationError(f"{where}: each operation is [cose-type, cose-alg] (two integers)")
            operations.append((int(op[0]), int(op[1])))
        return cls(tuple(operations))

    @classmethod
    def sign1(cls, alg: int) -> CipherSuite:
        return cls(((int(CoseType.SIGN1), int(alg)),))


SUITE_SIGN1_ESP256: Final = CipherSuite.sign1(-9)
SUITE_SIGN1_ED25519: Final = CipherSuite.sign1(-19)
SUITE_SIGN1_ES256: Final = CipherSuite.sign1(-7)  # older drafts and libteep
SUITE_SIGN1_EDDSA: Final = CipherSuite.sign1(-8)  # older drafts and libteep
MTI_CIPHER_SUITES: Final = (SUITE_SIGN1_ESP256, SUITE_SIGN1_ED25519)
LEGACY_CIPHER_SUITES: Final = (SUITE_SIGN1_ES256, SUITE_SIGN1_EDDSA)


SuitCoseProfile = tuple[int, ...]
"""A SUIT COSE profile (draft-ietf-suit-mti): [digest alg, signing alg, key-exchange alg, encryption alg]."""

SUIT_SHA256_ESP256_ECDH_A128CTR: Final[SuitCoseProfile] = (-16, -9, -29, -65534)
SUIT_SHA256_ED25519_ECDH_A128CTR: Final[SuitCoseProfile] = (-16, -19, -29, -65534)
SUIT_SHA256_ESP256_ECDH_A128GCM: Final[SuitCoseProfile] = (-16, -9, -29, 1)
SUIT_SHA256_ED25519_ECDH_CHACHA_POLY: Final[SuitCoseProfile] = (-16, -19, -29, 24)
ALL_SUIT_COSE_PROFILES: Final = (
    SUIT_SHA256_ESP256_ECDH_A128CTR,
    SUIT_SHA256_ED25519_ECDH_A128CTR,
    SUIT_SHA256_ESP256_ECDH_A128GCM,
    SUIT_SHA256_ED25519_ECDH_CHACHA_POLY,
)


def suit_cose_profile_from_cbor(value: Any, *, where: str = "SUIT COSE profile") -> SuitCoseProfile:
    if not isinstance(value, list | tuple) or not value or not all(_is_int(x) for x in value):
        raise ValidationError(f"{where}: a SUIT COSE profile is a non-empty array of COSE algorithm numbers")
    return tuple(int(x) for x in value)


def common_suites(offered: Iterable[CipherSuite], supported: Iterable[CipherSuite]) -> tuple[CipherSuite, ...]:
    """The offered suites we also support, in the offerer's order of preference."""
    ours = set(supported)
    return tuple(s for s in offered if s in ours)
