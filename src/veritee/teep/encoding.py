"""Encoding TEEP messages by concatenating the encodings of their parts, and memos for deeply immutable values.

A definite-length CBOR array or map is its head followed by the encodings of its items, so a message is encoded as
the head of its array, the type, the options map (head, then each label and value) and the positional items. Each part
is exactly what :func:`veritee.cbor.encode` would write for it (preferred serialization), which the tests check against
encoding the whole ``to_cbor()`` value at once.

The offers a TAM sends in every QueryRequest (cipher suites, SUIT COSE profiles) are usually the same tuple objects
each time. :class:`IdentityMemo` remembers, per object, that it was validated and what it encodes to. It is keyed by
identity and keeps the object alive (so its ``id`` cannot be reused by another object), and it only takes values made
of immutable parts all the way down, so what it remembers cannot go stale.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from veritee import cbor
from veritee.teep.codes import CipherSuite

__all__ = ["PROFILE_OFFERS", "SUITE_OFFERS", "IdentityMemo", "array_head", "encode_item", "head", "map_head", "uint"]


def head(major: int, n: int) -> bytes:
    """A CBOR initial byte plus argument in preferred (shortest) form."""
    mt = major << 5
    if n < 24:
        return bytes((mt | n,))
    if n < 0x100:
        return bytes((mt | 24, n))
    if n < 0x10000:
        return bytes((mt | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((mt | 26,)) + n.to_bytes(4, "big")
    return bytes((mt | 27,)) + n.to_bytes(8, "big")


_SMALL_UINTS: Final = tuple(head(0, n) for n in range(256))
_ARRAY_HEADS: Final = tuple(head(4, n) for n in range(24))
_MAP_HEADS: Final = tuple(head(5, n) for n in range(24))
_BSTR_HEADS: Final = tuple(head(2, n) for n in range(256))


def array_head(n: int) -> bytes:
    return _ARRAY_HEADS[n] if n < 24 else head(4, n)


def map_head(n: int) -> bytes:
    return _MAP_HEADS[n] if n < 24 else head(5, n)


def uint(n: int) -> bytes:
    """``cbor.encode(n)`` for an integer (option labels, message types, bitmaps), small ones from a table."""
    return _SMALL_UINTS[n] if 0 <= n < 256 else cbor.encode(n)


def _bstr(value: bytes) -> bytes:
    n = len(value)
    return (_BSTR_HEADS[n] if n < 256 else head(2, n)) + value


def encode_item(value: Any) -> bytes:
    """``cbor.encode(value)``, with byte strings and arrays of them (the bulk of most messages) framed directly."""
    kind = type(value)
    if kind is bytes:
        return _bstr(value)
    if kind is list and value:
        for item in value:
            if type(item) is not bytes:
                return cbor.encode(value)
        return array_head(len(value)) + b"".join(map(_bstr, value))
    return cbor.encode(value)


class IdentityMemo:
    """The encoding of values already validated, keyed by identity; only deeply immutable values are taken."""

    __slots__ = ("_entries", "_immutable", "_limit")

    def __init__(self, immutable: Callable[[Any], bool], limit: int = 64) -> None:
        self._entries: dict[int, tuple[Any, bytes]] = {}
        self._immutable = immutable
        self._limit = limit

    def get(self, value: Any) -> bytes | None:
        """The encoding of ``value`` if this very object was remembered, else ``None``."""
        entry = self._entries.get(id(value))
        return entry[1] if entry is not None and entry[0] is value else None

    def knows(self, value: Any) -> bool:
        entry = self._entries.get(id(value))
        return entry is not None and entry[0] is value

    def remember(self, value: Any, encode: Callable[[], bytes]) -> None:
        """Record a value that has just passed validation (if it is deeply immutable; a full memo starts over)."""
        if self._immutable(value):
            if len(self._entries) >= self._limit:
                self._entries.clear()
            self._entries[id(value)] = (value, encode())


_INT: Final = frozenset({int})


def _int_tuple(value: Any) -> bool:
    return type(value) is tuple and _INT.issuperset(map(type, value))


def _immutable_suites(value: Any) -> bool:
    """A tuple of CipherSuite whose operations are tuples of ints (a frozen dataclass holding no mutable part)."""
    if type(value) is not tuple:
        return False
    for suite in value:
        if type(suite) is not CipherSuite or type(suite.operations) is not tuple:
            return False
        for op in suite.operations:
            if not _int_tuple(op):
                return False
    return True


def _immutable_profiles(value: Any) -> bool:
    return type(value) is tuple and all(map(_int_tuple, value))


SUITE_OFFERS: Final = IdentityMemo(_immutable_suites)
"""Tuples of cipher suites that passed ``supported-teep-cipher-suites`` validation, with their encoding."""
PROFILE_OFFERS: Final = IdentityMemo(_immutable_profiles)
"""Tuples of SUIT COSE profiles that passed ``supported-suit-cose-profiles`` validation, with their encoding."""
