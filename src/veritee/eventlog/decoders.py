"""On-demand decoding of event data by event type (parsing a log never calls these).

``decode(event)`` returns one of the dataclasses of :mod:`veritee.eventlog.decoded` (re-exported here); malformed
structures raise :class:`EventLogError` with the absolute byte offset in the log. Firmware quirks that do not stop
decoding (lengths that disagree with the event size, shim's authority-event bugs, a zero-length SecureBoot variable)
are kept in each result's ``notes``.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from dataclasses import replace

from veritee.eventlog.decoded import (
    DecodedEvent,
    EfiVariable,
    FirmwareBlob,
    GptData,
    GptPartition,
    HandoffTables,
    ImageLoad,
    IplEvent,
    IplKind,
    NoActionData,
    RawData,
    Separator,
    StartupLocality,
    TaggedEvent,
    Text,
    ascii_text,
)
from veritee.eventlog.devicepath import DevicePath, parse_device_path
from veritee.eventlog.model import EVENT_TYPES, Event, EventLogError, EventType
from veritee.eventlog.parser import SPEC_ID_EVENT03, parse_spec_id
from veritee.eventlog.uefi import (
    LoadOption,
    Reader,
    SignatureEntry,
    SignatureLists,
    parse_boot_order,
    parse_load_option,
    parse_signature_data,
    utf16,
    variable_data_fields,
)

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
    "classify_ipl",
    "decode",
    "decode_image_load",
    "decode_ipl",
    "decode_variable",
    "decode_variable_parts",
    "separator_value",
    "variable_facts",
]

ET = EventType
_AUTHORITY = ET.EV_EFI_VARIABLE_AUTHORITY
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


def decode(event: Event) -> DecodedEvent:
    """Decode ``event.data`` according to ``event.type``; raises EventLogError for malformed structures."""
    return _DECODERS.get(event.type, _decode_text_or_raw)(event)


def _decode_variable(event: Event) -> EfiVariable:
    return decode_variable(EVENT_TYPES[event.type], event.data, event.data_offset)


def _decode_no_action(event: Event) -> DecodedEvent:
    return _no_action(event.data, event.data_offset)


def _decode_image_load(event: Event) -> ImageLoad:
    return decode_image_load(event.data, event.data_offset)


def _decode_gpt(event: Event) -> GptData:
    return _gpt(event.data, event.data_offset)


def _decode_ipl(event: Event) -> IplEvent:
    return decode_ipl(event.pcr, event.data)


def _decode_separator(event: Event) -> Separator:
    return _separator(event.data, event.data_offset)


def _decode_blob(event: Event) -> FirmwareBlob:
    return _blob(event.data, event.data_offset, with_description=False)


def _decode_blob2(event: Event) -> FirmwareBlob:
    return _blob(event.data, event.data_offset, with_description=True)


def _decode_post_code(event: Event) -> FirmwareBlob | Text | RawData:
    data = event.data
    return _blob(data, event.data_offset, with_description=False) if len(data) == 16 else _text_or_raw(data)


def _decode_handoff(event: Event) -> HandoffTables:
    return _handoff(event.data, event.data_offset, with_description=False)


def _decode_handoff2(event: Event) -> HandoffTables:
    return _handoff(event.data, event.data_offset, with_description=True)


def _decode_scrtm_version(event: Event) -> Text:
    return _scrtm_version(event.data)


def _decode_tagged(event: Event) -> TaggedEvent | RawData:
    return _tagged(event.data, event.data_offset)


def _decode_action(event: Event) -> Text:
    return Text(event.data.decode("ascii", errors="replace").rstrip("\x00"))


def _decode_raw(event: Event) -> RawData:
    return RawData(event.data)


def _decode_text_or_raw(event: Event) -> Text | RawData:
    return _text_or_raw(event.data)


#: The decoder of each event type (any other type: text when it reads as text, else raw bytes).
_DECODERS: dict[int, Callable[[Event], DecodedEvent]] = {
    ET.EV_NO_ACTION: _decode_no_action,
    ET.EV_EFI_VARIABLE_DRIVER_CONFIG: _decode_variable,
    ET.EV_EFI_VARIABLE_BOOT: _decode_variable,
    ET.EV_EFI_VARIABLE_BOOT2: _decode_variable,
    ET.EV_EFI_VARIABLE_AUTHORITY: _decode_variable,
    ET.EV_EFI_BOOT_SERVICES_APPLICATION: _decode_image_load,
    ET.EV_EFI_BOOT_SERVICES_DRIVER: _decode_image_load,
    ET.EV_EFI_RUNTIME_SERVICES_DRIVER: _decode_image_load,
    ET.EV_EFI_GPT_EVENT: _decode_gpt,
    ET.EV_EFI_GPT_EVENT2: _decode_gpt,
    ET.EV_IPL: _decode_ipl,
    ET.EV_SEPARATOR: _decode_separator,
    ET.EV_EFI_PLATFORM_FIRMWARE_BLOB: _decode_blob,
    ET.EV_EFI_PLATFORM_FIRMWARE_BLOB2: _decode_blob2,
    ET.EV_POST_CODE2: _decode_blob2,
    ET.EV_POST_CODE: _decode_post_code,
    ET.EV_EFI_HANDOFF_TABLES: _decode_handoff,
    ET.EV_EFI_HANDOFF_TABLES2: _decode_handoff2,
    ET.EV_S_CRTM_VERSION: _decode_scrtm_version,
    ET.EV_EVENT_TAG: _decode_tagged,
    ET.EV_EFI_ACTION: _decode_action,
    ET.EV_ACTION: _decode_action,
    ET.EV_EFI_HCRTM_EVENT: _decode_action,
    **dict.fromkeys(_BINARY_TYPES, _decode_raw),
}


def decode_variable(event_type: EventType, data: bytes, base: int = 0) -> EfiVariable:
    """Decode UEFI_VARIABLE_DATA and the variable's value by its name."""
    variable, lists = decode_variable_parts(event_type, data, base)
    if lists is not None:
        return replace(variable, signatures=lists.entries())
    return variable


