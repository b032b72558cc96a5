"""Reading the measurement logs: the IMA list from a line offset on, complete lines only, remembered position."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veritee.errors import DeviceError
from veritee.service.node_logs import ImaLogReader, read_event_log


def _lines(n: int, start: int = 0) -> str:
    return "".join(f"10 {i:040x} ima-ng sha256:{i:064x} /bin/f{i}\n" for i in range(start, start + n))


def test_lines_from_offset(tmp_path: Path) -> None:
    path = tmp_path / "ima"
    path.write_text(_lines(5))
    reader = ImaLogReader(path)
    first = reader.lines_from(0)
    assert first.text == _lines(5) and first.count == 5 and first.total == 5
    assert reader.lines_from(3).text == _lines(2, 3)
    assert reader.lines_from(5).text == "" and reader.lines_from(5).count == 0
    # the list grows: only the new lines, read from the remembered position
    with path.open("a") as f:
        f.write(_lines(2, 5))
    grown = reader.lines_from(5)
    assert grown.text == _lines(2, 5) and grown.offset == 5 and grown.total == 7
    # asking for an earlier offset still works (read from the start)
    assert reader.lines_from(1).text == _lines(6, 1)


def test_partial_last_line_waits_for_the_next_round(tmp_path: Path) -> None:
    path = tmp_path / "ima"
    text = _lines(3)
    path.write_text(text + "10 abc")  # the kernel is still writing the fourth line
    reader = ImaLogReader(path)
    assert reader.lines_from(0).text == text
    assert reader.lines_from(3).text == ""
    path.write_text(text + _lines(1, 3))
    assert reader.lines_from(3).text == _lines(1, 3)


def test_replaced_list_is_read_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "ima"
    path.write_text(_lines(4))
    reader = ImaLogReader(path)
    assert reader.lines_from(4).text == ""
    path.write_text(_lines(6, 100))  # rebooted: another list, longer than the remembered position
    assert reader.lines_from(4).text == _lines(2, 104)
    path.write_text(_lines(2, 200))  # shorter than the offset asked for
    short = reader.lines_from(4)
    assert short.text == "" and short.total == 2


def test_missing_files(tmp_path: Path) -> None:
    reader = ImaLogReader(tmp_path / "absent")
    assert reader.lines_from(0).text == ""
    assert ImaLogReader(None).lines_from(7).offset == 7
    with pytest.raises(DeviceError):
        ImaLogReader(tmp_path).lines_from(0)  # a directory
    with pytest.raises(DeviceError):
        reader.lines_from(-1)
    assert read_event_log(None) is None
    assert read_event_log(tmp_path / "absent") is None
    (tmp_path / "log").write_bytes(b"\x00\x01")
    assert read_event_log(tmp_path / "log") == b"\x00\x01"
    with pytest.raises(DeviceError):
        read_event_log(tmp_path)


def test_non_utf8_paths_survive(tmp_path: Path) -> None:
    path = tmp_path / "ima"
    raw = b"10 " + b"0" * 40 + b" ima-ng sha1:" + b"0" * 40 + b" /bin/\xff\xfe\n"
    path.write_bytes(raw)
    text = ImaLogReader(path).lines_from(0).text
    assert text.encode("utf-8", "surrogateescape") == raw


@settings(max_examples=100, deadline=None)
@given(
    chunks=st.lists(st.integers(0, 6), min_size=1, max_size=6),
    offsets=st.lists(st.integers(0, 30), min_size=1, max_size=8),
)
def test_any_growth_and_offsets_match_a_plain_read(tmp_path_factory: pytest.TempPathFactory, chunks: list[int],
                                                   offsets: list[int]) -> None:  # fmt: skip
    path = tmp_path_factory.mktemp("ima") / "list"
    path.write_text("")
    reader = ImaLogReader(path)
    written = 0
    for grow, offset in zip(chunks, offsets * len(chunks), strict=False):
        with path.open("a") as f:
            f.write(_lines(grow, written))
        written += grow
        got = reader.lines_from(offset)
        assert got.text == "".join(path.read_text().splitlines(keepends=True)[offset:])
        assert got.count == max(0, written - offset)
