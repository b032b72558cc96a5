"""Binary parsing: both formats on real logs, firmware oddities accepted, malformed logs rejected at an offset."""

from __future__ import annotations

import struct

import pytest
from eventlog_support import (
    EXPECTED_LOGS,
    KEYLIME_1153,
    KEYLIME_SB,
    SHA1,
    SHA256,
    SHA384,
    LogBuilder,
    load,
    log_bytes,
    pcr_event,
    pcr_event2,
    spec_id_data,
)

from veritee.errors import DecodeError
from veritee.eventlog import EventLogError, EventType, LogFormat, parse

ALL_LOGS = sorted(set(EXPECTED_LOGS.values()) | {KEYLIME_SB, KEYLIME_1153})


@pytest.mark.parametrize(
    ("name", "fmt", "banks", "count"),
    [
        ("gotpmtools_rhel8-gce-secureboot.bin", LogFormat.CRYPTO_AGILE, (SHA1, SHA256, SHA384), 83),
        ("gotpmtools_gdc-host-baremetal.bin", LogFormat.CRYPTO_AGILE, (SHA256,), 159),
        ("gotpmtools_ubuntu2404-gce-sevsnp-nosb.bin", LogFormat.CRYPTO_AGILE, (SHA1, SHA256, SHA384), 117),
        ("gotpmtools_debian10-gce-legacy-sha1.bin", LogFormat.LEGACY_SHA1, (SHA1,), 25),
        ("goattestation_option_rom_eventlog.bin", LogFormat.LEGACY_SHA1, (SHA1,), 61),
        ("goattestation_sb_cert_eventlog.bin", LogFormat.CRYPTO_AGILE, (SHA1, SHA256, SHA384), 15),
        (KEYLIME_SB, LogFormat.CRYPTO_AGILE, (SHA256,), 99),
    ],
)
def test_real_log_formats(name: str, fmt: LogFormat, banks: tuple[object, ...], count: int) -> None:
    log = load(name)
    assert log.format is fmt
    assert log.algorithms == banks
    assert len(log.events) == len(log) == count
    assert log.notes == ()


@pytest.mark.parametrize("name", ALL_LOGS)
def test_offsets_point_into_the_log(name: str) -> None:
    data = log_bytes(name)
    log = load(name)
    for position, event in enumerate(log):
        assert event.index == position
        assert data[event.data_offset : event.data_offset + len(event.data)] == event.data
        assert struct.unpack_from("<I", data, event.offset)[0] == event.pcr
        for digest in event.digests.values():
            assert digest in data[event.offset : event.data_offset]
    last = log.events[-1]
    assert last.data_offset + len(last.data) == len(data)


def test_spec_id_event() -> None:
    log = load("gotpmtools_rhel8-gce-secureboot.bin")
    spec = log.spec_id
    assert spec is not None
    assert spec.signature == "Spec ID Event03"
    assert (spec.version_major, spec.version_minor, spec.errata, spec.uintn_size) == (2, 0, 0, 2)
    assert [(a.alg_id, a.digest_size, a.alg) for a in spec.algorithms] == [
        (0x0004, 20, SHA1),
        (0x000B, 32, SHA256),
        (0x000C, 48, SHA384),
    ]
    first = log.events[0]
    assert first.type is EventType.EV_NO_ACTION and first.digests == {SHA1: bytes(20)}
    gdc_spec = load("gotpmtools_gdc-host-baremetal.bin").spec_id
    assert gdc_spec is not None and gdc_spec.platform_class == 1  # a server platform
    assert load("gotpmtools_debian10-gce-legacy-sha1.bin").spec_id is None


def test_event_types_are_enums_and_unknown_codes_stay_ints() -> None:
    builder = LogBuilder(banks=[SHA256]).add(3, 0x7777, b"vendor").add(4, EventType.EV_IPL, b"x")
    log = parse(builder.build())
    assert log.events[1].type == 0x7777 and not isinstance(log.events[1].type, EventType)
    assert log.events[1].type_name == "EV_UNKNOWN_0x00007777"
    assert log.events[2].type is EventType.EV_IPL
    assert {int(t) for t in EventType} >= {0x0, 0x3, 0x4, 0xD, 0x13, 0x80000001, 0x800000E0, 0x800000E4}


def test_trailing_zero_padding_is_accepted_and_noted() -> None:
    data = LogBuilder(banks=[SHA256]).add(0, EventType.EV_S_CRTM_VERSION, b"v").build()
    log = parse(data + bytes(300))
    assert len(log.events) == 2
    assert log.notes == (f"trailing padding ignored: 300 bytes of 0x00 after the last event at offset {len(data)}",)
    assert len(parse(data + bytes(5)).events) == 2  # shorter than an event header
    ff_log = parse(data + b"\xff" * 40)
    assert "0xFF" in ff_log.notes[0]


def test_legacy_trailing_padding() -> None:
    data = pcr_event(0, EventType.EV_S_CRTM_VERSION, SHA1.digest(b"v"), b"v") + pcr_event(
        4, EventType.EV_SEPARATOR, SHA1.digest(bytes(4)), bytes(4)
    )
    log = parse(data + bytes(100))
    assert log.format is LogFormat.LEGACY_SHA1 and len(log.events) == 2 and log.notes


