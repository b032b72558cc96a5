"""UEFI structures found in event data: GUIDs, UEFI_VARIABLE_DATA, EFI_SIGNATURE_LIST/DATA, EFI_LOAD_OPTION.

Every reader is bounds-checked and raises :class:`EventLogError` with the absolute byte offset in the log.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

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


@lru_cache(maxsize=4096)
def guid_le(raw: bytes) -> uuid.UUID:
    """The GUID of 16 bytes in UEFI (mixed-endian) order. Memoised: a signature database repeats a few owner GUIDs
    hundreds of times, and building a :class:`uuid.UUID` costs more than the rest of an entry's decoding."""
    return uuid.UUID(bytes_le=raw)


#: SIGNATURE_TYPES keyed by the GUID as stored (bytes hash faster than UUIDs).
_SIGNATURE_KINDS = {guid.bytes_le: kind for guid, kind in SIGNATURE_TYPES.items()}
_UNKNOWN_KIND = SignatureKind.UNKNOWN


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
        return guid_le(self.take(16, what))

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


_VARIABLE_HEAD = struct.Struct("<16sQQ")  # UEFI_VARIABLE_DATA up to UnicodeName


def parse_variable_data(data: bytes, base: int = 0) -> VariableData:
    """Decode UEFI_VARIABLE_DATA; a VariableDataLength that disagrees with the event size is tolerated and noted."""
    return VariableData(*variable_data_fields(data, base))


def variable_data_fields(data: bytes, base: int = 0) -> tuple[uuid.UUID, str, bytes, int, tuple[str, ...]]:
    """:func:`parse_variable_data` as a tuple (vendor_guid, name, data, declared_data_length, notes)."""
    size = len(data)
    if size < _VARIABLE_HEAD.size:
        return _variable_data_fields(data, base)  # too short: the field-by-field reader names what is missing
    raw_guid, name_length, data_length = _VARIABLE_HEAD.unpack_from(data, 0)
    name_end = _VARIABLE_HEAD.size + 2 * name_length
    if name_length > 1024 or name_end > size:
        return _variable_data_fields(data, base)
    name = data[_VARIABLE_HEAD.size : name_end].decode("utf-16-le", errors="replace")
    available = size - name_end
    if data_length > available:
        notes: tuple[str, ...] = (
            f"VariableDataLength {data_length} exceeds the {available} bytes left in the event; truncated",
        )
        value = data[name_end:]
    else:
        value = data[name_end : name_end + data_length]
        left = available - data_length
        notes = (f"{left} bytes after VariableData ignored",) if left else ()
    return guid_le(raw_guid), name.rstrip("\x00"), value, data_length, notes


def _variable_data_fields(data: bytes, base: int) -> tuple[uuid.UUID, str, bytes, int, tuple[str, ...]]:
    """UEFI_VARIABLE_DATA read field by field, so a malformed one gets the error of the first field that fails."""
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
    return guid, name.rstrip("\x00"), value, data_length, tuple(notes)


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


_LIST_HEADER = struct.Struct("<16sIII")  # EFI_SIGNATURE_LIST up to SignatureSize


class SignatureListHeader(NamedTuple):
    """One EFI_SIGNATURE_LIST: its SignatureType, and where its ``number`` signatures of ``size`` bytes start."""

    signature_type: uuid.UUID
    kind: SignatureKind
    start: int  # offset of the first EFI_SIGNATURE_DATA in the variable data
    size: int  # SignatureSize: owner GUID (16 bytes) + SignatureData
    number: int  # how many signatures


