"""Strict CBOR (RFC 8949) on top of cbor2's C decoder.

Decoding is strict: definite lengths only, no duplicate map keys, a size and depth limit, exactly one data item (no
trailing bytes), and semantic tags are *not* interpreted (a tag 1 stays ``CBORTag(1, ...)`` instead of becoming a
datetime), so what a signature covered is what the caller sees. Every failure is a :class:`veritee.errors.DecodeError`.

Encoding keeps map insertion order (so decoded content re-encodes byte for byte) and uses preferred serialization
(shortest integer and length heads, definite lengths). ``deterministic=True`` also sorts map keys as RFC 8949 §4.2.1
requires.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, Final

import cbor2
from cbor2 import CBORSimpleValue, CBORTag, undefined

from veritee.errors import DecodeError, EncodeError

__all__ = ["CBORSimpleValue", "CBORTag", "decode", "decode_prefix", "encode", "tag", "undefined"]

DEFAULT_MAX_SIZE: Final = 16 * 1024 * 1024
DEFAULT_MAX_DEPTH: Final = 64

# Tags cbor2 would otherwise turn into Python objects (datetimes, decimals, sets, regexes, ...): keep them raw.
_RAW_TAGS: Final = (0, 1, 4, 5, 21, 22, 23, 24, 25, 28, 29, 30, 32, 35, 36, 37, 100, 256, 258, 259, 260, 261, 262, 263,
                    270, 1004, 55799)  # fmt: skip


def _raw(tag_number: int) -> Callable[[Any, bool], CBORTag]:
    return lambda value, _immutable: CBORTag(tag_number, value)


_SEMANTIC: Final = {n: _raw(n) for n in _RAW_TAGS}


# Decoders for the default depth limit are reused, each with its own input stream (re-initialised in place for each
# input, which CPython's BytesIO supports): building them costs as much as decoding a small item. A decoder is only
# ever used by one caller at a time: it is taken from this free list and given back after a successful decode.
_POOL: list[tuple[cbor2.CBORDecoder, io.BytesIO]] = []
_POOL_MAX: Final = 16
_POOL_KEEP_INPUT: Final = 64 * 1024  # a pooled stream does not hold on to a bigger input than this
_DECODE_ERRORS: Final = (cbor2.CBORDecodeError, RecursionError, ValueError, TypeError, OverflowError, MemoryError)


def _new_decoder(fp: io.BytesIO, max_depth: int) -> cbor2.CBORDecoder:
    return cbor2.CBORDecoder(
        fp,
        allow_indefinite=False,
        allow_duplicate_keys=False,
        semantic_decoders=_SEMANTIC,
        max_depth=max_depth,
    )


def _decode_at(data: bytes, offset: int, max_depth: int) -> tuple[Any, int]:
    """Decode one item of ``data`` starting at ``offset``; return it and the offset just after it."""
    pooled = max_depth == DEFAULT_MAX_DEPTH
    if pooled and _POOL:
        decoder, fp = _POOL.pop()
        fp.__init__(data)  # type: ignore[misc]
    else:
        fp = io.BytesIO(data)
        decoder = _new_decoder(fp, max_depth)
    if offset:
        fp.seek(offset)
    try:
        value = decoder.decode()
    except _DECODE_ERRORS as exc:
        raise DecodeError(f"malformed CBOR: {exc}", offset=fp.tell()) from None  # this decoder is not reused
    end = fp.tell()
    if pooled and len(_POOL) < _POOL_MAX:
        if len(data) > _POOL_KEEP_INPUT:
            fp.__init__()  # type: ignore[misc]
        _POOL.append((decoder, fp))
    return value, end


def decode_prefix(
    data: bytes, *, offset: int = 0, max_size: int = DEFAULT_MAX_SIZE, max_depth: int = DEFAULT_MAX_DEPTH
) -> tuple[Any, int]:
    """Decode one data item starting at ``offset``; return it and the offset just after it."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"CBOR input must be bytes, not {type(data).__name__}")
    if len(data) > max_size:
        raise DecodeError(f"CBOR input of {len(data)} bytes exceeds the limit of {max_size}")
    if offset >= len(data):
        raise DecodeError("CBOR input is empty", offset=offset)
    return _decode_at(bytes(data), offset, max_depth)


def decode(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Decode exactly one CBOR data item; trailing bytes are an error."""
    if type(data) is bytes and 0 < len(data) <= max_size:  # the usual case, without decode_prefix's input checks
        if max_depth == DEFAULT_MAX_DEPTH and _POOL:  # _decode_at's pooled path, inline
            decoder, fp = _POOL.pop()
            fp.__init__(data)  # type: ignore[misc]
            try:
                value = decoder.decode()
            except _DECODE_ERRORS as exc:
                raise DecodeError(f"malformed CBOR: {exc}", offset=fp.tell()) from None  # this decoder is not reused
            end = fp.tell()
            if len(_POOL) < _POOL_MAX:
                if len(data) > _POOL_KEEP_INPUT:
                    fp.__init__()  # type: ignore[misc]
                _POOL.append((decoder, fp))
        else:
            value, end = _decode_at(data, 0, max_depth)
    else:
        value, end = decode_prefix(data, max_size=max_size, max_depth=max_depth)
    if end != len(data):
        raise DecodeError(f"{len(data) - end} trailing bytes after the CBOR data item", offset=end)
    return value


def decode_sequence(data: bytes, *, max_size: int = DEFAULT_MAX_SIZE) -> list[Any]:
    """Decode a CBOR sequence (RFC 8742): zero or more concatenated data items."""
    items: list[Any] = []
    offset = 0
    while offset < len(data):
        item, offset = decode_prefix(data, offset=offset, max_size=max_size)
        items.append(item)
    return items


def _sort_keys(obj: Any) -> Any:
    if isinstance(obj, dict):
        items = [(encode(k), k, _sort_keys(v)) for k, v in obj.items()]
        items.sort(key=lambda t: t[0])
        return {k: v for _, k, v in items}
    if isinstance(obj, list | tuple):
        return [_sort_keys(v) for v in obj]
    if isinstance(obj, CBORTag):
        return CBORTag(obj.tag, _sort_keys(obj.value))
    return obj


def encode(obj: Any, *, deterministic: bool = False) -> bytes:
    """Encode with preferred serialization; ``deterministic`` also sorts map keys (RFC 8949 §4.2.1)."""
    try:
        return cbor2.dumps(_sort_keys(obj) if deterministic else obj)
    except (cbor2.CBOREncodeError, TypeError, ValueError, OverflowError) as exc:
        raise EncodeError(f"cannot encode as CBOR: {exc}") from None


def tag(number: int, value: Any) -> CBORTag:
    return CBORTag(number, value)


def bstr_wrap(obj: Any) -> bytes:
    """The CBOR encoding of ``obj`` itself encoded as a byte string (``bstr .cbor obj``)."""
    return encode(encode(obj))
