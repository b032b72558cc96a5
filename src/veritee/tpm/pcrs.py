"""PCR banks, the PCR composite digest a quote signs, and tpm2-tools' serialized PCR file (`tpm2_quote -o`).

The tpm2-tools file is C structures written from memory (lib/pcr.c ``pcr_fwrite_serialized``), not TPM marshalling:

* ``TPML_PCR_SELECTION`` as laid out by the TSS headers: ``UINT32 count`` then 16 ``TPMS_PCR_SELECTION`` of 8 bytes
  each (``UINT16 hash``, ``UINT8 sizeofSelect``, ``BYTE pcrSelect[4]``, one padding byte) = 132 bytes;
* ``UINT32 count`` of the TPML_DIGEST structures that follow;
* ``count`` x ``TPML_DIGEST`` (``UINT32 count`` then 8 ``TPM2B_DIGEST`` of ``UINT16 size`` + 64 bytes) = 532 bytes
  each. Each one holds what one TPM2_PCR_Read returned (at most 8 digests); the digests, in order, are the selected
  PCRs bank by bank, each bank in ascending PCR order.

Current tpm2-tools converts the integers to little-endian before writing (htole16/htole32); earlier releases wrote
host order, so a big-endian host wrote them big-endian. The byte order is detected from the selection count (at most
16), which only one reading makes valid. Padding,
unused array slots and the selection bytes past ``sizeofSelect`` are ignored.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence

from veritee.errors import DecodeError, EncodeError
from veritee.tpm.alg import HashAlg
from veritee.tpm.attest import PcrSelection
from veritee.tpm.constants import MAX_DIGEST, NUM_PCR_BANKS, PCR_SELECT_MAX
from veritee.tpm.errors import MissingPcrError, UnknownAlgorithmError
from veritee.tpm.marshal import lookup_table, to_bytes

PcrBanks = dict[HashAlg, dict[int, bytes]]
"""PCR values: bank -> PCR index -> value."""

_HASHES = lookup_table(HashAlg)

_SEL_LIST_SIZE = 4 + NUM_PCR_BANKS * 8  # 132
_HEADER_SIZE = _SEL_LIST_SIZE + 4  # 136
_DIGESTS_PER_LIST = 8
_TPM2B_DIGEST_SIZE = 2 + MAX_DIGEST  # 66
_DIGEST_LIST_SIZE = 4 + _DIGESTS_PER_LIST * _TPM2B_DIGEST_SIZE  # 532

_LAYOUT = {
    "<": (struct.Struct("<I"), struct.Struct("<HB"), struct.Struct("<H")),
    ">": (struct.Struct(">I"), struct.Struct(">HB"), struct.Struct(">H")),
}


def parse_tpm2tools_pcr_blob(data: bytes | bytearray | memoryview) -> tuple[list[PcrSelection], PcrBanks]:
    """Decode tpm2-tools' serialized PCR file: the selections it was read with, and the values per bank."""
    buf = to_bytes(data)
    if len(buf) < _HEADER_SIZE:
        raise DecodeError(f"tpm2-tools PCR file is {len(buf)} bytes, shorter than its {_HEADER_SIZE}-byte header")
    order = _byte_order(buf)
    u32, hash_and_size, u16 = _LAYOUT[order]

    count = u32.unpack_from(buf, 0)[0]
    selections: list[PcrSelection] = []
    for i in range(count):
        offset = 4 + 8 * i
        alg_id, size = hash_and_size.unpack_from(buf, offset)
        alg = _HASHES.get(alg_id)
        if alg is None:
            raise UnknownAlgorithmError(f"PCR selection {i} has unknown hash 0x{alg_id:04x}", offset=offset)
        if size > PCR_SELECT_MAX:
            raise DecodeError(f"PCR selection {i} sizeofSelect {size} exceeds {PCR_SELECT_MAX}", offset=offset + 2)
        selections.append(PcrSelection(alg, buf[offset + 3 : offset + 3 + size]))

    lists = u32.unpack_from(buf, _SEL_LIST_SIZE)[0]
    body = len(buf) - _HEADER_SIZE
    if body != lists * _DIGEST_LIST_SIZE:
        raise DecodeError(
            f"tpm2-tools PCR file announces {lists} digest lists ({lists * _DIGEST_LIST_SIZE} bytes) "
            f"but {body} bytes follow the header",
            offset=_SEL_LIST_SIZE,
        )
    values: list[tuple[int, bytes]] = []  # (offset, digest)
    for j in range(lists):
        base = _HEADER_SIZE + j * _DIGEST_LIST_SIZE
        n = u32.unpack_from(buf, base)[0]
        if n > _DIGESTS_PER_LIST:
            raise DecodeError(f"TPML_DIGEST count {n} exceeds {_DIGESTS_PER_LIST}", offset=base)
        for k in range(n):
            at = base + 4 + k * _TPM2B_DIGEST_SIZE
            size = u16.unpack_from(buf, at)[0]
            if size > MAX_DIGEST:
                raise DecodeError(f"TPM2B_DIGEST size {size} exceeds {MAX_DIGEST}", offset=at)
            values.append((at, buf[at + 2 : at + 2 + size]))

    wanted = sum(len(s.pcrs) for s in selections)
    if wanted != len(values):
        raise DecodeError(f"the selections name {wanted} PCRs but the file holds {len(values)} values")
    banks: PcrBanks = {}
    it = iter(values)
    for selection in selections:
        bank = banks.setdefault(selection.hash_alg, {})
        for index in selection.pcrs:
            at, value = next(it)
            if len(value) != selection.hash_alg.digest_size:
                raise DecodeError(
                    f"{selection.hash_alg.label} PCR {index} value is {len(value)} bytes, "
                    f"not {selection.hash_alg.digest_size}",
                    offset=at,
                )
            if bank.setdefault(index, value) != value:
                raise DecodeError(
                    f"{selection.hash_alg.label} PCR {index} appears twice with different values", offset=at
                )
    for alg, bank in banks.items():
        banks[alg] = dict(sorted(bank.items()))
    return selections, banks