def test_zero_length_event_data() -> None:
    log = parse(LogBuilder(banks=[SHA256]).add(1, EventType.EV_PLATFORM_CONFIG_FLAGS, b"").build())
    assert log.events[1].data == b""
    assert log.events[1].digests[SHA256] == SHA256.digest(b"")


def test_unknown_algorithms_are_skipped_by_their_declared_size() -> None:
    builder = LogBuilder(banks=[SHA256], extra_algs=[(0x0027, 32)])  # SHA3-256: unknown to veritee
    builder.add(4, EventType.EV_SEPARATOR, bytes(4))
    log = parse(builder.build())
    assert log.algorithms == (SHA256,)
    assert log.events[1].digests == {SHA256: SHA256.digest(bytes(4))}
    assert log.events[1].data == bytes(4)
    assert log.notes == ("digests of unknown algorithm 0x0027 (32 bytes) skipped by their declared size",)


def test_events_with_fewer_or_reordered_digests_use_the_general_reader() -> None:
    header = pcr_event(0, 3, bytes(20), spec_id_data([(4, 20), (11, 32)]))
    swapped = pcr_event2(2, EventType.EV_ACTION, [(11, b"\x02" * 32), (4, b"\x01" * 20)], b"ab")
    single = pcr_event2(3, EventType.EV_ACTION, [(11, b"\x03" * 32)], b"")
    log = parse(header + swapped + single)
    assert log.events[1].digests == {SHA256: b"\x02" * 32, SHA1: b"\x01" * 20} and log.events[1].data == b"ab"
    assert log.events[2].digests == {SHA256: b"\x03" * 32}


def test_legacy_spec_id_event00_keeps_the_sha1_layout() -> None:
    spec = b"Spec ID Event00\x00" + struct.pack("<IBBBB", 0, 2, 1, 0, 2) + b"\x00"
    data = pcr_event(0, 3, bytes(20), spec) + pcr_event(0, 8, SHA1.digest(b"v"), b"v")
    log = parse(data)
    assert log.format is LogFormat.LEGACY_SHA1
    assert log.spec_id is not None and log.spec_id.signature == "Spec ID Event00"
    assert len(log.events) == 2 and log.events[1].digests == {SHA1: SHA1.digest(b"v")}


@pytest.mark.parametrize(
    ("data", "offset", "message"),
    [
        (b"", 0, "empty event log"),
        (bytes(10), 0, "too short"),
        (pcr_event(0, 3, bytes(20), b"Spec ID Event03\x00")[:-3], 0, "runs past the end"),
        (pcr_event(0, 3, bytes(20), b"Spec ID Event03\x00" + bytes(10)), 32, "Spec ID Event03 too short"),
        (pcr_event(0, 3, bytes(20), spec_id_data([(11, 20)])), 60, "declares 20-byte digests for sha256"),
        (pcr_event(0, 3, bytes(20), spec_id_data([])), 56, "declares 0 algorithms"),
    ],
)
def test_malformed_headers(data: bytes, offset: int, message: str) -> None:
    with pytest.raises(EventLogError, match=message) as info:
        parse(data)
    assert info.value.offset == offset
    assert isinstance(info.value, DecodeError) and isinstance(info.value, ValueError)
    assert f"(at offset {offset})" in str(info.value)


def _agile(*events: bytes) -> tuple[bytes, int]:
    header = pcr_event(0, 3, bytes(20), spec_id_data([(11, 32)]))
    return header + b"".join(events), len(header)


def test_undeclared_digest_algorithm_is_rejected() -> None:
    data, start = _agile(pcr_event2(1, 5, [(0x0004, bytes(20))], b"x"))
    with pytest.raises(EventLogError, match="0x0004 is not declared") as info:
        parse(data)
    assert info.value.offset == start + 12


def test_truncated_events_are_rejected_at_their_offset() -> None:
    data, start = _agile(pcr_event2(1, 5, [(11, bytes(32))], b"hello"))
    with pytest.raises(EventLogError, match="runs past the end") as info:
        parse(data[:-1])
    assert info.value.offset == start + 12 + 34
    with pytest.raises(EventLogError, match="truncated 32-byte digest") as info:
        parse(data[: start + 20])
    assert info.value.offset == start + 14
    with pytest.raises(EventLogError, match="truncated event header") as info:
        parse(data + b"\x01\x02\x03")
    assert info.value.offset == len(data)
    with pytest.raises(EventLogError, match="truncated event size"):
        parse(data[: start + 12 + 34 + 2])


def test_absurd_digest_counts_are_rejected() -> None:
    data, start = _agile(struct.pack("<III", 1, 5, 1000))
    with pytest.raises(EventLogError, match="declares 1000 digests") as info:
        parse(data)
    assert info.value.offset == start + 8


def test_legacy_event_running_past_the_end() -> None:
    data = pcr_event(0, 8, bytes(20), b"v") + pcr_event(1, 5, bytes(20), b"abcdef")[:-2]
    with pytest.raises(EventLogError, match="event 1: event data \\(6 bytes\\) runs past the end") as info:
        parse(data)
    assert info.value.offset == 33 + 28


def test_memoryview_and_bytearray_input() -> None:
    data = log_bytes(KEYLIME_SB)
    assert len(parse(bytearray(data)).events) == len(parse(memoryview(data)).events) == 99
