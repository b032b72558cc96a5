"""Binary parser for TCG PC Client firmware event logs (crypto-agile TCG_PCR_EVENT2 and legacy TCG_PCR_EVENT).

Layouts (TCG PC Client Platform Firmware Profile, section 10.2):

* TCG_PCR_EVENT (the first event of every log, and every event of a legacy SHA-1 log):
  ``UINT32 PCRIndex, UINT32 EventType, BYTE Digest[20], UINT32 EventSize, BYTE Event[EventSize]``.
* TCG_PCR_EVENT2 (after a "Spec ID Event03" header): ``UINT32 PCRIndex, UINT32 EventType,
  UINT32 DigestCount, {UINT16 AlgorithmId, BYTE Digest[size]} * DigestCount, UINT32 EventSize, BYTE Event[...]``;
  each digest's size comes from the Spec ID event's algorithm list (so unknown algorithms are skipped by size).

Tolerated firmware oddities: trailing zero (or 0xFF) padding after the last event, zero-length event data, and event
data whose declared inner lengths disagree with the event size (the raw data is kept; decoders deal with it).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import lru_cache

from veritee.eventlog.model import (
    EVENT_TYPES,
    AlgorithmSize,
    Event,
    EventLog,
    EventLogError,
    EventType,
    LogFormat,
    SpecIdEvent,
)
from veritee.tpm.alg import HashAlg

_HEADER1 = struct.Struct("<II20sI")  # TCG_PCR_EVENT up to EventSize
_HEADER2 = struct.Struct("<III")  # TCG_PCR_EVENT2 PCRIndex, EventType, DigestCount
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_SPEC_ID_FIXED = struct.Struct("<16sIBBBBI")

SPEC_ID_EVENT03 = b"Spec ID Event03\x00"
_LEGACY_SPEC_IDS = (b"Spec ID Event00\x00", b"Spec ID Event02\x00")
_NO_ACTION = EventType.EV_NO_ACTION
_FILL = (0, 0xFFFFFFFF)  # a header of all-zero or all-0xFF bytes may start trailing padding
#: No firmware declares more banks than this; a larger count means a corrupt header, not a big event.
_MAX_DIGESTS = 16


def parse(data: bytes | bytearray | memoryview) -> EventLog:
    """Parse a binary firmware event log (``/sys/kernel/security/tpm0/binary_bios_measurements``).

    Raises :class:`EventLogError` (a :class:`~veritee.errors.DecodeError`) naming the byte offset of the problem.
    """
    buf = bytes(data)
    size = len(buf)
    if size == 0:
        raise EventLogError("empty event log", offset=0)
    if size < _HEADER1.size:
        raise EventLogError(f"log too short for a first event header ({size} bytes)", offset=0)
    pcr, typ, digest, event_size = _HEADER1.unpack_from(buf, 0)
    start = _HEADER1.size
    end = start + event_size
    if end > size:
        raise EventLogError(
            f"first event data ({event_size} bytes) runs past the end of the log ({size} bytes)", offset=0
        )
    first_data = buf[start:end]
    notes: list[str] = []
    first = Event(0, 0, pcr, EVENT_TYPES.get(typ, typ), {HashAlg.SHA1: digest}, first_data, start)
    if typ == _NO_ACTION and first_data.startswith(SPEC_ID_EVENT03):
        spec_id = parse_spec_id(first_data, offset=start)
        sizes = _digest_sizes(spec_id, notes, offset=start + _SPEC_ID_FIXED.size)
        algorithms = tuple(alg for alg in (a.alg for a in spec_id.algorithms) if alg is not None)
        events = _parse_agile(buf, end, sizes, first, notes)
        return EventLog(LogFormat.CRYPTO_AGILE, algorithms, events, spec_id, tuple(notes))
    spec_legacy = None
    if typ == _NO_ACTION and first_data[:16] in _LEGACY_SPEC_IDS:
        spec_legacy = parse_spec_id(first_data, offset=start)
    events = _parse_legacy(buf, end, first, notes)
    return EventLog(LogFormat.LEGACY_SHA1, (HashAlg.SHA1,), events, spec_legacy, tuple(notes))


def parse_spec_id(data: bytes, *, offset: int = 0) -> SpecIdEvent:
    """Decode TCG_EfiSpecIDEventStruct (crypto-agile "Spec ID Event03") or the 1.2 "Spec ID Event00/02" struct."""
    if len(data) < _SPEC_ID_FIXED.size - 4:
        raise EventLogError("Spec ID event too short", offset=offset)
    signature = data[:16]
    if signature == SPEC_ID_EVENT03:
        if len(data) < _SPEC_ID_FIXED.size:
            raise EventLogError("Spec ID Event03 too short for its algorithm count", offset=offset)
        _, platform_class, minor, major, errata, uintn, count = _SPEC_ID_FIXED.unpack_from(data, 0)
        pos = _SPEC_ID_FIXED.size
        if count == 0 or pos + 4 * count + 1 > len(data):
            raise EventLogError(f"Spec ID Event03 declares {count} algorithms that do not fit", offset=offset + 24)
        algs = tuple(AlgorithmSize(*struct.unpack_from("<HH", data, pos + 4 * i)) for i in range(count))
        pos += 4 * count
    else:
        # TCG_EfiSpecIdEventStruct of the TCG EFI Platform spec 1.2: no algorithm list, SHA-1 only.
        platform_class, minor, major, errata, uintn = struct.unpack_from("<IBBBB", data, 16)
        algs = (AlgorithmSize(HashAlg.SHA1.value, 20),)
        pos = 24
    if pos >= len(data):
        raise EventLogError("Spec ID event lacks its vendorInfoSize", offset=offset + pos)
    vendor_size = data[pos]
    vendor = data[pos + 1 : pos + 1 + vendor_size]
    if len(vendor) != vendor_size:
        raise EventLogError(f"Spec ID vendorInfo ({vendor_size} bytes) runs past the event", offset=offset + pos)
    return SpecIdEvent(
        signature=signature.rstrip(b"\x00").decode("ascii", "replace"),
        platform_class=platform_class,
        version_major=major,
        version_minor=minor,
        errata=errata,
        uintn_size=uintn,
        algorithms=algs,
        vendor_info=vendor,
    )


def _digest_sizes(spec_id: SpecIdEvent, notes: list[str], *, offset: int) -> dict[int, tuple[HashAlg | None, int]]:
    sizes: dict[int, tuple[HashAlg | None, int]] = {}
    for position, entry in enumerate(spec_id.algorithms):
        alg = entry.alg
        if alg is not None and entry.digest_size != alg.digest_size:
            raise EventLogError(
                f"Spec ID event declares {entry.digest_size}-byte digests for {alg.label} "
                f"(which has {alg.digest_size})",
                offset=offset + 4 * position,
            )
        if alg is None:
            notes.append(
                f"digests of unknown algorithm 0x{entry.alg_id:04x} ({entry.digest_size} bytes) skipped by their "
                "declared size"
            )
        sizes[entry.alg_id] = (alg, entry.digest_size)
    return sizes


@lru_cache(maxsize=16)
def _header_struct(layout: str) -> struct.Struct:
    """The compiled struct of one TCG_PCR_EVENT2 header layout (a log's layout is the same for every event)."""
    return struct.Struct(layout)


def _parse_agile(
    buf: bytes, pos: int, sizes: dict[int, tuple[HashAlg | None, int]], first: Event, notes: list[str]
) -> tuple[Event, ...]:
    events = [first]
    append = events.append
    size = len(buf)
    types = EVENT_TYPES
    # Fast path: nearly every event carries exactly the Spec ID banks in Spec ID order, so one precompiled struct
    # reads its whole header (PCR, type, count, every id and digest, event size) in a single call.
    order = list(sizes.items())
    banks = [alg for _, (alg, _) in order]
    fast: struct.Struct | None = None
    if banks and all(alg is not None for alg in banks):
        fast = _header_struct("<III" + "".join(f"H{digest_size}s" for _, (_, digest_size) in order) + "I")
    fast_size = fast.size if fast is not None else 0
    count_expected = len(order)
    ids_expected = tuple(alg_id for alg_id, _ in order)
    id_slice = slice(3, 3 + 2 * count_expected, 2)
    digest_slice = slice(4, 4 + 2 * count_expected, 2)
    known_banks = [alg for alg in banks if alg is not None]
    bank0, bank1, bank2 = (known_banks + [HashAlg.SHA1] * 3)[:3]  # literal dicts beat dict(zip()) threefold
    index = 1
    if fast is not None and count_expected == 1:
        # One bank (the most common log today): the same fast path with the tuple slicing and branches unrolled.
        unpack = fast.unpack_from
        id0 = ids_expected[0]
        while pos + fast_size <= size:
            pcr, typ, count, alg_id, digest, event_size = unpack(buf, pos)
            if count != 1 or alg_id != id0:
                break
            start = pos
            pos += fast_size
            stop = pos + event_size
            if stop > size:
                raise EventLogError(
                    f"event {index}: event data ({event_size} bytes) runs past the end of the log", offset=pos - 4
                )
            append(Event(index, start, pcr, types.get(typ, typ), {bank0: digest}, buf[pos:stop], pos))
            pos = stop
            index += 1
    while pos < size:
        start = pos
        if fast is not None and pos + fast_size <= size:
            fields = fast.unpack_from(buf, pos)
            if fields[2] == count_expected and fields[id_slice] == ids_expected:
                stop = pos + fast_size + fields[-1]
                if stop > size:
                    raise EventLogError(
                        f"event {index}: event data ({fields[-1]} bytes) runs past the end of the log",
                        offset=pos + fast_size - 4,
                    )
                typ = fields[1]
                if count_expected == 1:
                    digests = {bank0: fields[4]}
                elif count_expected == 2:
                    digests = {bank0: fields[4], bank1: fields[6]}
                elif count_expected == 3:
                    digests = {bank0: fields[4], bank1: fields[6], bank2: fields[8]}
                else:
                    digests = dict(zip(known_banks, fields[digest_slice], strict=True))
                pos += fast_size
                append(Event(index, start, fields[0], types.get(typ, typ), digests, buf[pos:stop], pos))
                pos = stop
                index += 1
                continue
        pos = _parse_agile_event(buf, pos, sizes, index, notes, append)
        if pos < 0:
            break
        index += 1
    return tuple(events)


def _parse_agile_event(
    buf: bytes,
    pos: int,
    sizes: dict[int, tuple[HashAlg | None, int]],
    index: int,
    notes: list[str],
    append: Callable[[Event], None],
) -> int:
    """The general TCG_PCR_EVENT2 reader (any digest count and order); returns the next offset, -1 at padding."""
    size = len(buf)
    start = pos
    if pos + 12 > size:
        _trailing_or_error(buf, start, notes, "truncated event header")
        return -1
    pcr, typ, count = _HEADER2.unpack_from(buf, pos)
    if pcr == typ and typ in _FILL and _is_padding(buf, start):
        _note_padding(buf, start, notes)
        return -1
    if count > _MAX_DIGESTS:
        raise EventLogError(f"event {index} declares {count} digests", offset=start + 8)
    pos += 12
    digests: dict[HashAlg, bytes] = {}
    for _ in range(count):
        if pos + 2 > size:
            raise EventLogError(f"event {index}: truncated digest algorithm id", offset=pos)
        (alg_id,) = _U16.unpack_from(buf, pos)
        known = sizes.get(alg_id)
        if known is None:
            raise EventLogError(
                f"event {index}: digest algorithm 0x{alg_id:04x} is not declared in the Spec ID event", offset=pos
            )
        alg, digest_size = known
        pos += 2
        stop = pos + digest_size
        if stop > size:
            raise EventLogError(f"event {index}: truncated {digest_size}-byte digest", offset=pos)
        if alg is not None:
            digests[alg] = buf[pos:stop]
        pos = stop
    if pos + 4 > size:
        raise EventLogError(f"event {index}: truncated event size", offset=pos)
    event_size: int = _U32.unpack_from(buf, pos)[0]
    pos += 4
    stop = pos + event_size
    if stop > size:
        raise EventLogError(
            f"event {index}: event data ({event_size} bytes) runs past the end of the log", offset=pos - 4
        )
    append(Event(index, start, pcr, EVENT_TYPES.get(typ, typ), digests, buf[pos:stop], pos))
    return stop


def _parse_legacy(buf: bytes, pos: int, first: Event, notes: list[str]) -> tuple[Event, ...]:
    events = [first]
    append = events.append
    size = len(buf)
    unpack = _HEADER1.unpack_from
    header = _HEADER1.size
    types = EVENT_TYPES
    sha1 = HashAlg.SHA1
    index = 1
    while pos < size:
        start = pos
        if pos + header > size:
            _trailing_or_error(buf, start, notes, "truncated event header")
            break
        pcr, typ, digest, event_size = unpack(buf, pos)
        if pcr == typ and typ in _FILL and _is_padding(buf, start):
            _note_padding(buf, start, notes)
            break
        pos += header
        stop = pos + event_size
        if stop > size:
            raise EventLogError(
                f"event {index}: event data ({event_size} bytes) runs past the end of the log", offset=pos - 4
            )
        append(Event(index, start, pcr, types.get(typ, typ), {sha1: digest}, buf[pos:stop], pos))
        pos = stop
        index += 1
    return tuple(events)


def _is_padding(buf: bytes, start: int) -> bool:
    tail = buf[start:]
    return not tail.strip(b"\x00") or not tail.strip(b"\xff")


def _note_padding(buf: bytes, start: int, notes: list[str]) -> None:
    fill = "0x00" if buf[start] == 0 else "0xFF"
    notes.append(f"trailing padding ignored: {len(buf) - start} bytes of {fill} after the last event at offset {start}")


def _trailing_or_error(buf: bytes, start: int, notes: list[str], what: str) -> None:
    if _is_padding(buf, start):
        _note_padding(buf, start, notes)
        return
    raise EventLogError(f"{what}: {len(buf) - start} bytes left after the last event", offset=start)