def _byte_order(buf: bytes) -> str:
    little = int.from_bytes(buf[0:4], "little")
    big = int.from_bytes(buf[0:4], "big")
    if little <= NUM_PCR_BANKS:
        return "<"
    if big <= NUM_PCR_BANKS:
        return ">"
    raise DecodeError(f"PCR selection count {little} (little-endian) exceeds {NUM_PCR_BANKS}", offset=0)


def build_tpm2tools_pcr_blob(selections: Sequence[PcrSelection], banks: Mapping[HashAlg, Mapping[int, bytes]]) -> bytes:
    """The file `tpm2_quote -o` would write for these selections and values (little-endian, zero padding).

    Digests are grouped 8 per TPML_DIGEST, as successive TPM2_PCR_Read calls return them.
    """
    if len(selections) > NUM_PCR_BANKS:
        raise EncodeError(f"{len(selections)} PCR selections, more than {NUM_PCR_BANKS}")
    head = bytearray(_HEADER_SIZE)
    struct.pack_into("<I", head, 0, len(selections))
    for i, selection in enumerate(selections):
        if selection.size_of_select > PCR_SELECT_MAX:
            raise EncodeError(f"sizeofSelect {selection.size_of_select} exceeds {PCR_SELECT_MAX}")
        struct.pack_into("<HB", head, 4 + 8 * i, selection.hash_alg, selection.size_of_select)
        head[4 + 8 * i + 3 : 4 + 8 * i + 3 + selection.size_of_select] = selection.select
    digests = [_value(banks, s.hash_alg, index) for s in selections for index in s.pcrs]
    groups = [digests[i : i + _DIGESTS_PER_LIST] for i in range(0, len(digests), _DIGESTS_PER_LIST)]
    struct.pack_into("<I", head, _SEL_LIST_SIZE, len(groups))
    out = [bytes(head)]
    for group in groups:
        chunk = bytearray(_DIGEST_LIST_SIZE)
        struct.pack_into("<I", chunk, 0, len(group))
        for k, value in enumerate(group):
            at = 4 + k * _TPM2B_DIGEST_SIZE
            struct.pack_into("<H", chunk, at, len(value))
            chunk[at + 2 : at + 2 + len(value)] = value
        out.append(bytes(chunk))
    return b"".join(out)


def pcr_composite_digest(
    alg: HashAlg, selections: Iterable[PcrSelection], banks: Mapping[HashAlg, Mapping[int, bytes]]
) -> bytes:
    """H_alg of the selected PCR values concatenated in selection order (TPMS_QUOTE_INFO.pcrDigest)."""
    h = alg.new()
    for selection in selections:
        for value in _bank_values(banks, selection):
            h.update(value)
    return h.digest()


def selected_values(selections: Iterable[PcrSelection], banks: Mapping[HashAlg, Mapping[int, bytes]]) -> PcrBanks:
    """Only the selected PCR values, per bank (each bank in ascending order)."""
    out: PcrBanks = {}
    for selection in selections:
        out.setdefault(selection.hash_alg, {}).update(zip(selection.pcrs, _bank_values(banks, selection), strict=True))
    return {alg: dict(sorted(bank.items())) for alg, bank in out.items()}


def _bank_values(banks: Mapping[HashAlg, Mapping[int, bytes]], selection: PcrSelection) -> list[bytes]:
    """The values of the PCRs ``selection`` names, in its order; MissingPcrError names the first one missing."""
    alg = selection.hash_alg
    bank = banks.get(alg) or {}
    size = alg.digest_size
    values: list[bytes] = []
    for index in selection.pcrs:
        value = bank.get(index)
        if value is None or len(value) != size:
            raise _missing(alg, index, value)
        values.append(value)
    return values


def _value(banks: Mapping[HashAlg, Mapping[int, bytes]], alg: HashAlg, index: int) -> bytes:
    value = (banks.get(alg) or {}).get(index)
    if value is None or len(value) != alg.digest_size:
        raise _missing(alg, index, value)
    return value


def _missing(alg: HashAlg, index: int, value: bytes | None) -> MissingPcrError:
    if value is None:
        return MissingPcrError(f"no value for {alg.label} PCR {index}", bank=alg.label, index=index)
    return MissingPcrError(
        f"{alg.label} PCR {index} value is {len(value)} bytes, not {alg.digest_size}", bank=alg.label, index=index
    )
