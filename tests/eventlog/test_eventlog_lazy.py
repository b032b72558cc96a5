"""The fast paths of the event log package against the plain ones they replace: undecoded signature lists, the
summary's facts decoded on first access, replay of chosen banks, tuple-returning decoders."""

from __future__ import annotations

import dataclasses
import struct
import uuid

import pytest
from eventlog_support import EXPECTED_LOGS, KEYLIME_1153, KEYLIME_SB, SHA1, SHA256, LogBuilder, load, variable_data
from hypothesis import given, settings
from hypothesis import strategies as st

from veritee.eventlog import EventLog, EventLogError, EventType, decode, parse, replay, summarize
from veritee.eventlog.decoded import ascii_text
from veritee.eventlog.decoders import (
    classify_ipl,
    decode_ipl,
    decode_variable,
    decode_variable_parts,
    separator_value,
    variable_facts,
)
from veritee.eventlog.uefi import (
    EFI_CERT_SHA256,
    EFI_CERT_X509,
    EFI_IMAGE_SECURITY_DATABASE,
    Reader,
    SignatureKind,
    SignatureLists,
    guid_le,
    parse_signature_lists,
    parse_variable_data,
    variable_data_fields,
)

ALL_LOGS = [*EXPECTED_LOGS.values(), KEYLIME_SB, KEYLIME_1153]
OWNER = uuid.UUID("77fa9abd-0359-4d32-bd60-28f4e78f784b")


def _list(sig_type: uuid.UUID, entries: list[bytes], *, header: bytes = b"") -> bytes:
    size = len(entries[0]) + 16 if entries else 48
    body = b"".join(OWNER.bytes_le + entry for entry in entries)
    return sig_type.bytes_le + struct.pack("<III", 28 + len(header) + len(body), len(header), size) + header + body