def decode_variable_parts(
    event_type: EventType, data: bytes, base: int = 0
) -> tuple[EfiVariable, SignatureLists | None]:
    """:func:`decode_variable` with the entries of a signature database left undecoded.

    For a signature database variable (PK, KEK, db, dbx, MokList, ...) whose lists are well-formed, returns the
    variable with ``signatures`` unset and the checked :class:`SignatureLists` (decode them with ``entries()``);
    everything else (notes included) is exactly what :func:`decode_variable` gives.
    """
    guid, name, value, facts = variable_facts(event_type, data, base)
    notes, secure_boot, signatures, lists, boot_order, load_option, text = facts
    variable = EfiVariable(
        event_type,
        guid,
        name,
        value,
        secure_boot=secure_boot,
        signatures=signatures,
        boot_order=boot_order,
        load_option=load_option,
        text=text,
        notes=notes,
    )
    return variable, lists


VariableFacts = tuple[
    tuple[str, ...],  # notes
    bool | None,  # secure_boot
    tuple[SignatureEntry, ...] | None,  # signatures (authority events)
    SignatureLists | None,  # signature lists, undecoded (signature databases)
    tuple[int, ...] | None,  # boot_order
    LoadOption | None,  # load_option
    str | None,  # text
]


def variable_facts(event_type: EventType, data: bytes, base: int = 0) -> tuple[uuid.UUID, str, bytes, VariableFacts]:
    """What :func:`decode_variable_parts` decodes, as plain tuples: (vendor_guid, name, data, facts), the facts being
    (notes, secure_boot, signatures, signature lists, boot_order, load_option, text). For callers that need a few
    facts of many variables without building an :class:`EfiVariable` each."""
    guid, name, value, _, parse_notes = variable_data_fields(data, base)
    notes = list(parse_notes)
    value_base = base + len(data) - len(value) if len(value) <= len(data) else base
    secure_boot: bool | None = None
    signatures: tuple[SignatureEntry, ...] | None = None
    lists: SignatureLists | None = None
    boot_order: tuple[int, ...] | None = None
    load_option: LoadOption | None = None
    text: str | None = None
    try:
        if event_type == _AUTHORITY:
            if name == "SbatLevel":
                text = value.decode("ascii", errors="replace")
            elif name != "MokListTrusted":
                entry, quirks = parse_signature_data(value, value_base)
                signatures = (entry,)
                notes.extend(quirks)
        elif name == "SecureBoot":
            if not value:
                notes.append("zero-length SecureBoot variable: Secure Boot not enabled")
            elif len(value) != 1:
                notes.append(f"SecureBoot variable of {len(value)} bytes; its first byte is used")
            secure_boot = bool(value) and value[0] == 1
        elif name in _SIGNATURE_DATABASES:
            lists = SignatureLists.parse(value, value_base)
        elif name == "BootOrder":
            boot_order = parse_boot_order(value, value_base)
        elif _is_boot_option(name) and value:
            load_option = parse_load_option(value, value_base)
    except EventLogError as exc:
        notes.append(f"{name} value not decoded: {exc}")
        return guid, name, value, (tuple(notes), None, None, None, None, None, None)
    return guid, name, value, (tuple(notes), secure_boot, signatures, lists, boot_order, load_option, text)


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
_GRUB_INITIALS = frozenset(prefix[:1] for prefix, _ in _GRUB_PREFIXES)
_IPL_KERNEL_CMDLINE = IplKind.KERNEL_CMDLINE
_IPL_TEXT = IplKind.TEXT
_IPL_BINARY = IplKind.BINARY
_IPL_SHIM_VARIABLE = IplKind.SHIM_VARIABLE
_IPL_FILE = IplKind.FILE
_SHIM_VARIABLES = frozenset({"MokList", "MokListX", "MokListTrusted", "MokSBState", "SbatLevel"})


