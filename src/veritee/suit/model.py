"""The SUIT data model: digests, component identifiers, parameters and command sequences (manifest-37 §8).

Everything here is immutable. Command sequences keep their raw bytes and the byte offset of every command inside the
section they belong to, so a SUIT_Report can name the exact command that failed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeGuard

from veritee import cbor
from veritee.errors import DecodeError, UnsupportedAlgorithmError, ValidationError
from veritee.suit.labels import (
    Command,
    DigestAlgorithm,
    Parameter,
    ReportingPolicy,
)

__all__ = [
    "CommandEntry",
    "CommandSequence",
    "ComponentId",
    "IndexArg",
    "ParameterValue",
    "Parameters",
    "SuitDigest",
    "component_id_from_cbor",
    "component_id_text",
    "is_array",
    "is_map",
    "parameters_to_cbor",
    "parse_parameters",
    "parse_sequence",
]

ComponentId: TypeAlias = tuple[bytes, ...]
ParameterValue: TypeAlias = "bytes | int | bool | str | SuitDigest | cbor.CBORTag"
Parameters: TypeAlias = Mapping[int, ParameterValue]
IndexArg: TypeAlias = "int | bool | tuple[int, ...]"

_MAX_COMMANDS = 4096


def is_array(value: object) -> TypeGuard[list[Any] | tuple[Any, ...]]:
    return isinstance(value, list | tuple)


def is_map(value: object) -> TypeGuard[Mapping[Any, Any]]:
    return isinstance(value, Mapping)


def is_uint(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def component_id_from_cbor(value: object, what: str = "component identifier") -> ComponentId:
    """A SUIT_Component_Identifier: an array of byte strings."""
    if not is_array(value) or not all(isinstance(part, bytes) for part in value):
        raise ValidationError(f"{what} must be an array of byte strings")
    return tuple(value)


def component_id_text(component_id: ComponentId) -> str:
    """A readable form: printable parts as text, others as hex (``['TEEP-Device', 'SecureFS', h'8d82...']``)."""
    parts = []
    for part in component_id:
        if part and all(0x20 <= b < 0x7F for b in part):
            parts.append(repr(part.decode("ascii")))
        else:
            parts.append(f"h'{part.hex()}'")
    return "[" + ", ".join(parts) + "]"


# --- digests --------------------------------------------------------------------------------------------------------
_DIGEST_SIZE = {
    DigestAlgorithm.SHA256: 32,
    DigestAlgorithm.SHAKE128: 32,
    DigestAlgorithm.SHA384: 48,
    DigestAlgorithm.SHA512: 64,
    DigestAlgorithm.SHAKE256: 64,
}


def _hash(algorithm: DigestAlgorithm, data: bytes) -> bytes:
    if algorithm is DigestAlgorithm.SHA256:
        return hashlib.sha256(data).digest()
    if algorithm is DigestAlgorithm.SHA384:
        return hashlib.sha384(data).digest()
    if algorithm is DigestAlgorithm.SHA512:
        return hashlib.sha512(data).digest()
    if algorithm is DigestAlgorithm.SHAKE128:
        return hashlib.shake_128(data).digest(32)
    return hashlib.shake_256(data).digest(64)


@dataclass(frozen=True, slots=True)
class SuitDigest:
    """SUIT_Digest = [algorithm-id, digest-bytes]."""

    algorithm: DigestAlgorithm
    value: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.algorithm, DigestAlgorithm):
            raise UnsupportedAlgorithmError(f"unsupported SUIT digest algorithm {self.algorithm!r}")
        if len(self.value) != _DIGEST_SIZE[self.algorithm]:
            raise ValidationError(
                f"a {self.algorithm.name} digest has {_DIGEST_SIZE[self.algorithm]} bytes, not {len(self.value)}"
            )

    @classmethod
    def compute(cls, data: bytes, algorithm: DigestAlgorithm = DigestAlgorithm.SHA256) -> SuitDigest:
        return cls(algorithm, _hash(algorithm, data))

    @classmethod
    def from_cbor(cls, value: object) -> SuitDigest:
        if not is_array(value) or len(value) != 2:
            raise ValidationError("a SUIT_Digest must be an array [algorithm-id, digest-bytes]")
        alg, digest = value
        if not isinstance(alg, int) or isinstance(alg, bool):
            raise ValidationError("SUIT_Digest algorithm-id must be an integer")
        if not isinstance(digest, bytes):
            raise ValidationError("SUIT_Digest digest-bytes must be a byte string")
        try:
            algorithm = DigestAlgorithm(alg)
        except ValueError:
            raise UnsupportedAlgorithmError(f"unsupported SUIT digest algorithm {alg}") from None
        return cls(algorithm, digest)

    @classmethod
    def decode(cls, data: bytes) -> SuitDigest:
        return cls.from_cbor(cbor.decode(data))

    def to_cbor(self) -> list[Any]:
        return [int(self.algorithm), self.value]

    def encode(self) -> bytes:
        return cbor.encode(self.to_cbor())

    def of(self, data: bytes) -> SuitDigest:
        """The digest of ``data`` with this digest's algorithm."""
        return SuitDigest.compute(data, self.algorithm)

    def matches(self, data: bytes) -> bool:
        """Constant-time comparison of this digest with the digest of ``data``."""
        return hmac.compare_digest(self.value, _hash(self.algorithm, data))

    def __str__(self) -> str:
        return f"{self.algorithm.name.lower()}:{self.value.hex()}"


