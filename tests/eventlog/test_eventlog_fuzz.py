"""Property tests: random bytes, truncations and byte flips of real logs raise only veritee's typed errors."""

from __future__ import annotations

import contextlib

from eventlog_support import EXPECTED_LOGS, KEYLIME_SB, SHA256, LogBuilder, load, log_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from veritee.errors import VeriteeError
from veritee.eventlog import EventLogError, EventType, decode, parse, replay, summarize

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SMALL_LOGS = [EXPECTED_LOGS["sb_cert_eventlog"], EXPECTED_LOGS["Debian10GCE"], EXPECTED_LOGS["ArchLinuxWorkstation"]]


def _exercise(data: bytes) -> None:
    """Everything a consumer does with a log: only EventLogError from parse, only VeriteeError afterwards."""
    try:
        log = parse(data)
    except EventLogError as exc:
        assert exc.offset is not None and 0 <= exc.offset <= len(data)
        return
    replay(log)
    summarize(log)
    for event in log.events:
        with contextlib.suppress(VeriteeError):
            decode(event).describe()


@SETTINGS
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    _exercise(data)


@SETTINGS
@given(st.binary(min_size=1, max_size=400))
def test_random_bytes_after_a_valid_header(tail: bytes) -> None:
    _exercise(LogBuilder(banks=[SHA256]).build() + tail)


@SETTINGS
@given(st.sampled_from(SMALL_LOGS), st.integers(min_value=0, max_value=1 << 30))
def test_truncations(name: str, cut: int) -> None:
    data = log_bytes(name)
    _exercise(data[: cut % len(data)])


@SETTINGS
@given(
    st.sampled_from(SMALL_LOGS),
    st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(1, 255)), min_size=1, max_size=4),
)
def test_byte_flips(name: str, flips: list[tuple[int, int]]) -> None:
    data = bytearray(log_bytes(name))
    for position, mask in flips:
        data[position % len(data)] ^= mask
    _exercise(bytes(data))


@SETTINGS
@given(st.integers(0, 98), st.binary(max_size=200))
def test_event_data_replaced_by_garbage(index: int, garbage: bytes) -> None:
    """Decoders get arbitrary data under every real event type (the parser keeps whatever the firmware wrote)."""
    log = load(KEYLIME_SB)
    event = log.events[index]
    for typ in (event.type, *list(EventType)[::5]):
        forged = type(event)(event.index, event.offset, event.pcr, typ, event.digests, garbage, event.data_offset)
        with contextlib.suppress(VeriteeError):
            decode(forged).describe()


EVENT_TYPES = st.one_of(st.sampled_from(list(EventType)), st.integers(0, 0xFFFFFFFF))


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 30), EVENT_TYPES, st.binary(max_size=120)), max_size=12))
def test_well_formed_logs_with_arbitrary_event_data(events: list[tuple[int, int, bytes]]) -> None:
    builder = LogBuilder()
    for pcr, typ, data in events:
        builder.add(pcr, typ, data)
    log = parse(builder.build())
    assert len(log.events) == len(events) + 1
    replay(log)
    summary = summarize(log)
    assert set(summary.data_mismatches) <= {event.index for event in log.events}
    _exercise(builder.build())
