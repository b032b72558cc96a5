from __future__ import annotations

import contextlib

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