# --- parameters -----------------------------------------------------------------------------------------------------
_CUSTOM_LIMIT = -256
_UUID_PARAMS = (Parameter.CLASS_IDENTIFIER, Parameter.DEVICE_IDENTIFIER)
_UINT_PARAMS = (Parameter.COMPONENT_SLOT, Parameter.IMAGE_SIZE, Parameter.SOURCE_COMPONENT)
_BOOL_PARAMS = (Parameter.STRICT_ORDER, Parameter.SOFT_FAILURE)
_BYTES_PARAMS = (Parameter.CONTENT, Parameter.INVOKE_ARGS, Parameter.ENCRYPTION_INFO)
CBOR_PEN_TAG = 112


def _parameter_value(label: int, value: object) -> ParameterValue:
    name = f"parameter {label}"
    if label == Parameter.VENDOR_IDENTIFIER:
        if isinstance(value, bytes) and len(value) == 16:
            return value
        if isinstance(value, cbor.CBORTag) and value.tag == CBOR_PEN_TAG and isinstance(value.value, bytes):
            return value
        raise ValidationError("vendor-identifier must be a 16-byte UUID or a CBOR PEN (tag 112)")
    if label in _UUID_PARAMS:
        if not isinstance(value, bytes) or len(value) != 16:
            raise ValidationError(f"{Parameter(label).name.lower()} must be a 16-byte UUID")
        return value
    if label == Parameter.IMAGE_DIGEST:
        if not isinstance(value, bytes):
            raise ValidationError("image-digest must be a bstr-wrapped SUIT_Digest")
        return SuitDigest.decode(value)
    if label in _UINT_PARAMS:
        if not is_uint(value):
            raise ValidationError(f"{Parameter(label).name.lower()} must be an unsigned integer")
        return value
    if label in _BOOL_PARAMS:
        if not isinstance(value, bool):
            raise ValidationError(f"{Parameter(label).name.lower()} must be a boolean")
        return value
    if label in _BYTES_PARAMS:
        if not isinstance(value, bytes):
            raise ValidationError(f"{Parameter(label).name.lower()} must be a byte string")
        return value
    if label == Parameter.URI:
        if not isinstance(value, str):
            raise ValidationError("uri must be a text string")
        return value
    if isinstance(value, bytes | str | int):  # custom (< -256) and parameters of extensions: kept as they are
        return value
    raise ValidationError(f"{name} has an unsupported value type {type(value).__name__}")


def parse_parameters(value: object) -> dict[int, ParameterValue]:
    """Decode a SUIT_Parameters map ``{+ label => value}``; values of known labels are type-checked."""
    if not is_map(value) or not value:
        raise ValidationError("parameters must be a non-empty map")
    result: dict[int, ParameterValue] = {}
    for label, item in value.items():
        if not isinstance(label, int) or isinstance(label, bool):
            raise ValidationError(f"parameter label {label!r} is not an integer")
        result[label] = _parameter_value(label, item)
    return result


def parameters_to_cbor(params: Parameters) -> dict[int, Any]:
    """The CBOR form of a parameter map (digests are bstr-wrapped again)."""
    return {k: (v.encode() if isinstance(v, SuitDigest) else v) for k, v in params.items()}


def is_custom_label(label: int) -> bool:
    return label < _CUSTOM_LIMIT


# --- command sequences ----------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CommandEntry:
    """One (command, argument) pair; ``offset`` is the byte offset of the command code inside its section."""

    code: int
    argument: Any
    offset: int

    @property
    def command(self) -> Command | None:
        try:
            return Command(self.code)
        except ValueError:
            return None

    @property
    def name(self) -> str:
        cmd = self.command
        return cmd.name.lower().replace("_", "-") if cmd is not None else f"command-{self.code}"

    @property
    def policy(self) -> ReportingPolicy:
        if is_uint(self.argument) and self.argument < 16:
            return ReportingPolicy(self.argument)
        return ReportingPolicy.NONE


