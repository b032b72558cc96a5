"""Big-endian TPM 2.0 marshalling: a bounds-checked reader and a writer.

Every read checks the remaining length first, so a malformed buffer raises :class:`DecodeError` with the offset of
the field that could not be read; ``struct.error`` and ``IndexError`` never escape.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Mapping
from enum import IntEnum
from typing import TypeVar

from veritee.errors import DecodeError, EncodeError
from veritee.tpm.errors import UnknownAlgorithmError

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

E = TypeVar("E", bound=IntEnum)


def to_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """The input as immutable bytes (one copy at most)."""
    return data if type(data) is bytes else bytes(data)


class Reader:
    """Reads TPM fields from ``data[pos:end]``; offsets in errors are absolute positions in ``data``."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def _need(self, size: int, what: str) -> int:
        start = self.pos
        if start + size > self.end:
            raise DecodeError(f"truncated {what}: needs {size} bytes, {self.end - start} left", offset=start)
        self.pos = start + size
        return start

    def u8(self, what: str) -> int:
        return int(_U8.unpack_from(self.data, self._need(1, what))[0])

    def u16(self, what: str) -> int:
        return int(_U16.unpack_from(self.data, self._need(2, what))[0])

    def u32(self, what: str) -> int:
        return int(_U32.unpack_from(self.data, self._need(4, what))[0])

    def u64(self, what: str) -> int:
        return int(_U64.unpack_from(self.data, self._need(8, what))[0])

    def yes_no(self, what: str) -> bool:
        """TPMI_YES_NO: one byte, 0 or 1."""
        offset = self.pos
        value = self.u8(what)
        if value > 1:
            raise DecodeError(f"{what} must be 0 or 1, not {value}", offset=offset)
        return value == 1

    def raw(self, size: int, what: str) -> bytes:
        start = self._need(size, what)
        return self.data[start : start + size]

    def tpm2b(self, what: str, max_size: int) -> bytes:
        """A TPM2B_*: 2-byte size then that many bytes, at most ``max_size``."""
        start = self.pos
        body = start + 2
        if body > self.end:
            raise DecodeError(f"truncated {what} size: needs 2 bytes, {self.end - start} left", offset=start)
        size = _U16.unpack_from(self.data, start)[0]
        if size > max_size:
            raise DecodeError(f"{what} size {size} exceeds the maximum {max_size}", offset=start)
        stop = body + size
        if stop > self.end:
            raise DecodeError(f"truncated {what}: needs {size} bytes, {self.end - body} left", offset=body)
        self.pos = stop
        return self.data[body:stop]

    def enum(self, cls: type[E], lookup: Mapping[int, E], what: str, allowed: Collection[E] | None = None) -> E:
        """A 2-byte value that must be a member of ``cls`` (and of ``allowed`` when given)."""
        offset = self.pos
        value = self.u16(what)
        member = lookup.get(value)
        if member is None or (allowed is not None and member not in allowed):
            shown = member.name if member is not None else f"0x{value:04x}"
            raise UnknownAlgorithmError(f"{what} {shown} is not a valid {cls.__name__} here", offset=offset)
        return member

    def finish(self, what: str) -> None:
        """Require the reader to have consumed everything up to ``end``."""
        if self.pos != self.end:
            raise DecodeError(f"{self.end - self.pos} trailing bytes after {what}", offset=self.pos)


def lookup_table(cls: type[E]) -> dict[int, E]:
    """value -> member, for fast enum decoding."""
    return {member.value: member for member in cls}


class Writer:
    """Accumulates big-endian TPM fields."""

    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def u8(self, value: int) -> None:
        self.parts.append(_pack(_U8, value, "u8"))

    def u16(self, value: int) -> None:
        self.parts.append(_pack(_U16, value, "u16"))

    def u32(self, value: int) -> None:
        self.parts.append(_pack(_U32, value, "u32"))

    def u64(self, value: int) -> None:
        self.parts.append(_pack(_U64, value, "u64"))

    def raw(self, data: bytes) -> None:
        self.parts.append(bytes(data))

    def tpm2b(self, data: bytes, max_size: int, what: str) -> None:
        if len(data) > max_size:
            raise EncodeError(f"{what} is {len(data)} bytes, more than the maximum {max_size}")
        self.parts.append(_U16.pack(len(data)))
        self.parts.append(bytes(data))

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


def _pack(fmt: struct.Struct, value: int, what: str) -> bytes:
    try:
        return fmt.pack(value)
    except struct.error as exc:
        raise EncodeError(f"value {value} does not fit a {what}") from exc