def decode_ipl(pcr: int, data: bytes) -> IplEvent:
    """Classify EV_IPL data: grub (PCR8 commands, PCR9 files), shim (PCR14), systemd-boot/sd-stub UTF-16 text."""
    return IplEvent(*classify_ipl(pcr, data))


def classify_ipl(pcr: int, data: bytes) -> tuple[IplKind, str, str, str]:
    """:func:`decode_ipl` as a tuple (kind, text, prefix, encoding), without building the IplEvent."""
    if len(data) >= 2 and data[1] == 0 and data[0] != 0:
        text = utf16(data)
        return (_IPL_KERNEL_CMDLINE if pcr in (8, 12) else _IPL_TEXT), text, "", "utf-16"
    text_or_none = ascii_text(data)
    if text_or_none is None:
        return _IPL_BINARY, data.hex(), "", "ascii"
    text = text_or_none
    if text[:1] in _GRUB_INITIALS:
        for prefix, kind in _GRUB_PREFIXES:
            if text.startswith(prefix):
                return kind, text[len(prefix) :], prefix, "ascii"
    if pcr == 14 and text in _SHIM_VARIABLES:
        return _IPL_SHIM_VARIABLE, text, "", "ascii"
    if pcr == 9:
        return _IPL_FILE, text, "", "ascii"
    return _IPL_TEXT, text, "", "ascii"


def _no_action(data: bytes, base: int) -> DecodedEvent:
    if data.startswith(SPEC_ID_EVENT03) or data[:16] in (b"Spec ID Event00\x00", b"Spec ID Event02\x00"):
        return parse_spec_id(data, offset=base)
    if len(data) == 17 and data[:16] == b"StartupLocality\x00":
        return StartupLocality(data[16])
    label = ascii_text(data[:16].split(b"\x00", 1)[0]) or ""
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
    return Separator(separator_value(data, base), data)


def separator_value(data: bytes, base: int = 0) -> int:
    """The value of EV_SEPARATOR data (0 normal, 1 error); raises EventLogError unless it is 4 bytes."""
    if len(data) != 4:
        raise EventLogError(f"EV_SEPARATOR data is {len(data)} bytes, not 4", offset=base)
    return int.from_bytes(data, "little")


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
    text = ascii_text(data)
    return Text(text, encoding="ascii") if text is not None else Text(data.hex(), encoding="hex")


def _tagged(data: bytes, base: int) -> TaggedEvent | RawData:
    if len(data) < 8:
        return RawData(data)
    event_id, size = struct.unpack_from("<II", data, 0)
    if size > len(data) - 8:
        return RawData(data)  # Windows WBCL and other vendor formats reuse EV_EVENT_TAG without the TCG header
    notes = (f"{len(data) - 8 - size} bytes after the tagged data ignored",) if size < len(data) - 8 else ()
    return TaggedEvent(event_id, data[8 : 8 + size], notes)


def _text_or_raw(data: bytes) -> Text | RawData:
    text = ascii_text(data)
    if text:
        return Text(text)
    if len(data) >= 4 and data[1] == 0 and data[0] != 0 and len(data) % 2 == 0:
        return Text(utf16(data), encoding="utf-16")
    return RawData(data)
