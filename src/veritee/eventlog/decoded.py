"""What :func:`veritee.eventlog.decode` returns: one dataclass per kind of event data (all re-exported by
:mod:`veritee.eventlog.decoders` and :mod:`veritee.eventlog`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from enum import Enum

from veritee.eventlog.devicepath import DevicePath
from veritee.eventlog.model import EventType, SpecIdEvent
from veritee.eventlog.uefi import HANDOFF_TABLE_NAMES, LoadOption, SignatureEntry

__all__ = [
    "DecodedEvent",
    "EfiVariable",
    "FirmwareBlob",
    "GptData",
    "GptPartition",
    "HandoffTables",
    "ImageLoad",
    "IplEvent",
    "IplKind",
    "NoActionData",
    "RawData",
    "Separator",
    "StartupLocality",
    "TaggedEvent",
    "Text",
    "ascii_text",
]


@dataclass(frozen=True)
class StartupLocality:
    """EV_NO_ACTION "StartupLocality": the locality TPM2_Startup was issued from (PCR0 starts at it)."""

    locality: int

    def describe(self) -> str:
        return f"StartupLocality {self.locality}"


@dataclass(frozen=True)
class NoActionData:
    """Any other EV_NO_ACTION event ("SP800-155 Event", "NvIndexInstance", Windows markers, ...)."""

    signature: str
    data: bytes

    def describe(self) -> str:
        return f"{self.signature or 'no signature'} ({len(self.data)} bytes)"


@dataclass(frozen=True)
class EfiVariable:
    """UEFI_VARIABLE_DATA of EV_EFI_VARIABLE_DRIVER_CONFIG / _BOOT / _BOOT2 / _AUTHORITY, with the value decoded.

    ``secure_boot`` is set for the SecureBoot variable (a zero-length value means "not enabled"); ``signatures``
    for signature databases (PK, KEK, db, dbx, MokList, MokListX, ...) and for authority events (one entry);
    ``boot_order`` for BootOrder; ``load_option`` for Boot####; ``text`` for shim's SbatLevel.
    """

    event_type: EventType
    vendor_guid: uuid.UUID
    name: str
    data: bytes
    secure_boot: bool | None = None
    signatures: tuple[SignatureEntry, ...] | None = None
    boot_order: tuple[int, ...] | None = None
    load_option: LoadOption | None = None
    text: str | None = None
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        head = f"{self.name} ({self.vendor_guid})"
        if self.secure_boot is not None:
            return f"{head}: Secure Boot {'enabled' if self.secure_boot else 'not enabled'}"
        if self.signatures is not None:
            kinds = sorted({entry.kind.value for entry in self.signatures})
            return f"{head}: {len(self.signatures)} signature(s) [{', '.join(kinds)}]"
        if self.boot_order is not None:
            return f"{head}: " + ",".join(f"Boot{number:04X}" for number in self.boot_order)
        if self.load_option is not None:
            return f"{head}: {self.load_option.description} {self.load_option.device_path}"
        if self.text is not None:
            return f"{head}: {self.text.strip()!r}"
        return f"{head}: {len(self.data)} bytes"


@dataclass(frozen=True)
class ImageLoad:
    """UEFI_IMAGE_LOAD_EVENT of EV_EFI_BOOT_SERVICES_APPLICATION/DRIVER and EV_EFI_RUNTIME_SERVICES_DRIVER."""

    image_location: int
    image_length: int
    link_time_address: int
    device_path: DevicePath
    notes: tuple[str, ...] = ()

    @property
    def path_text(self) -> str:
        return self.device_path.text

    def describe(self) -> str:
        return f"{self.device_path.text or '(no device path)'} @0x{self.image_location:x}+0x{self.image_length:x}"


@dataclass(frozen=True)
class GptPartition:
    type_guid: uuid.UUID
    unique_guid: uuid.UUID
    first_lba: int
    last_lba: int
    attributes: int
    name: str


@dataclass(frozen=True)
class GptData:
    """UEFI_GPT_DATA of EV_EFI_GPT_EVENT(2): the disk GUID and the non-empty partition entries."""

    disk_guid: uuid.UUID
    partitions: tuple[GptPartition, ...]

    def describe(self) -> str:
        names = ", ".join(part.name or str(part.type_guid) for part in self.partitions)
        return f"disk {self.disk_guid}: {len(self.partitions)} partition(s) [{names}]"


class IplKind(Enum):
    GRUB_COMMAND = "grub_cmd"
    KERNEL_CMDLINE = "kernel_cmdline"
    MODULE_CMDLINE = "module_cmdline"
    FILE = "file"  # grub's PCR9 file measurements (kernel, initrd, grub.cfg, modules)
    SHIM_VARIABLE = "shim_variable"  # shim's PCR14 MokList, MokListX, MokListTrusted
    TEXT = "text"
    BINARY = "binary"


@dataclass(frozen=True)
class IplEvent:
    """EV_IPL: grub commands / kernel command line / measured files, shim MOK variables, systemd-boot text."""

    kind: IplKind
    text: str
    prefix: str = ""
    encoding: str = "ascii"

    def describe(self) -> str:
        return f"{self.kind.value}: {self.text}"


@dataclass(frozen=True)
class Separator:
    """EV_SEPARATOR: 0 marks the normal end of pre-OS measurements, 1 an error (PFP section 10.4.4)."""

    value: int
    data: bytes

    @property
    def is_error(self) -> bool:
        return self.value == 1

    def describe(self) -> str:
        if self.value == 0:
            return "separator"
        if self.value == 1:
            return "separator: error value 0x00000001"
        if len(self.data) == 4 and self.data.isascii() and self.data.isalnum():
            return f"separator {self.data.decode()!r}"
        return f"separator 0x{self.value:08x}"


@dataclass(frozen=True)
class Text:
    """A string event: EV_EFI_ACTION, EV_ACTION, EV_S_CRTM_VERSION (UTF-16 or a GUID), EV_POST_CODE text, ..."""

    text: str
    encoding: str = "ascii"

    def describe(self) -> str:
        return self.text


@dataclass(frozen=True)
class FirmwareBlob:
    """UEFI_PLATFORM_FIRMWARE_BLOB(2) (EV_EFI_PLATFORM_FIRMWARE_BLOB(2), EV_POST_CODE(2)): where the code was."""

    base: int
    length: int
    description: str | None = None

    def describe(self) -> str:
        label = f"{self.description} " if self.description else ""
        return f"{label}base 0x{self.base:x} length 0x{self.length:x}"


@dataclass(frozen=True)
class HandoffTables:
    """UEFI_HANDOFF_TABLE_POINTERS(2): configuration tables (SMBIOS, ACPI) handed to the OS."""

    tables: tuple[tuple[uuid.UUID, int], ...]
    description: str | None = None

    def describe(self) -> str:
        names = ", ".join(f"{HANDOFF_TABLE_NAMES.get(guid, str(guid))}@0x{address:x}" for guid, address in self.tables)
        return f"{self.description + ': ' if self.description else ''}{names}"


@dataclass(frozen=True)
class TaggedEvent:
    """TCG_PCClientTaggedEvent (EV_EVENT_TAG), e.g. the Linux EFI stub's initrd and LoadOptions measurements."""

    event_id: int
    data: bytes
    notes: tuple[str, ...] = field(default=())

    @property
    def text(self) -> str:
        return ascii_text(self.data) or ""

    def describe(self) -> str:
        return f"tag 0x{self.event_id:08x}: {self.text or self.data.hex()}"


@dataclass(frozen=True)
class RawData:
    """Event data veritee keeps as bytes (binary, vendor-specific, or types without a defined structure)."""

    data: bytes

    def describe(self) -> str:
        return f"{len(self.data)} bytes" + (f": {self.data[:32].hex()}" if self.data else "")


DecodedEvent = (
    SpecIdEvent
    | StartupLocality
    | NoActionData
    | EfiVariable
    | ImageLoad
    | GptData
    | IplEvent
    | Separator
    | Text
    | FirmwareBlob
    | HandoffTables
    | TaggedEvent
    | RawData
)


_TAB_CR_LF = {9: None, 10: None, 13: None}


def ascii_text(data: bytes) -> str | None:
    """``data`` without trailing NULs as text when it is printable ASCII (tabs and line breaks allowed), else None."""
    stripped = data.rstrip(b"\x00")
    if not stripped or not stripped.isascii():
        return None if stripped else ""
    text = stripped.decode("ascii")
    if text.isprintable() or text.translate(_TAB_CR_LF).isprintable():
        return text
    return None