def _reference_signature_lists(data: bytes, base: int = 0) -> list[tuple[uuid.UUID, uuid.UUID, bytes]]:
    """EFI_SIGNATURE_LISTs read field by field, as the UEFI spec lays them out (the slow, obvious way)."""
    out = []
    reader = Reader(data, base)
    while reader.remaining:
        sig_type = uuid.UUID(bytes_le=reader.take(16, "type"))
        list_size, header_size, sig_size = (reader.u32("a"), reader.u32("b"), reader.u32("c"))
        reader.take(header_size, "header")
        for _ in range((list_size - 28 - header_size) // sig_size):
            owner = uuid.UUID(bytes_le=reader.take(16, "owner"))
            out.append((sig_type, owner, reader.take(sig_size - 16, "data")))
    return out


@pytest.mark.parametrize("name", ALL_LOGS)
def test_signature_lists_decode_like_the_spec_layout(name: str) -> None:
    summary = summarize(load(name))
    for db in ("PK", "KEK", "db", "dbx"):
        lists = summary.signature_lists(db)
        if lists is None:
            continue
        expected = _reference_signature_lists(lists.data)
        entries = lists.entries()
        assert [(e.signature_type, e.owner, e.data) for e in entries] == expected
        assert lists.raw_entries() == [owner.bytes_le + data for _, owner, data in expected]
        assert len(lists) == len(expected)
        assert parse_signature_lists(lists.data, lists.base) == entries


def test_signature_list_errors_name_the_field_and_offset() -> None:
    good = _list(EFI_CERT_SHA256, [bytes(32)] * 3)
    for cut, field in ((10, "SignatureType"), (18, "SignatureListSize"), (22, "SignatureHeaderSize"), (27, "Size")):
        with pytest.raises(EventLogError, match=f"EFI_SIGNATURE_LIST.Signature{field.removeprefix('Signature')}"):
            SignatureLists.parse(good[:cut], 100)
    with pytest.raises(EventLogError, match="does not fit its event") as info:
        SignatureLists.parse(good[:-1], 100)
    assert info.value.offset == 116
    ragged = bytearray(good)
    ragged[24:28] = struct.pack("<I", 47)
    with pytest.raises(EventLogError, match="not a whole number of 47-byte") as info:
        SignatureLists.parse(bytes(ragged), 100)
    assert info.value.offset == 124


def test_signature_list_with_a_header_and_mixed_kinds() -> None:
    data = _list(EFI_CERT_X509, [b"\x30\x03abc"], header=b"HDR") + _list(EFI_CERT_SHA256, [bytes(32), b"\x01" * 32])
    lists = SignatureLists.parse(data)
    assert [header.kind for header in lists.lists] == [SignatureKind.X509, SignatureKind.SHA256]
    assert [entry.data for entry in lists.entries()] == [b"\x30\x03abc", bytes(32), b"\x01" * 32]
    assert lists.raw_entries()[0] == OWNER.bytes_le + b"\x30\x03abc"


def test_contains_run_finds_only_aligned_consecutive_entries() -> None:
    entries = [bytes([i]) * 32 for i in range(6)]
    lists = SignatureLists.parse(_list(EFI_CERT_SHA256, entries))
    raw = [OWNER.bytes_le + entry for entry in entries]
    assert lists.contains_run(b"".join(raw), 48)
    assert lists.contains_run(b"".join(raw[2:5]), 48)
    assert not lists.contains_run(b"".join([raw[0], raw[2]]), 48)  # not consecutive
    assert not lists.contains_run(b"".join(raw[1:3])[8:] + b"\x00" * 8, 48)  # not on an entry boundary
    assert not lists.contains_run(raw[0], 40)  # entries of another size
    assert not lists.contains_run(b"", 48)
    # the run's first entry also appears off an entry boundary first: the search goes on to the aligned one
    owner = OWNER.bytes_le
    tricky = [bytes(16) + owner, owner + owner, b"\x05" * 32]
    lists = SignatureLists.parse(_list(EFI_CERT_SHA256, tricky))
    first = owner + tricky[1]
    assert lists.data.find(first, 28) - 28 == 32  # off the boundary (the aligned one is at 48)
    assert lists.contains_run(b"".join(owner + entry for entry in tricky[1:]), 48)
    assert not lists.contains_run(first + owner + b"\x06" * 32, 48)


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_signature_lists_parse_fails_exactly_when_decoding_fails(data: bytes) -> None:
    try:
        expected = _reference_signature_lists(data, 7)
    except EventLogError:
        expected = None
    try:
        lists = SignatureLists.parse(data, 7)
    except EventLogError:
        assert expected is None or not _well_formed(data)
        return
    assert expected is not None
    assert [(e.signature_type, e.owner, e.data) for e in lists.entries()] == expected


def _well_formed(data: bytes) -> bool:
    """Whether every list declares sizes that fit (the reference reader does not check the sizes)."""
    pos = 0
    while pos < len(data):
        if pos + 28 > len(data):
            return False
        list_size, header_size, sig_size = struct.unpack_from("<III", data, pos + 16)
        body = list_size - 28 - header_size
        if list_size < 28 or body < 0 or body > len(data) - pos - 28 - header_size or sig_size < 16 or body % sig_size:
            return False
        pos += list_size
    return True


@pytest.mark.parametrize("name", ALL_LOGS)
def test_lazy_summary_facts_equal_an_eager_decoding(name: str) -> None:
    log = load(name)
    summary = summarize(log)
    # the variables, decoded on access, are the first measurement of each name before the PCR 7 separator
    seen: dict[str, object] = {}
    separator = False
    for event in log.events:
        if event.type == EventType.EV_SEPARATOR and event.pcr == 7:
            separator = True
        if event.type != EventType.EV_EFI_VARIABLE_DRIVER_CONFIG or (event.pcr == 7 and separator):
            continue
        try:
            variable = decode_variable(EventType.EV_EFI_VARIABLE_DRIVER_CONFIG, event.data, event.data_offset)
        except EventLogError:
            continue
        seen.setdefault(variable.name, variable)
    assert summary.variables == seen
    pcr7 = {kept.name for kept in summary.kept_variables if kept.event.pcr == 7}
    for db, entries in (("PK", summary.pk), ("KEK", summary.kek), ("db", summary.db), ("dbx", summary.dbx)):
        decoded = summary.variables.get(db)
        assert entries == (decoded.signatures if decoded is not None and db in pcr7 else None)
    # application digests without device paths, grub commands read on access, digests by PCR
    for pcr in range(16):
        assert summary.application_digests(pcr) == [a.digest() for a in summary.efi_apps if a.pcr == pcr]
    commands = [
        ipl.text
        for event in log.events
        if event.type == EventType.EV_IPL and (ipl := decode_ipl(event.pcr, event.data)).kind.value == "grub_cmd"
    ]
    assert list(summary.grub_commands) == commands
    for alg in log.algorithms:
        flat = [e.digests[alg] for e in log.events if e.type != EventType.EV_NO_ACTION and alg in e.digests]
        assert sorted(d for ds in summary.event_digests[alg].values() for d in ds) == sorted(flat)


def test_notes_of_late_decoded_events_keep_their_place_in_log_order() -> None:
    builder = LogBuilder(banks=[SHA1, SHA256])
    builder.add(7, EventType.EV_EFI_VARIABLE_DRIVER_CONFIG, b"\x01\x02")  # not decodable: noted at once
    builder.add(1, EventType.EV_EFI_VARIABLE_BOOT, variable_data(OWNER, "BootOrder", b"\x01"))  # odd BootOrder
    builder.add(1, EventType.EV_EFI_VARIABLE_BOOT, b"\x00")  # not decodable: noted when decoded
    builder.add(4, EventType.EV_SEPARATOR, b"\x00\x00\x00")
    summary = summarize(parse(builder.build()))
    assert [note.split(" ")[1] for note in summary.notes if note.startswith("event ")] == ["1", "2", "3", "4"]
    assert summary.notes[1].startswith("event 2 BootOrder: BootOrder value not decoded: BootOrder of odd length 1")
    assert summary.notes[2].startswith("event 3 (EV_EFI_VARIABLE_BOOT, PCR1) not decoded: UEFI_VARIABLE_DATA")
    assert summary.boot_order is None and summary.boot_options == {}


@pytest.mark.parametrize("name", ALL_LOGS)
def test_replay_of_chosen_banks(name: str) -> None:
    log = load(name)
    full = replay(log)
    for alg in log.algorithms:
        part = replay(log, banks=(alg,))
        assert part.pcrs == {alg: full.pcrs[alg]} if alg in full.pcrs else part.pcrs == {}
        assert part.notes == full.notes
    assert replay(log, banks=()).pcrs == {}


def test_replay_of_chosen_banks_notes_every_bank_and_applies_the_ebs_workaround() -> None:
    log = load(KEYLIME_SB)
    without_ebs = dataclasses.replace(log, events=tuple(e for e in log.events if not e.data.startswith(b"Exit Boot")))
    quoted = replay(log).pcrs
    full = replay(without_ebs, reference=quoted)
    part = replay(without_ebs, reference={SHA256: quoted[SHA256]}, banks=(SHA256,))
    assert full.injected and part.injected == full.injected
    assert part.pcrs[SHA256] == quoted[SHA256] and part.notes == full.notes


@pytest.mark.parametrize("name", ALL_LOGS)
def test_tuple_decoders_equal_the_dataclass_ones(name: str) -> None:
    for event in load(name).events:
        typ = event.type
        if typ in (EventType.EV_EFI_VARIABLE_DRIVER_CONFIG, EventType.EV_EFI_VARIABLE_AUTHORITY):
            variable = decode_variable(EventType(typ), event.data, event.data_offset)
            parts, lists = decode_variable_parts(EventType(typ), event.data, event.data_offset)
            guid, var_name, value, facts = variable_facts(EventType(typ), event.data, event.data_offset)
            assert (guid, var_name, value, facts[0], facts[1]) == (
                variable.vendor_guid,
                variable.name,
                variable.data,
                variable.notes,
                variable.secure_boot,
            )
            assert dataclasses.replace(parts, signatures=lists.entries() if lists else parts.signatures) == variable
            assert variable_data_fields(event.data) == dataclasses.astuple(parse_variable_data(event.data))
        elif typ == EventType.EV_IPL:
            assert decode_ipl(event.pcr, event.data) == decode_ipl(event.pcr, event.data)
            assert tuple(dataclasses.astuple(decode_ipl(event.pcr, event.data))) == classify_ipl(event.pcr, event.data)
        elif typ == EventType.EV_SEPARATOR:
            assert separator_value(event.data) == decode(event).value  # type: ignore[union-attr]


@given(st.binary(max_size=80), st.integers(0, 2**20))
@settings(max_examples=400, deadline=None)
def test_variable_data_fast_reader_equals_the_field_by_field_one(data: bytes, base: int) -> None:
    def fields_by_reader() -> tuple[object, ...]:
        reader = Reader(data, base)
        guid = reader.guid("UEFI_VARIABLE_DATA.VariableName")
        name_length = reader.u64("UEFI_VARIABLE_DATA.UnicodeNameLength")
        data_length = reader.u64("UEFI_VARIABLE_DATA.VariableDataLength")
        if name_length > 1024:
            raise EventLogError(f"UEFI_VARIABLE_DATA.UnicodeNameLength {name_length} is implausible", offset=base + 16)
        name = reader.take(2 * name_length, "UEFI_VARIABLE_DATA.UnicodeName").decode("utf-16-le", errors="replace")
        value = reader.rest() if data_length > reader.remaining else reader.take(data_length, "VariableData")
        return guid, name.rstrip("\x00"), value, data_length

    try:
        expected: object = fields_by_reader()
    except EventLogError as exc:
        expected = (str(exc), exc.offset)
    try:
        got: object = variable_data_fields(data, base)[:4]
    except EventLogError as exc:
        got = (str(exc), exc.offset)
    assert got == expected


@given(st.binary(max_size=40))
@settings(max_examples=500, deadline=None)
def test_ascii_text_keeps_printable_ascii_with_tabs_and_line_breaks(data: bytes) -> None:
    stripped = data.rstrip(b"\x00")
    if not stripped:
        expected: str | None = ""
    elif not stripped.isascii():
        expected = None
    else:
        text = stripped.decode()
        expected = text if all(c.isprintable() or c in "\t\r\n" for c in text) else None
    assert ascii_text(data) == expected


def test_guid_le_is_the_uefi_byte_order() -> None:
    raw = EFI_IMAGE_SECURITY_DATABASE.bytes_le
    assert guid_le(raw) == EFI_IMAGE_SECURITY_DATABASE == uuid.UUID(bytes_le=raw)
    assert guid_le(raw) is guid_le(bytes(raw))  # memoised


def test_summary_of_a_log_with_a_forged_separator_still_reads_every_fact() -> None:
    log = load(KEYLIME_SB)
    events = list(log.events)
    index = next(i for i, e in enumerate(events) if e.type == EventType.EV_SEPARATOR and e.pcr == 7)
    events[index] = dataclasses.replace(events[index], data=b"x")
    summary = summarize(EventLog(log.format, log.algorithms, tuple(events), log.spec_id))
    assert index in summary.data_mismatches
    assert any(note.startswith(f"event {index} (EV_SEPARATOR, PCR7) not decoded") for note in summary.notes)
    assert summary.dbx is not None and len(summary.dbx) == 371
