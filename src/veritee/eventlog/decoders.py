"""On-demand decoding of event data by event type (parsing a log never calls these).

``decode(event)`` returns one of the dataclasses below; malformed structures raise :class:`EventLogError` with the
absolute byte offset in the log. Firmware quirks that do not stop decoding (lengths that disagree with the event
size, shim's authority-event bugs, a zero-length SecureBoot variable) are kept in each result's ``notes``.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass, field, replace
from enum import Enum

from veritee.eventlog.devicepath import DevicePath, parse_device_path
from veritee.eventlog.model import Event, EventLogError, EventType, SpecIdEvent
from veritee.eventlog.parser import SPEC_ID_EVENT03, parse_spec_id
from veritee.eventlog.uefi import (
    HANDOFF_TABLE_NAMES,
    LoadOption,
    Reader,
    SignatureEntry,
    parse_boot_order,
    parse_load_option,
    parse_signature_data,
    parse_signature_lists,
    parse_variable_data,
    utf16,
)

ET = EventType
_BINARY_TYPES = frozenset(
    {
        ET.EV_NONHOST_INFO,
        ET.EV_NONHOST_CODE,
        ET.EV_NONHOST_CONFIG,
        ET.EV_TABLE_OF_DEVICES,
        ET.EV_EFI_SPDM_FIRMWARE_BLOB,
        ET.EV_EFI_SPDM_FIRMWARE_CONFIG,
        ET.EV_EFI_SPDM_DEVICE_POLICY,
        ET.EV_EFI_SPDM_DEVICE_AUTHORITY,
    }
)
_SIGNATURE_DATABASES = frozenset({"PK", "KEK", "db", "dbx", "dbt", "dbr", "MokList", "MokListX", "vendor_db"})


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
        return _ascii_text(self.data) or ""

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


def decode(event: Event) -> DecodedEvent:
    """Decode ``event.data`` according to ``event.type``; raises EventLogError for malformed structures."""
    base = event.data_offset
    typ = event.type
    data = event.data
    if typ == ET.EV_NO_ACTION:
        return _no_action(data, base)
    if typ in (ET.EV_EFI_VARIABLE_DRIVER_CONFIG, ET.EV_EFI_VARIABLE_BOOT, ET.EV_EFI_VARIABLE_BOOT2):
        return decode_variable(EventType(typ), data, base)
    if typ == ET.EV_EFI_VARIABLE_AUTHORITY:
        return decode_variable(ET.EV_EFI_VARIABLE_AUTHORITY, data, base)
    if typ in (ET.EV_EFI_BOOT_SERVICES_APPLICATION, ET.EV_EFI_BOOT_SERVICES_DRIVER, ET.EV_EFI_RUNTIME_SERVICES_DRIVER):
        return decode_image_load(data, base)
    if typ in (ET.EV_EFI_GPT_EVENT, ET.EV_EFI_GPT_EVENT2):
        return _gpt(data, base)
    if typ == ET.EV_IPL:
        return decode_ipl(event.pcr, data)
    if typ == ET.EV_SEPARATOR:
        return _separator(data, base)
    if typ in (ET.EV_EFI_PLATFORM_FIRMWARE_BLOB, ET.EV_EFI_PLATFORM_FIRMWARE_BLOB2, ET.EV_POST_CODE2):
        return _blob(data, base, with_description=typ != ET.EV_EFI_PLATFORM_FIRMWARE_BLOB)
    if typ == ET.EV_POST_CODE:
        return _blob(data, base, with_description=False) if len(data) == 16 else _text_or_raw(data)
    if typ in (ET.EV_EFI_HANDOFF_TABLES, ET.EV_EFI_HANDOFF_TABLES2):
        return _handoff(data, base, with_description=typ == ET.EV_EFI_HANDOFF_TABLES2)
    if typ == ET.EV_S_CRTM_VERSION:
        return _scrtm_version(data)
    if typ == ET.EV_EVENT_TAG:
        return _tagged(data, base)
    if typ in (ET.EV_EFI_ACTION, ET.EV_ACTION, ET.EV_EFI_HCRTM_EVENT):
        return Text(data.decode("ascii", errors="replace").rstrip("\x00"))
    if typ in _BINARY_TYPES:
        return RawData(data)
    return _text_or_raw(data)


def decode_variable(event_type: EventType, data: bytes, base: int = 0) -> EfiVariable:
    """Decode UEFI_VARIABLE_DATA and the variable's value by its name."""
    var = parse_variable_data(data, base)
    notes = list(var.notes)
    value_base = base + len(data) - len(var.data) if len(var.data) <= len(data) else base
    result = EfiVariable(event_type, var.vendor_guid, var.name, var.data)
    try:
        if event_type == ET.EV_EFI_VARIABLE_AUTHORITY:
            if var.name == "SbatLevel":
                result = replace(result, text=var.data.decode("ascii", errors="replace"))
            elif var.name != "MokListTrusted":
                entry, quirks = parse_signature_data(var.data, value_base)
                result = replace(result, signatures=(entry,))
                notes.extend(quirks)
        elif var.name == "SecureBoot":
            if not var.data:
                notes.append("zero-length SecureBoot variable: Secure Boot not enabled")
            elif len(var.data) != 1:
                notes.append(f"SecureBoot variable of {len(var.data)} bytes; its first byte is used")
            result = replace(result, secure_boot=bool(var.data) and var.data[0] == 1)
        elif var.name in _SIGNATURE_DATABASES:
            result = replace(result, signatures=parse_signature_lists(var.data, value_base))
        elif var.name == "BootOrder":
            result = replace(result, boot_order=parse_boot_order(var.data, value_base))
        elif _is_boot_option(var.name) and var.data:
            result = replace(result, load_option=parse_load_option(var.data, value_base))
    except EventLogError as exc:
        notes.append(f"{var.name} value not decoded: {exc}")
        result = EfiVariable(event_type, var.vendor_guid, var.name, var.data)
    return replace(result, notes=tuple(notes))


