"""TPMS_ATTEST (TPM 2.0 Part 2, 10.12) and the structures inside it: PCR selections, clock info, attested info."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from veritee.errors import DecodeError, EncodeError
from veritee.tpm.alg import HashAlg
from veritee.tpm.constants import (
    MAX_DATA,
    MAX_DIGEST,
    MAX_NAME,
    MAX_NV_BUFFER,
    NUM_PCR_BANKS,
    PCR_SELECT_MAX,
    TPM_GENERATED_VALUE,
    TpmSt,
)
from veritee.tpm.marshal import Reader, Writer, lookup_table, to_bytes

_HASHES = lookup_table(HashAlg)
_TAGS = lookup_table(TpmSt)

# For each byte value, the bit positions that are set (LSB first): PCR n is bit n % 8 of byte n // 8.
_BITS: tuple[tuple[int, ...], ...] = tuple(tuple(bit for bit in range(8) if value >> bit & 1) for value in range(256))


# --- PCR selection -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PcrSelection:
    """TPMS_PCR_SELECTION: one bank and a bitmap of ``sizeofSelect`` bytes (``pcrs``: selected indices, ascending)."""

    hash_alg: HashAlg
    select: bytes
    pcrs: tuple[int, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "pcrs", tuple(8 * i + bit for i, value in enumerate(self.select) for bit in _BITS[value])
        )

    @classmethod
    def of(cls, hash_alg: HashAlg, pcrs: Iterable[int], size_of_select: int = 3) -> PcrSelection:
        """A selection of the given PCR indices (``size_of_select`` 3 covers PCR 0-23, what PC Client TPMs use)."""
        bitmap = bytearray(size_of_select)
        for index in pcrs:
            if not 0 <= index < 8 * size_of_select:
                raise EncodeError(f"PCR {index} does not fit a {size_of_select}-byte selection")
            bitmap[index // 8] |= 1 << (index % 8)
        return cls(hash_alg, bytes(bitmap))

    @property
    def size_of_select(self) -> int:
        return len(self.select)

    def describe(self) -> str:
        """E.g. ``sha256:0,1,2,10`` (the tpm2-tools notation)."""
        return f"{self.hash_alg.label}:{','.join(map(str, self.pcrs))}"

    @classmethod
    def read(cls, r: Reader) -> PcrSelection:
        hash_alg = r.enum(HashAlg, _HASHES, "pcrSelection.hash")
        offset = r.pos
        size = r.u8("pcrSelection.sizeofSelect")
        if size > PCR_SELECT_MAX:
            raise DecodeError(f"sizeofSelect {size} exceeds the maximum {PCR_SELECT_MAX}", offset=offset)
        return cls(hash_alg, r.raw(size, "pcrSelection.pcrSelect"))

    def write(self, w: Writer) -> None:
        if len(self.select) > PCR_SELECT_MAX:
            raise EncodeError(f"sizeofSelect {len(self.select)} exceeds the maximum {PCR_SELECT_MAX}")
        w.u16(self.hash_alg)
        w.u8(len(self.select))
        w.raw(self.select)


@dataclass(frozen=True, slots=True)
class TpmlPcrSelection:
    """TPML_PCR_SELECTION: up to 16 bank selections, in the order the TPM digests them."""

    selections: tuple[PcrSelection, ...]

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> TpmlPcrSelection:
        r = Reader(to_bytes(data))
        value = cls.read(r)
        r.finish("TPML_PCR_SELECTION")
        return value

    @classmethod
    def read(cls, r: Reader) -> TpmlPcrSelection:
        offset = r.pos
        count = r.u32("TPML_PCR_SELECTION.count")
        if count > NUM_PCR_BANKS:
            raise DecodeError(f"TPML_PCR_SELECTION count {count} exceeds the maximum {NUM_PCR_BANKS}", offset=offset)
        return cls(tuple(PcrSelection.read(r) for _ in range(count)))

    def write(self, w: Writer) -> None:
        if len(self.selections) > NUM_PCR_BANKS:
            raise EncodeError(f"{len(self.selections)} PCR selections, more than {NUM_PCR_BANKS}")
        w.u32(len(self.selections))
        for selection in self.selections:
            selection.write(w)

    def pack(self) -> bytes:
        w = Writer()
        self.write(w)
        return w.getvalue()

    def describe(self) -> str:
        return "+".join(s.describe() for s in self.selections) or "(none)"


# --- clock ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TpmsClockInfo:
    """TPMS_CLOCK_INFO. ``reset_count`` and ``restart_count`` are offset by a per-key constant when the signing key
    is outside the endorsement and platform hierarchies (TPM 2.0 Part 3, 18.2); differences stay exact mod 2^32."""

    clock: int
    reset_count: int
    restart_count: int
    safe: bool

    @classmethod
    def read(cls, r: Reader) -> TpmsClockInfo:
        return cls(
            r.u64("clockInfo.clock"),
            r.u32("clockInfo.resetCount"),
            r.u32("clockInfo.restartCount"),
            r.yes_no("clockInfo.safe"),
        )

    def write(self, w: Writer) -> None:
        w.u64(self.clock)
        w.u32(self.reset_count)
        w.u32(self.restart_count)
        w.u8(1 if self.safe else 0)


# --- attested information, one per TPMI_ST_ATTEST -----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class QuoteInfo:
    """TPMS_QUOTE_INFO."""

    pcr_select: TpmlPcrSelection
    pcr_digest: bytes

    @classmethod
    def read(cls, r: Reader) -> QuoteInfo:
        return cls(TpmlPcrSelection.read(r), r.tpm2b("pcrDigest", MAX_DIGEST))

    def write(self, w: Writer) -> None:
        self.pcr_select.write(w)
        w.tpm2b(self.pcr_digest, MAX_DIGEST, "pcrDigest")


@dataclass(frozen=True, slots=True)
class CertifyInfo:
    """TPMS_CERTIFY_INFO."""

    name: bytes
    qualified_name: bytes

    @classmethod
    def read(cls, r: Reader) -> CertifyInfo:
        return cls(r.tpm2b("name", MAX_NAME), r.tpm2b("qualifiedName", MAX_NAME))

    def write(self, w: Writer) -> None:
        w.tpm2b(self.name, MAX_NAME, "name")
        w.tpm2b(self.qualified_name, MAX_NAME, "qualifiedName")


@dataclass(frozen=True, slots=True)
class CreationInfo:
    """TPMS_CREATION_INFO (TPM2_CertifyCreation)."""

    object_name: bytes
    creation_hash: bytes

    @classmethod
    def read(cls, r: Reader) -> CreationInfo:
        return cls(r.tpm2b("objectName", MAX_NAME), r.tpm2b("creationHash", MAX_DIGEST))

    def write(self, w: Writer) -> None:
        w.tpm2b(self.object_name, MAX_NAME, "objectName")
        w.tpm2b(self.creation_hash, MAX_DIGEST, "creationHash")


@dataclass(frozen=True, slots=True)
class CommandAuditInfo:
    """TPMS_COMMAND_AUDIT_INFO."""

    audit_counter: int
    digest_alg: HashAlg
    audit_digest: bytes
    command_digest: bytes

    @classmethod
    def read(cls, r: Reader) -> CommandAuditInfo:
        counter = r.u64("auditCounter")
        alg = r.enum(HashAlg, _HASHES, "digestAlg")
        return cls(counter, alg, r.tpm2b("auditDigest", MAX_DIGEST), r.tpm2b("commandDigest", MAX_DIGEST))

    def write(self, w: Writer) -> None:
        w.u64(self.audit_counter)
        w.u16(self.digest_alg)
        w.tpm2b(self.audit_digest, MAX_DIGEST, "auditDigest")
        w.tpm2b(self.command_digest, MAX_DIGEST, "commandDigest")


@dataclass(frozen=True, slots=True)
class SessionAuditInfo:
    """TPMS_SESSION_AUDIT_INFO."""

    exclusive_session: bool
    session_digest: bytes

    @classmethod
    def read(cls, r: Reader) -> SessionAuditInfo:
        return cls(r.yes_no("exclusiveSession"), r.tpm2b("sessionDigest", MAX_DIGEST))

    def write(self, w: Writer) -> None:
        w.u8(1 if self.exclusive_session else 0)
        w.tpm2b(self.session_digest, MAX_DIGEST, "sessionDigest")


@dataclass(frozen=True, slots=True)
class TimeAttestInfo:
    """TPMS_TIME_ATTEST_INFO (TPMS_TIME_INFO time + clockInfo, then firmwareVersion)."""

    time: int
    clock_info: TpmsClockInfo
    firmware_version: int

    @classmethod
    def read(cls, r: Reader) -> TimeAttestInfo:
        return cls(r.u64("time.time"), TpmsClockInfo.read(r), r.u64("firmwareVersion"))

    def write(self, w: Writer) -> None:
        w.u64(self.time)
        self.clock_info.write(w)
        w.u64(self.firmware_version)


@dataclass(frozen=True, slots=True)
class NvCertifyInfo:
    """TPMS_NV_CERTIFY_INFO."""

    index_name: bytes
    offset: int
    nv_contents: bytes

    @classmethod
    def read(cls, r: Reader) -> NvCertifyInfo:
        return cls(r.tpm2b("indexName", MAX_NAME), r.u16("offset"), r.tpm2b("nvContents", MAX_NV_BUFFER))

    def write(self, w: Writer) -> None:
        w.tpm2b(self.index_name, MAX_NAME, "indexName")
        w.u16(self.offset)
        w.tpm2b(self.nv_contents, MAX_NV_BUFFER, "nvContents")


@dataclass(frozen=True, slots=True)
class NvDigestCertifyInfo:
    """TPMS_NV_DIGEST_CERTIFY_INFO."""

    index_name: bytes
    nv_digest: bytes

    @classmethod
    def read(cls, r: Reader) -> NvDigestCertifyInfo:
        return cls(r.tpm2b("indexName", MAX_NAME), r.tpm2b("nvDigest", MAX_DIGEST))

    def write(self, w: Writer) -> None:
        w.tpm2b(self.index_name, MAX_NAME, "indexName")
        w.tpm2b(self.nv_digest, MAX_DIGEST, "nvDigest")


Attested = (
    QuoteInfo
    | CertifyInfo
    | CreationInfo
    | CommandAuditInfo
    | SessionAuditInfo
    | TimeAttestInfo
    | NvCertifyInfo
    | NvDigestCertifyInfo
)

_ATTESTED: dict[TpmSt, type[Attested]] = {
    TpmSt.ATTEST_QUOTE: QuoteInfo,
    TpmSt.ATTEST_CERTIFY: CertifyInfo,
    TpmSt.ATTEST_CREATION: CreationInfo,
    TpmSt.ATTEST_COMMAND_AUDIT: CommandAuditInfo,
    TpmSt.ATTEST_SESSION_AUDIT: SessionAuditInfo,
    TpmSt.ATTEST_TIME: TimeAttestInfo,
    TpmSt.ATTEST_NV: NvCertifyInfo,
    TpmSt.ATTEST_NV_DIGEST: NvDigestCertifyInfo,
}


@dataclass(frozen=True, slots=True)
class TpmsAttest:
    """TPMS_ATTEST. ``magic`` is kept as read (the quote checks require TPM_GENERATED_VALUE); ``raw`` is the signed
    byte string (kept from the input, or marshalled when built in code)."""

    magic: int
    type: TpmSt
    qualified_signer: bytes
    extra_data: bytes
    clock_info: TpmsClockInfo
    firmware_version: int
    attested: Attested
    raw: bytes = field(default=b"", repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.attested, _ATTESTED[self.type]):
            raise EncodeError(f"attested {type(self.attested).__name__} does not fit type {self.type.name}")
        if not self.raw:
            object.__setattr__(self, "raw", self._marshal())

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> TpmsAttest:
        """Decode a TPMS_ATTEST that fills ``data`` exactly (tpm2-tools' quote message, TPM2B_ATTEST contents)."""
        return cls._decode(to_bytes(data), 0)

    @classmethod
    def from_tpm2b(cls, data: bytes | bytearray | memoryview) -> TpmsAttest:
        """Decode a TPM2B_ATTEST (2-byte size, then the TPMS_ATTEST)."""
        buf = to_bytes(data)
        size = Reader(buf).u16("TPM2B_ATTEST size")
        if size != len(buf) - 2:
            raise DecodeError(f"TPM2B_ATTEST size {size} does not match the {len(buf) - 2} bytes that follow", offset=0)
        return cls._decode(buf, 2)

    @classmethod
    def _decode(cls, buf: bytes, start: int) -> TpmsAttest:
        r = Reader(buf, start)
        magic = r.u32("magic")
        tag = r.enum(TpmSt, _TAGS, "type")
        qualified_signer = r.tpm2b("qualifiedSigner", MAX_NAME)
        extra_data = r.tpm2b("extraData", MAX_DATA)
        clock_info = TpmsClockInfo.read(r)
        firmware_version = r.u64("firmwareVersion")
        attested = _ATTESTED[tag].read(r)
        r.finish("TPMS_ATTEST")
        raw = buf if start == 0 else buf[start:]
        return cls(magic, tag, qualified_signer, extra_data, clock_info, firmware_version, attested, raw)

    def pack(self) -> bytes:
        return self.raw

    def _marshal(self) -> bytes:
        w = Writer()
        w.u32(self.magic)
        w.u16(self.type)
        w.tpm2b(self.qualified_signer, MAX_NAME, "qualifiedSigner")
        w.tpm2b(self.extra_data, MAX_DATA, "extraData")
        self.clock_info.write(w)
        w.u64(self.firmware_version)
        self.attested.write(w)
        return w.getvalue()

    @property
    def is_tpm_generated(self) -> bool:
        return self.magic == TPM_GENERATED_VALUE
