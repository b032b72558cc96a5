from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veritee import cbor
from veritee.errors import DecodeError


def test_strict_rejections() -> None:
    with pytest.raises(DecodeError, match="Duplicate"):
        cbor.decode(bytes.fromhex("a201010102"))
    with pytest.raises(DecodeError, match="indefinite"):
        cbor.decode(bytes.fromhex("9f01ff"))
    with pytest.raises(DecodeError, match="trailing") as info:
        cbor.decode(bytes.fromhex("0102"))
    assert info.value.offset == 1
    with pytest.raises(DecodeError, match="empty"):
        cbor.decode(b"")
    with pytest.raises(DecodeError, match="limit"):
        cbor.decode(b"\x40" * 10, max_size=5)
    with pytest.raises(DecodeError):
        cbor.decode(b"\x81" * 100 + b"\x00")  # deeper than the default depth limit


def test_tags_are_not_interpreted() -> None:
    value = cbor.decode(bytes.fromhex("c11a5f5e1000"))
    assert value == cbor.CBORTag(1, 1600000000)
    assert cbor.encode(value) == bytes.fromhex("c11a5f5e1000")


def test_order_preserving_and_deterministic_encoding() -> None:
    assert cbor.encode({"b": 1, "a": 2}) == bytes.fromhex("a2616201616102")
    assert cbor.encode({"b": 1, "a": 2, 10: 0}, deterministic=True) == bytes.fromhex("a30a00616102616201")
    assert cbor.bstr_wrap([1]) == bytes.fromhex("428101")


def test_sequence() -> None:
    assert cbor.decode_sequence(bytes.fromhex("0102")) == [1, 2]


values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64) + 1, 2**64 - 1) | st.binary(max_size=40) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.integers(-50, 50), children, max_size=5),
    max_leaves=20,
)


@given(values)
def test_round_trip(value: object) -> None:
    assert cbor.decode(cbor.encode(value)) == value


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_random_bytes_raise_only_decode_error(data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        cbor.decode(data)


def test_reused_decoders_start_clean_after_errors_and_offsets() -> None:
    # Decoders are pooled: whatever the previous input did (fail half-way, stop at an offset, be large), the next
    # decode sees only its own bytes and still applies every rule.
    for bad in (bytes.fromhex("8201"), bytes.fromhex("a201010102"), bytes.fromhex("9f01ff"), b"\x5a\xff\xff\xff\xff"):
        with pytest.raises(DecodeError):
            cbor.decode(bad)
        assert cbor.decode(bytes.fromhex("820102")) == [1, 2]
    assert cbor.decode_prefix(bytes.fromhex("0102820304"), offset=2) == ([3, 4], 5)
    assert cbor.decode_prefix(bytes.fromhex("01020304"), offset=1) == (2, 2)
    big = cbor.encode([b"\x00" * 100_000, 1])
    assert cbor.decode(big) == [b"\x00" * 100_000, 1]
    assert cbor.decode(b"\x01") == 1
    with pytest.raises(DecodeError, match="trailing") as info:
        cbor.decode(big + b"\x00")
    assert info.value.offset == len(big)
    assert cbor.decode(bytearray(b"\x02")) == 2  # type: ignore[arg-type]
    assert cbor.decode(memoryview(b"\x03")) == 3  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="must be bytes"):
        cbor.decode("text")  # type: ignore[arg-type]


def test_depth_limit_is_exact_with_and_without_pooled_decoders() -> None:
    nested = b"\x81" * 10 + b"\x00"  # ten nested arrays
    assert cbor.decode(nested, max_depth=10) == cbor.decode(nested)
    with pytest.raises(DecodeError):
        cbor.decode(nested, max_depth=9)
    assert cbor.decode(b"\x81" * 64 + b"\x00") is not None  # the default limit (64) still applies exactly
    with pytest.raises(DecodeError):
        cbor.decode(b"\x81" * 65 + b"\x00")


def test_concurrent_decoding_keeps_inputs_apart() -> None:
    inputs = [cbor.encode([i, b"x" * (i % 50), {i: [i] * (i % 7)}]) for i in range(200)]

    def work(offset: int) -> bool:
        return all(cbor.decode(inputs[(j + offset) % 200]) == cbor.decode_sequence(inputs[(j + offset) % 200])[0]
                   for j in range(400))  # fmt: skip

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert all(pool.map(work, range(8)))


@settings(max_examples=300)
@given(values, st.binary(max_size=8))
def test_prefix_and_trailing_bytes_are_accounted_exactly(value: object, tail: bytes) -> None:
    data = cbor.encode(value)
    assert cbor.decode_prefix(data + tail) == (value, len(data))
    if tail:
        with pytest.raises(DecodeError, match="trailing") as info:
            cbor.decode(data + tail)
        assert info.value.offset == len(data)
