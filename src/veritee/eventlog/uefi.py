"""UEFI structures found in event data: GUIDs, UEFI_VARIABLE_DATA, EFI_SIGNATURE_LIST/DATA, EFI_LOAD_OPTION.

Every reader is bounds-checked and raises :class:`EventLogError` with the absolute byte offset in the log.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from veritee.eventlog.model import EventLogError

if TYPE_CHECKING:
    from cryptography.x509 import Certificate

# --- well-known GUIDs ---------------------------------------------------------------------------------------------
EFI_GLOBAL_VARIABLE = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")
EFI_IMAGE_SECURITY_DATABASE = uuid.UUID("d719b2cb-3d3a-4596-a3bc-dad00e67656f")
SHIM_LOCK_GUID = uuid.UUID("605dab50-e046-4300-abb6-3dd810dd8b23")
EFI_CERT_X509 = uuid.UUID("a5c059a1-94e4-4aa7-87b5-ab155c2bf072")
EFI_CERT_SHA256 = uuid.UUID("c1c41626-504c-4092-aca9-41f936934328")

HANDOFF_TABLE_NAMES = {
    uuid.UUID("8868e871-e4f1-11d3-bc22-0080c73c8881"): "ACPI 2.0",
    uuid.UUID("eb9d2d30-2d88-11d3-9a16-0090273fc14d"): "ACPI 1.0",
    uuid.UUID("eb9d2d31-2d88-11d3-9a16-0090273fc14d"): "SMBIOS",
    uuid.UUID("f2fd1544-9794-4a2c-992e-e5bbcf20e394"): "SMBIOS3",
}


class SignatureKind(Enum):
    """What an EFI_SIGNATURE_DATA holds, from its list's SignatureType GUID (UEFI 2.x section 32.4.1)."""

    X509 = "x509"
    SHA256 = "sha256"
    SHA1 = "sha1"
    SHA224 = "sha224"
    SHA384 = "sha384"
    SHA512 = "sha512"
    RSA2048 = "rsa2048"
    RSA2048_SHA256 = "rsa2048-sha256"
    RSA2048_SHA1 = "rsa2048-sha1"
    X509_SHA256 = "x509-sha256"
    X509_SHA384 = "x509-sha384"
    X509_SHA512 = "x509-sha512"
    UNKNOWN = "unknown"


SIGNATURE_TYPES: dict[uuid.UUID, SignatureKind] = {
    EFI_CERT_X509: SignatureKind.X509,
    EFI_CERT_SHA256: SignatureKind.SHA256,
    uuid.UUID("826ca512-cf10-4ac9-b187-be01496631bd"): SignatureKind.SHA1,
    uuid.UUID("0b6e5233-a65c-44c9-9407-d9ab83bfc8bd"): SignatureKind.SHA224,
    uuid.UUID("ff3e5307-9fd0-48c9-85f1-8ad56c701e01"): SignatureKind.SHA384,
    uuid.UUID("093e0fae-a6c4-4f50-9f1b-d41e2b89c19a"): SignatureKind.SHA512,
    uuid.UUID("3c5766e8-269c-4e34-aa14-ed776e85b3b6"): SignatureKind.RSA2048,
    uuid.UUID("e2b36190-879b-4a3d-ad8d-f2e7bba32784"): SignatureKind.RSA2048_SHA256,
    uuid.UUID("67f8444f-8743-48f1-a328-1eaab8736080"): SignatureKind.RSA2048_SHA1,
    uuid.UUID("3bd2a492-96c0-4079-b420-fcf98ef103ed"): SignatureKind.X509_SHA256,
    uuid.UUID("7076876e-80c2-4ee6-aad2-28b349a6865b"): SignatureKind.X509_SHA384,
    uuid.UUID("446dbf63-2502-4cda-bcfa-2465d2b0fe9d"): SignatureKind.X509_SHA512,
}


