"""The parsed event log: event types, events, the Spec ID event and the log itself (TCG PC Client PFP)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum, IntEnum

from veritee.errors import DecodeError
from veritee.tpm.alg import HashAlg


class EventLogError(DecodeError):
    """A firmware event log (or one event's data) that is not well-formed; ``offset`` is the byte offset in the log."""


class LogFormat(Enum):
    """The two binary layouts of a PC Client firmware event log."""

    CRYPTO_AGILE = "crypto-agile"  # TCG_PCR_EVENT2 after a "Spec ID Event03" header (TPM 2.0)
    LEGACY_SHA1 = "legacy-sha1"  # TCG_PCR_EVENT only, SHA-1 digests (TCG 1.2 layout)


class EventType(IntEnum):
    """Event types of the TCG PC Client Platform Firmware Profile (Table 9 / Table 27)."""

    EV_PREBOOT_CERT = 0x00000000
    EV_POST_CODE = 0x00000001
    EV_UNUSED = 0x00000002
    EV_NO_ACTION = 0x00000003
    EV_SEPARATOR = 0x00000004
    EV_ACTION = 0x00000005
    EV_EVENT_TAG = 0x00000006
    EV_S_CRTM_CONTENTS = 0x00000007
    EV_S_CRTM_VERSION = 0x00000008
    EV_CPU_MICROCODE = 0x00000009
    EV_PLATFORM_CONFIG_FLAGS = 0x0000000A
    EV_TABLE_OF_DEVICES = 0x0000000B
    EV_COMPACT_HASH = 0x0000000C
    EV_IPL = 0x0000000D
    EV_IPL_PARTITION_DATA = 0x0000000E
    EV_NONHOST_CODE = 0x0000000F
    EV_NONHOST_CONFIG = 0x00000010
    EV_NONHOST_INFO = 0x00000011
    EV_OMIT_BOOT_DEVICE_EVENTS = 0x00000012
    EV_POST_CODE2 = 0x00000013
    EV_EFI_EVENT_BASE = 0x80000000
    EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001
    EV_EFI_VARIABLE_BOOT = 0x80000002
    EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
    EV_EFI_BOOT_SERVICES_DRIVER = 0x80000004
    EV_EFI_RUNTIME_SERVICES_DRIVER = 0x80000005
    EV_EFI_GPT_EVENT = 0x80000006
    EV_EFI_ACTION = 0x80000007
    EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000008
    EV_EFI_HANDOFF_TABLES = 0x80000009
    EV_EFI_PLATFORM_FIRMWARE_BLOB2 = 0x8000000A
    EV_EFI_HANDOFF_TABLES2 = 0x8000000B
    EV_EFI_VARIABLE_BOOT2 = 0x8000000C
    EV_EFI_GPT_EVENT2 = 0x8000000D
    EV_EFI_HCRTM_EVENT = 0x80000010
    EV_EFI_VARIABLE_AUTHORITY = 0x800000E0
    EV_EFI_SPDM_FIRMWARE_BLOB = 0x800000E1
    EV_EFI_SPDM_FIRMWARE_CONFIG = 0x800000E2
    EV_EFI_SPDM_DEVICE_POLICY = 0x800000E3
    EV_EFI_SPDM_DEVICE_AUTHORITY = 0x800000E4


#: int -> EventType, so the parser maps a type code without going through EnumMeta.__call__.
EVENT_TYPES: dict[int, EventType] = {member.value: member for member in EventType}


def event_type_name(value: int) -> str:
    """The spec name of an event type ("EV_IPL"), or a hex label for codes the spec does not define."""
    member = EVENT_TYPES.get(value)
    return member.name if member is not None else f"EV_UNKNOWN_0x{value:08x}"


_HASH_ALGS: dict[int, HashAlg] = {member.value: member for member in HashAlg}


@dataclass(frozen=True, slots=True)
class AlgorithmSize:
    """One entry of the Spec ID event's digest list: a TPM_ALG_ID and the digest size the firmware declares."""

    alg_id: int
    digest_size: int

    @property
    def alg(self) -> HashAlg | None:
        """The hash algorithm, or None for one veritee does not know (its digests are skipped by size)."""
        return _HASH_ALGS.get(self.alg_id)


@dataclass(frozen=True, slots=True)
class SpecIdEvent:
    """TCG_EfiSpecIDEventStruct: the header event of a log ("Spec ID Event03", or "Spec ID Event00"/"02" in 1.2)."""

    signature: str
    platform_class: int
    version_major: int
    version_minor: int
    errata: int
    uintn_size: int
    algorithms: tuple[AlgorithmSize, ...]
    vendor_info: bytes

    def describe(self) -> str:
        banks = ", ".join(
            entry.alg.label if entry.alg is not None else f"0x{entry.alg_id:04x}" for entry in self.algorithms
        )
        return f"{self.signature} v{self.version_major}.{self.version_minor} errata {self.errata}: {banks}"


@dataclass(slots=True)
class Event:
    """One measurement: ``index`` is its position in the log, ``offset`` the byte offset of its header.

    Treat it as read-only. (It is not a frozen dataclass on purpose: a frozen ``__init__`` costs four times as much,
    and the parser builds one per event on the hot path.)

    ``type`` is an :class:`EventType` when the code is defined, else the raw int. ``digests`` holds one digest per
    known bank (digests of algorithms veritee does not know are skipped). ``data`` is the raw event data, whatever
    the firmware wrote (decode it with :func:`veritee.eventlog.decode`); ``data_offset`` is where it starts.
    """

    index: int
    offset: int
    pcr: int
    type: EventType | int
    digests: dict[HashAlg, bytes]
    data: bytes
    data_offset: int = 0  # where ``data`` starts in the log, so decoders report absolute offsets

    @property
    def type_name(self) -> str:
        return event_type_name(int(self.type))


@dataclass(frozen=True, slots=True)
class EventLog:
    """A parsed firmware event log. ``algorithms`` are the banks it carries, in Spec ID order (SHA-1 for legacy).

    ``events`` includes the Spec ID event (index 0) of a crypto-agile log; replay skips every EV_NO_ACTION event.
    ``notes`` lists what the parser tolerated (trailing padding, unknown digest algorithms), in words.
    """

    format: LogFormat
    algorithms: tuple[HashAlg, ...]
    events: tuple[Event, ...]
    spec_id: SpecIdEvent | None
    notes: tuple[str, ...] = field(default=())

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)
