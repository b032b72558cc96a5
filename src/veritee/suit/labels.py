"""CBOR labels of the SUIT envelope, manifest, commands, parameters and reports.

Sources: draft-ietf-suit-manifest-37 (IANA section), draft-ietf-suit-trust-domains-12 (dependencies, uninstall,
candidate verification), draft-ietf-suit-firmware-encryption (encryption info) and draft-ietf-suit-report-18.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag

__all__ = [
    "CONDITIONS",
    "COSE_TAGS",
    "SEVERABLE_MEMBERS",
    "SUIT_ENVELOPE_TAG",
    "SUIT_MANIFEST_TAG",
    "Command",
    "CommonKey",
    "CoseTag",
    "DependencyKey",
    "DigestAlgorithm",
    "EnvelopeKey",
    "ManifestKey",
    "Parameter",
    "RecordKey",
    "ReportKey",
    "ReportReason",
    "ReportingPolicy",
    "TextComponentKey",
    "TextKey",
]

SUIT_ENVELOPE_TAG = 107
SUIT_MANIFEST_TAG = 1070


class EnvelopeKey(IntEnum):
    """SUIT_Envelope members (manifest-37 §11.1, trust-domains-12 §9.1)."""

    DELEGATION = 1
    AUTHENTICATION_WRAPPER = 2
    MANIFEST = 3
    DEPENDENCY_RESOLUTION = 15
    PAYLOAD_FETCH = 16
    CANDIDATE_VERIFICATION = 18
    INSTALL = 20
    TEXT = 23


class ManifestKey(IntEnum):
    """SUIT_Manifest members (manifest-37 §11.2, trust-domains-12 §9.2)."""

    VERSION = 1
    SEQUENCE_NUMBER = 2
    COMMON = 3
    REFERENCE_URI = 4
    MANIFEST_COMPONENT_ID = 5
    VALIDATE = 7
    LOAD = 8
    INVOKE = 9
    DEPENDENCY_RESOLUTION = 15
    PAYLOAD_FETCH = 16
    CANDIDATE_VERIFICATION = 18
    INSTALL = 20
    TEXT = 23
    UNINSTALL = 24


# Manifest members that may be replaced by their SUIT_Digest and carried in the envelope under the same key.
SEVERABLE_MEMBERS: frozenset[ManifestKey] = frozenset(
    {
        ManifestKey.DEPENDENCY_RESOLUTION,
        ManifestKey.PAYLOAD_FETCH,
        ManifestKey.CANDIDATE_VERIFICATION,
        ManifestKey.INSTALL,
        ManifestKey.TEXT,
    }
)


class CommonKey(IntEnum):
    """SUIT_Common members."""

    DEPENDENCIES = 1
    COMPONENTS = 2
    SHARED_SEQUENCE = 4


class DependencyKey(IntEnum):
    """SUIT_Dependency_Metadata members (trust-domains-12)."""

    PREFIX = 1


class Command(IntEnum):
    """SUIT commands: conditions and directives (manifest-37 §11.4, trust-domains-12 §9.4)."""

    VENDOR_IDENTIFIER = 1
    CLASS_IDENTIFIER = 2
    IMAGE_MATCH = 3
    COMPONENT_SLOT = 5
    CHECK_CONTENT = 6
    DEPENDENCY_INTEGRITY = 7
    IS_DEPENDENCY = 8
    PROCESS_DEPENDENCY = 11
    SET_COMPONENT_INDEX = 12
    ABORT = 14
    TRY_EACH = 15
    WRITE = 18
    SET_PARAMETERS = 19
    OVERRIDE_PARAMETERS = 20
    FETCH = 21
    COPY = 22
    INVOKE = 23
    DEVICE_IDENTIFIER = 24
    SWAP = 31
    RUN_SEQUENCE = 32
    UNLINK = 33

    @property
    def is_condition(self) -> bool:
        return self in CONDITIONS


CONDITIONS: frozenset[Command] = frozenset(
    {
        Command.VENDOR_IDENTIFIER,
        Command.CLASS_IDENTIFIER,
        Command.IMAGE_MATCH,
        Command.COMPONENT_SLOT,
        Command.CHECK_CONTENT,
        Command.DEPENDENCY_INTEGRITY,
        Command.IS_DEPENDENCY,
        Command.ABORT,
        Command.DEVICE_IDENTIFIER,
    }
)


class Parameter(IntEnum):
    """SUIT parameters (manifest-37 §11.5, firmware-encryption: 19 encryption info)."""

    VENDOR_IDENTIFIER = 1
    CLASS_IDENTIFIER = 2
    IMAGE_DIGEST = 3
    COMPONENT_SLOT = 5
    STRICT_ORDER = 12
    SOFT_FAILURE = 13
    IMAGE_SIZE = 14
    CONTENT = 18
    ENCRYPTION_INFO = 19
    URI = 21
    SOURCE_COMPONENT = 22
    INVOKE_ARGS = 23
    DEVICE_IDENTIFIER = 24


class ReportingPolicy(IntFlag):
    """SUIT_Rep_Policy bits."""

    NONE = 0
    RECORD_SUCCESS = 1
    RECORD_FAILURE = 2
    SYSINFO_SUCCESS = 4
    SYSINFO_FAILURE = 8


class TextKey(IntEnum):
    """suit-text members describing the manifest as a whole."""

    MANIFEST_DESCRIPTION = 1
    UPDATE_DESCRIPTION = 2
    MANIFEST_JSON_SOURCE = 3
    MANIFEST_YAML_SOURCE = 4


class TextComponentKey(IntEnum):
    """suit-text members describing one component."""

    VENDOR_NAME = 1
    MODEL_NAME = 2
    VENDOR_DOMAIN = 3
    MODEL_INFO = 4
    COMPONENT_DESCRIPTION = 5
    COMPONENT_VERSION = 6


class DigestAlgorithm(IntEnum):
    """SUIT_Digest algorithm identifiers (COSE Algorithms registry, RFC 9054)."""

    SHA256 = -16
    SHAKE128 = -18
    SHA384 = -43
    SHA512 = -44
    SHAKE256 = -45


class CoseTag(IntEnum):
    """COSE structure tags that may appear in an authentication wrapper or encryption info."""

    ENCRYPT0 = 16
    MAC0 = 17
    SIGN1 = 18
    ENCRYPT = 96
    MAC = 97
    SIGN = 98


COSE_TAGS: frozenset[int] = frozenset(int(t) for t in CoseTag)


class ReportKey(IntEnum):
    """SUIT_Report members (report-18)."""

    NONCE = 2
    RECORDS = 3
    RESULT = 4
    RESULT_CODE = 5
    RESULT_RECORD = 6
    RESULT_REASON = 7
    CAPABILITY_REPORT = 8
    REFERENCE = 99


class RecordKey(IntEnum):
    """Positions in a SUIT_Record array (report-18) and the system-property-claims component id label."""

    MANIFEST_ID = 0
    MANIFEST_SECTION = 1
    SECTION_OFFSET = 2
    COMPONENT_INDEX = 3
    PROPERTIES = 4


class ReportReason(IntEnum):
    """SUIT_Report_Reasons (report-18)."""

    OK = 0
    CBOR_PARSE = 1
    COSE_UNSUPPORTED = 2
    ALG_UNSUPPORTED = 3
    UNAUTHORISED = 4
    COMMAND_UNSUPPORTED = 5
    COMPONENT_UNSUPPORTED = 6
    COMPONENT_UNAUTHORISED = 7
    PARAMETER_UNSUPPORTED = 8
    SEVERING_UNSUPPORTED = 9
    CONDITION_FAILED = 10
    OPERATION_FAILED = 11
    INVOKE_PENDING = 12