class Reader:
    """Little-endian cursor over event data; ``base`` is the absolute log offset of ``data[0]`` for errors."""

    __slots__ = ("base", "data", "pos")

    def __init__(self, data: bytes, base: int = 0, pos: int = 0) -> None:
        self.data = data
        self.base = base
        self.pos = pos

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def take(self, size: int, what: str) -> bytes:
        if size < 0 or self.pos + size > len(self.data):
            raise EventLogError(f"{what}: needs {size} bytes, {self.remaining} left", offset=self.offset)
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        value: int = struct.unpack("<H", self.take(2, what))[0]
        return value

    def u32(self, what: str) -> int:
        value: int = struct.unpack("<I", self.take(4, what))[0]
        return value

    def u64(self, what: str) -> int:
        value: int = struct.unpack("<Q", self.take(8, what))[0]
        return value

    def guid(self, what: str) -> uuid.UUID:
        return uuid.UUID(bytes_le=self.take(16, what))

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk


def utf16(data: bytes) -> str:
    """UTF-16LE text up to the first NUL character (an odd trailing byte is dropped)."""
    if len(data) % 2:
        data = data[:-1]
    text = data.decode("utf-16-le", errors="replace")
    end = text.find("\x00")
    return text if end < 0 else text[:end]


# --- UEFI_VARIABLE_DATA -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VariableData:
    """UEFI_VARIABLE_DATA: VariableName GUID, UnicodeName, VariableData (``notes`` record length disagreements)."""

    vendor_guid: uuid.UUID
    name: str
    data: bytes
    declared_data_length: int
    notes: tuple[str, ...]


def parse_variable_data(data: bytes, base: int = 0) -> VariableData:
    """Decode UEFI_VARIABLE_DATA; a VariableDataLength that disagrees with the event size is tolerated and noted."""
    reader = Reader(data, base)
    guid = reader.guid("UEFI_VARIABLE_DATA.VariableName")
    name_length = reader.u64("UEFI_VARIABLE_DATA.UnicodeNameLength")
    data_length = reader.u64("UEFI_VARIABLE_DATA.VariableDataLength")
    if name_length > 1024:
        raise EventLogError(f"UEFI_VARIABLE_DATA.UnicodeNameLength {name_length} is implausible", offset=base + 16)
    name = reader.take(2 * name_length, "UEFI_VARIABLE_DATA.UnicodeName").decode("utf-16-le", errors="replace")
    notes: list[str] = []
    available = reader.remaining
    if data_length > available:
        notes.append(f"VariableDataLength {data_length} exceeds the {available} bytes left in the event; truncated")
        value = reader.rest()
    else:
        value = reader.take(data_length, "UEFI_VARIABLE_DATA.VariableData")
        if reader.remaining:
            notes.append(f"{reader.remaining} bytes after VariableData ignored")
    return VariableData(guid, name.rstrip("\x00"), value, data_length, tuple(notes))


# --- EFI_SIGNATURE_LIST / EFI_SIGNATURE_DATA --------------------------------------------------------------------
@dataclass(frozen=True)
class SignatureEntry:
    """One EFI_SIGNATURE_DATA: its owner GUID, what it is, and its bytes (a DER certificate or a hash)."""

    kind: SignatureKind
    owner: uuid.UUID | None
    data: bytes
    signature_type: uuid.UUID | None = None

    def certificate(self) -> Certificate:
        """The X.509 certificate of an X509 entry (``cryptography`` is imported on first use)."""
        if self.kind is not SignatureKind.X509:
            raise EventLogError(f"signature entry is {self.kind.value}, not an X.509 certificate")
        from cryptography import x509

        try:
            return x509.load_der_x509_certificate(self.data)
        except ValueError as exc:
            raise EventLogError(f"malformed X.509 certificate in signature entry: {exc}") from exc