@dataclass(frozen=True, slots=True)
class CommandSequence:
    """A decoded SUIT_Command_Sequence: the bstr content ``raw`` and its commands."""

    raw: bytes
    commands: tuple[CommandEntry, ...] = field(default=())

    def __iter__(self) -> Any:
        return iter(self.commands)

    def __len__(self) -> int:
        return len(self.commands)


_HEAD_SIZES = {24: 1, 25: 2, 26: 4, 27: 8}


def _head(raw: bytes, pos: int, major: int, what: str) -> tuple[int, int]:
    """(argument, header length) of a definite-length CBOR head of ``major`` type at ``raw[pos]``."""
    if pos >= len(raw):
        raise DecodeError(f"truncated {what}", offset=pos)
    first = raw[pos]
    if first >> 5 != major:
        raise ValidationError(f"{what} has CBOR major type {first >> 5}, expected {major}")
    info = first & 0x1F
    if info < 24:
        return info, 1
    if info not in _HEAD_SIZES:
        raise DecodeError(f"indefinite or malformed head in {what}", offset=pos)
    size = _HEAD_SIZES[info]
    if len(raw) < pos + 1 + size:
        raise DecodeError(f"truncated head in {what}", offset=pos)
    return int.from_bytes(raw[pos + 1 : pos + 1 + size], "big"), 1 + size


def _index_arg(value: object) -> IndexArg:
    if value is True:
        return True
    if is_uint(value):
        return value
    if is_array(value) and value and all(is_uint(v) for v in value):
        return tuple(value)
    raise ValidationError("set-component-index takes an unsigned integer, true, or a non-empty array of integers")


def _nested(raw: bytes, pos: int, base: int, what: str) -> CommandSequence:
    """The command sequence held by the bstr item at ``raw[pos]``."""
    length, head = _head(raw, pos, 2, what)
    return parse_sequence(raw[pos + head : pos + head + length], base=base + pos + head, what=what)


_KNOWN_CODES = frozenset(int(c) for c in Command)


def _argument(code: int, value: object, raw: bytes, base: int, offset: int) -> Any:
    if code == Command.SET_COMPONENT_INDEX:
        return _index_arg(value)
    if code in (Command.OVERRIDE_PARAMETERS, Command.SET_PARAMETERS):
        return parse_parameters(value)
    if code == Command.RUN_SEQUENCE:
        return _nested(raw, offset, base, "run-sequence argument")
    if code == Command.TRY_EACH:
        if not is_array(value) or not value:
            raise ValidationError("try-each takes a non-empty array of command sequences")
        count, head = _head(raw, offset, 4, "try-each argument")
        pos = offset + head
        sequences: list[CommandSequence | None] = []
        for position in range(count):
            item, end = cbor.decode_prefix(raw, offset=pos)
            if item is None and position == count - 1:
                sequences.append(None)
            else:
                sequences.append(_nested(raw, pos, base, "try-each sequence"))
            pos = end
        return tuple(sequences)
    if code in _KNOWN_CODES:
        if not is_uint(value):
            raise ValidationError(f"{Command(code).name.lower()} takes a reporting policy (unsigned integer)")
        return value
    if isinstance(value, bytes | str | int) or value is None:
        return value
    raise ValidationError(f"command {code} has an argument of unsupported type {type(value).__name__}")


def parse_sequence(raw: bytes, *, base: int = 0, what: str = "command sequence") -> CommandSequence:
    """Decode a SUIT_Command_Sequence (the content of its bstr) with the offset of every command.

    ``base`` is added to every offset, so nested sequences report offsets within the enclosing section.
    """
    if not isinstance(raw, bytes):
        raise ValidationError(f"{what} must be a byte string")
    count, pos = _head(raw, 0, 4, what)
    if count == 0 or count % 2:
        raise ValidationError(f"{what} must hold one or more (command, argument) pairs, not {count} items")
    if count > min(_MAX_COMMANDS * 2, len(raw)):
        raise DecodeError(f"{what} declares {count} items in {len(raw)} bytes", offset=0)
    entries: list[CommandEntry] = []
    for _ in range(count // 2):
        offset = pos
        code, pos = cbor.decode_prefix(raw, offset=pos)
        if not isinstance(code, int) or isinstance(code, bool):
            raise ValidationError(f"command code at offset {base + offset} is not an integer")
        arg_offset = pos
        value, pos = cbor.decode_prefix(raw, offset=pos)
        entries.append(CommandEntry(code, _argument(code, value, raw, base, arg_offset), base + offset))
    if pos != len(raw):
        raise DecodeError(f"{len(raw) - pos} trailing bytes after the {what}", offset=base + pos)
    return CommandSequence(raw, tuple(entries))