@dataclass(frozen=True, slots=True)
class SignatureLists:
    """A well-formed concatenation of EFI_SIGNATURE_LISTs (the value of PK, KEK, db, dbx, MokList, ...).

    :meth:`parse` checks the structure (every list header and size) without decoding the entries; :meth:`entries`
    decodes them, :meth:`raw_entries` gives each EFI_SIGNATURE_DATA as it is stored (owner GUID in UEFI byte order,
    then the data), which is what a comparison with known entries needs.
    """

    data: bytes
    base: int
    lists: tuple[SignatureListHeader, ...]

    @classmethod
    def parse(cls, data: bytes, base: int = 0) -> SignatureLists:
        """Check the list structure of ``data``; raises EventLogError (absolute offset) where it is malformed."""
        lists: list[SignatureListHeader] = []
        size = len(data)
        pos = 0
        while pos < size:
            start = base + pos
            if pos + 28 > size:
                raise _short_list_header(data, base, pos)
            raw_type, list_size, header_size, sig_size = _LIST_HEADER.unpack_from(data, pos)
            pos += 28
            body = list_size - 28 - header_size
            if list_size < 28 or body < 0 or body > size - pos - header_size:
                raise EventLogError(f"EFI_SIGNATURE_LIST size {list_size} does not fit its event", offset=start + 16)
            if sig_size < 16 or body % sig_size:
                raise EventLogError(
                    f"EFI_SIGNATURE_LIST of {body} bytes is not a whole number of {sig_size}-byte signatures",
                    offset=start + 24,
                )
            pos += header_size
            sig_type = guid_le(raw_type)
            kind = _SIGNATURE_KINDS.get(raw_type, _UNKNOWN_KIND)
            lists.append(SignatureListHeader(sig_type, kind, pos, sig_size, body // sig_size))
            pos += body
        return cls(data, base, tuple(lists))

    def __len__(self) -> int:
        return sum(header.number for header in self.lists)

    def raw_entries(self) -> list[bytes]:
        """Every EFI_SIGNATURE_DATA (16-byte owner GUID as stored, then the data), in order."""
        data = self.data
        out: list[bytes] = []
        for header in self.lists:
            size = header.size
            start = header.start
            out += [data[at : at + size] for at in range(start, start + header.number * size, size)]
        return out

    def contains_run(self, run: bytes, size: int) -> bool:
        """Whether ``run``, a concatenation of EFI_SIGNATURE_DATA of ``size`` bytes each, is there as consecutive
        entries of one list (a few memory comparisons instead of an entry-by-entry lookup)."""
        data = self.data
        if not run or len(run) % size:
            return False
        first = run[:size]
        for header in self.lists:
            if header.size != size:
                continue
            start = header.start
            end = start + header.number * size
            at = data.find(first, start, end)
            while at >= 0:
                if (at - start) % size == 0 and at + len(run) <= end and data.startswith(run, at):
                    return True
                at = data.find(first, at + 1, end)
        return False

    def entries(self) -> tuple[SignatureEntry, ...]:
        """Every entry decoded, in order."""
        data = self.data
        out: list[SignatureEntry] = []
        for header in self.lists:
            size = header.size
            kind = header.kind
            sig_type = header.signature_type
            start = header.start
            out += [
                SignatureEntry(kind, guid_le(data[at : at + 16]), data[at + 16 : at + size], sig_type)
                for at in range(start, start + header.number * size, size)
            ]
        return tuple(out)


_LIST_FIELDS = (
    ("EFI_SIGNATURE_LIST.SignatureType", 16),
    ("EFI_SIGNATURE_LIST.SignatureListSize", 4),
    ("EFI_SIGNATURE_LIST.SignatureHeaderSize", 4),
    ("EFI_SIGNATURE_LIST.SignatureSize", 4),
)


def _short_list_header(data: bytes, base: int, pos: int) -> EventLogError:
    """The error for an EFI_SIGNATURE_LIST header cut short: the first field that does not fit (as Reader says it)."""
    left = len(data) - pos
    for what, size in _LIST_FIELDS:
        if left < size:
            return EventLogError(f"{what}: needs {size} bytes, {left} left", offset=base + pos)
        left -= size
        pos += size
    return EventLogError("EFI_SIGNATURE_LIST header truncated", offset=base + pos)


def parse_signature_lists(data: bytes, base: int = 0) -> tuple[SignatureEntry, ...]:
    """Decode a concatenation of EFI_SIGNATURE_LISTs (the value of PK, KEK, db, dbx, MokList, ...)."""
    return SignatureLists.parse(data, base).entries()


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
        owner = guid_le(data[:16])
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
    return SignatureEntry(kind, guid_le(data[:16]), data[16:]), tuple(notes)


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