def decode_image_load(data: bytes, base: int = 0) -> ImageLoad:
    reader = Reader(data, base)
    location = reader.u64("UEFI_IMAGE_LOAD_EVENT.ImageLocationInMemory")
    length = reader.u64("UEFI_IMAGE_LOAD_EVENT.ImageLengthInMemory")
    link = reader.u64("UEFI_IMAGE_LOAD_EVENT.ImageLinkTimeAddress")
    path_length = reader.u64("UEFI_IMAGE_LOAD_EVENT.LengthOfDevicePath")
    notes: list[str] = []
    if path_length > reader.remaining:
        notes.append(f"LengthOfDevicePath {path_length} exceeds the {reader.remaining} bytes left; truncated")
        path_length = reader.remaining
    path_base = reader.offset
    raw_path = reader.take(path_length, "UEFI_IMAGE_LOAD_EVENT.DevicePath")
    try:
        path = parse_device_path(raw_path, path_base)
    except EventLogError as exc:
        notes.append(f"device path not decoded: {exc}")
        path = DevicePath((), "")
    if reader.remaining:
        notes.append(f"{reader.remaining} bytes after the device path ignored")
    return ImageLoad(location, length, link, path, tuple(notes))


_GRUB_PREFIXES = (
    ("grub_cmd: ", IplKind.GRUB_COMMAND),
    ("kernel_cmdline: ", IplKind.KERNEL_CMDLINE),
    ("module_cmdline: ", IplKind.MODULE_CMDLINE),
    ("grub_kernel_cmdline ", IplKind.KERNEL_CMDLINE),  # older Fedora/RHEL grub
    ("grub_cmd ", IplKind.GRUB_COMMAND),
)
_SHIM_VARIABLES = frozenset({"MokList", "MokListX", "MokListTrusted", "MokSBState", "SbatLevel"})


def decode_ipl(pcr: int, data: bytes) -> IplEvent:
    """Classify EV_IPL data: grub (PCR8 commands, PCR9 files), shim (PCR14), systemd-boot/sd-stub UTF-16 text."""
    if len(data) >= 2 and data[1] == 0 and data[0] != 0:
        text = utf16(data)
        kind = IplKind.KERNEL_CMDLINE if pcr in (8, 12) else IplKind.TEXT
        return IplEvent(kind, text, encoding="utf-16")
    text_or_none = _ascii_text(data)
    if text_or_none is None:
        return IplEvent(IplKind.BINARY, data.hex())
    text = text_or_none
    for prefix, kind in _GRUB_PREFIXES:
        if text.startswith(prefix):
            return IplEvent(kind, text[len(prefix) :], prefix=prefix)
    if pcr == 14 and text in _SHIM_VARIABLES:
        return IplEvent(IplKind.SHIM_VARIABLE, text)
    if pcr == 9:
        return IplEvent(IplKind.FILE, text)
    return IplEvent(IplKind.TEXT, text)


def _no_action(data: bytes, base: int) -> DecodedEvent:
    if data.startswith(SPEC_ID_EVENT03) or data[:16] in (b"Spec ID Event00\x00", b"Spec ID Event02\x00"):
        return parse_spec_id(data, offset=base)
    if len(data) == 17 and data[:16] == b"StartupLocality\x00":
        return StartupLocality(data[16])
    label = _ascii_text(data[:16].split(b"\x00", 1)[0]) or ""
    return NoActionData(label, data)