def parse_signature_lists(data: bytes, base: int = 0) -> tuple[SignatureEntry, ...]:
    """Decode a concatenation of EFI_SIGNATURE_LISTs (the value of PK, KEK, db, dbx, MokList, ...)."""
    entries: list[SignatureEntry] = []
    reader = Reader(data, base)
    while reader.remaining:
        start = reader.offset
        sig_type = reader.guid("EFI_SIGNATURE_LIST.SignatureType")
        list_size = reader.u32("EFI_SIGNATURE_LIST.SignatureListSize")
        header_size = reader.u32("EFI_SIGNATURE_LIST.SignatureHeaderSize")
        sig_size = reader.u32("EFI_SIGNATURE_LIST.SignatureSize")
        body = list_size - 28 - header_size
        if list_size < 28 or body < 0 or body > reader.remaining - header_size:
            raise EventLogError(f"EFI_SIGNATURE_LIST size {list_size} does not fit its event", offset=start + 16)
        if sig_size < 16 or body % sig_size:
            raise EventLogError(
                f"EFI_SIGNATURE_LIST of {body} bytes is not a whole number of {sig_size}-byte signatures",
                offset=start + 24,
            )
        reader.take(header_size, "EFI_SIGNATURE_LIST.SignatureHeader")
        kind = SIGNATURE_TYPES.get(sig_type, SignatureKind.UNKNOWN)
        for _ in range(body // sig_size):
            owner = reader.guid("EFI_SIGNATURE_DATA.SignatureOwner")
            entries.append(SignatureEntry(kind, owner, reader.take(sig_size - 16, "SignatureData"), sig_type))
    return tuple(entries)


def der_length(data: bytes) -> int | None:
    """The total length of the DER SEQUENCE at the start of ``data``, or None when it is not one that fits."""
    if len(data) < 2 or data[0] != 0x30:
        return None
    first = data[1]
    if first < 0x80:
        total = 2 + first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or len(data) < 2 + count:
            return None
        total = 2 + count + int.from_bytes(data[2 : 2 + count], "big")
    return total if total <= len(data) else None


def parse_signature_data(data: bytes, base: int = 0) -> tuple[SignatureEntry, tuple[str, ...]]:
    """Decode the single EFI_SIGNATURE_DATA of an EV_EFI_VARIABLE_AUTHORITY event.

    Old shim versions logged the certificate without its owner GUID, or with one stray byte after it; both are
    recognised from the DER length of the certificate and noted.
    """
    notes: list[str] = []
    if len(data) >= 16:
        owner = uuid.UUID(bytes_le=data[:16])
        length = der_length(data[16:])
        if length is not None:
            if length != len(data) - 16:
                notes.append(f"{len(data) - 16 - length} bytes after the certificate ignored (shim quirk)")
            return SignatureEntry(SignatureKind.X509, owner, data[16 : 16 + length]), tuple(notes)
    length = der_length(data)
    if length is not None:
        notes.append("certificate logged without its SignatureOwner GUID (shim quirk)")
        return SignatureEntry(SignatureKind.X509, None, data[:length]), tuple(notes)
    if len(data) < 16:
        raise EventLogError(f"EFI_SIGNATURE_DATA of {len(data)} bytes has no room for its owner GUID", offset=base)
    kind = SignatureKind.SHA256 if len(data) == 48 else SignatureKind.UNKNOWN
    return SignatureEntry(kind, uuid.UUID(bytes_le=data[:16]), data[16:]), tuple(notes)


# --- EFI_LOAD_OPTION (Boot####) ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoadOption:
    """EFI_LOAD_OPTION: attributes, description, device path (as text) and optional data."""

    attributes: int
    description: str
    device_path: str
    optional_data: bytes

    @property
    def active(self) -> bool:
        return bool(self.attributes & 0x1)


def parse_load_option(data: bytes, base: int = 0) -> LoadOption:
    from veritee.eventlog.devicepath import parse_device_path

    reader = Reader(data, base)
    attributes = reader.u32("EFI_LOAD_OPTION.Attributes")
    path_length = reader.u16("EFI_LOAD_OPTION.FilePathListLength")
    chars: list[str] = []
    while True:
        unit = reader.u16("EFI_LOAD_OPTION.Description")
        if unit == 0:
            break
        chars.append(chr(unit) if not 0xD800 <= unit <= 0xDFFF else "\ufffd")
    path_offset = reader.offset
    path = parse_device_path(reader.take(path_length, "EFI_LOAD_OPTION.FilePathList"), path_offset)
    return LoadOption(attributes, "".join(chars), path.text, reader.rest())


def parse_boot_order(data: bytes, base: int = 0) -> tuple[int, ...]:
    if len(data) % 2:
        raise EventLogError(f"BootOrder of odd length {len(data)}", offset=base)
    return struct.unpack(f"<{len(data) // 2}H", data)