def _is_boot_option(name: str) -> bool:
    return len(name) == 8 and name.startswith("Boot") and all(c in "0123456789ABCDEFabcdef" for c in name[4:])


def _gpt(data: bytes, base: int) -> GptData:
    reader = Reader(data, base)
    header = reader.take(92, "UEFI_PARTITION_TABLE_HEADER")
    if header[:8] != b"EFI PART":
        raise EventLogError("GPT header signature is not 'EFI PART'", offset=base)
    disk_guid = uuid.UUID(bytes_le=header[56:72])
    entry_size = struct.unpack_from("<I", header, 84)[0]
    count = reader.u64("UEFI_GPT_DATA.NumberOfPartitions")
    if entry_size < 128:
        raise EventLogError(f"GPT partition entry size {entry_size} is below 128", offset=base + 84)
    if count * entry_size > reader.remaining:
        raise EventLogError(f"{count} GPT partitions of {entry_size} bytes do not fit the event", offset=base + 92)
    partitions = []
    for _ in range(count):
        entry = reader.take(entry_size, "UEFI_PARTITION_ENTRY")
        first, last, attributes = struct.unpack_from("<QQQ", entry, 32)
        partitions.append(
            GptPartition(
                type_guid=uuid.UUID(bytes_le=entry[:16]),
                unique_guid=uuid.UUID(bytes_le=entry[16:32]),
                first_lba=first,
                last_lba=last,
                attributes=attributes,
                name=utf16(entry[56:128]),
            )
        )
    return GptData(disk_guid, tuple(partitions))


def _separator(data: bytes, base: int) -> Separator:
    if len(data) != 4:
        raise EventLogError(f"EV_SEPARATOR data is {len(data)} bytes, not 4", offset=base)
    return Separator(struct.unpack("<I", data)[0], data)


def _blob(data: bytes, base: int, *, with_description: bool) -> FirmwareBlob:
    reader = Reader(data, base)
    description = None
    if with_description:
        size = reader.u8("UEFI_PLATFORM_FIRMWARE_BLOB2.BlobDescriptionSize")
        description = reader.take(size, "BlobDescription").decode("ascii", errors="replace").rstrip("\x00")
    blob_base = reader.u64("BlobBase")
    length = reader.u64("BlobLength")
    return FirmwareBlob(blob_base, length, description)


def _handoff(data: bytes, base: int, *, with_description: bool) -> HandoffTables:
    reader = Reader(data, base)
    description = None
    if with_description:
        size = reader.u8("UEFI_HANDOFF_TABLE_POINTERS2.TableDescriptionSize")
        description = reader.take(size, "TableDescription").decode("ascii", errors="replace").rstrip("\x00")
    count = reader.u64("NumberOfTables")
    if count * 24 > reader.remaining:
        raise EventLogError(f"{count} handoff tables do not fit the event", offset=reader.offset - 8)
    tables = tuple((reader.guid("VendorGuid"), reader.u64("VendorTable")) for _ in range(count))
    return HandoffTables(tables, description)


def _scrtm_version(data: bytes) -> Text:
    if len(data) >= 2 and len(data) % 2 == 0 and data[-2:] == b"\x00\x00":
        return Text(utf16(data), encoding="utf-16")
    if len(data) == 16:
        return Text(str(uuid.UUID(bytes_le=data)), encoding="guid")
    ascii_text = _ascii_text(data)
    return Text(ascii_text, encoding="ascii") if ascii_text is not None else Text(data.hex(), encoding="hex")


def _tagged(data: bytes, base: int) -> TaggedEvent | RawData:
    if len(data) < 8:
        return RawData(data)
    event_id, size = struct.unpack_from("<II", data, 0)
    if size > len(data) - 8:
        return RawData(data)  # Windows WBCL and other vendor formats reuse EV_EVENT_TAG without the TCG header
    notes = (f"{len(data) - 8 - size} bytes after the tagged data ignored",) if size < len(data) - 8 else ()
    return TaggedEvent(event_id, data[8 : 8 + size], notes)


def _ascii_text(data: bytes) -> str | None:
    stripped = data.rstrip(b"\x00")
    if not stripped or not stripped.isascii():
        return None if stripped else ""
    text = stripped.decode("ascii")
    return text if all(c.isprintable() or c in "\t\r\n" for c in text) else None


def _text_or_raw(data: bytes) -> Text | RawData:
    text = _ascii_text(data)
    if text:
        return Text(text)
    if len(data) >= 4 and data[1] == 0 and data[0] != 0 and len(data) % 2 == 0:
        return Text(utf16(data), encoding="utf-16")
    return RawData(data)
