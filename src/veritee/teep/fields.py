"""Codecs for the values carried in TEEP options: each turns a decoded CBOR value into our typed value (validating it
against the CDDL and the draft's prose) and back.

A codec's ``decode`` raises :class:`veritee.errors.ValidationError` naming the option; ``encode`` returns the CBOR
value (lists, dicts, bytes, ints) that re-encodes to exactly what was decoded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from veritee import cbor
from veritee.errors import DecodeError, ValidationError
from veritee.teep.codes import CipherSuite, ErrorCode, OptionLabel, SuitCoseProfile, suit_cose_profile_from_cbor

__all__ = [
    "ComponentId",
    "RequestedTc",
    "SystemPropertyClaims",
    "component_id_from_cbor",
]

UINT32_MAX: Final = 2**32 - 1
UINT64_MAX: Final = 2**64 - 1
SUIT_ENVELOPE_TAG: Final = 107

ComponentId = tuple[bytes, ...]
"""A SUIT_Component_Identifier: an array of byte strings."""


def is_uint(value: Any, limit: int = UINT64_MAX) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit


def is_array(value: Any) -> bool:
    return isinstance(value, list | tuple)


def component_id_from_cbor(value: Any, *, where: str = "component id") -> ComponentId:
    if not is_array(value) or not all(isinstance(x, bytes) for x in value):
        raise ValidationError(f"{where}: a SUIT_Component_Identifier is an array of byte strings")
    return tuple(value)


@dataclass(frozen=True)
class SystemPropertyClaims:
    """One tc-list entry (draft-ietf-suit-report system-property-claims): ``{0: component id, + SUIT parameters}``.

    The map is kept as decoded so that it re-encodes byte for byte; the typed views are properties.
    """

    claims: Mapping[int, Any]

    def __post_init__(self) -> None:
        if not isinstance(self.claims, Mapping) or not self.claims:
            raise ValidationError("tc-list entry: system-property-claims is a non-empty map")
        if not all(isinstance(k, int) and not isinstance(k, bool) for k in self.claims):
            raise ValidationError("tc-list entry: system-property-claims keys are integers")
        if 0 not in self.claims:
            raise ValidationError("tc-list entry: system-component-id (0) is required")
        component_id_from_cbor(self.claims[0], where="tc-list entry system-component-id")
        digest = self.claims.get(3)
        if digest is not None and not isinstance(digest, bytes):
            raise ValidationError("tc-list entry: suit-parameter-image-digest (3) is a bstr-wrapped SUIT_Digest")

    @property
    def component_id(self) -> ComponentId:
        return tuple(self.claims[0])

    @property
    def image_digest(self) -> tuple[int, bytes] | None:
        """suit-parameter-image-digest (3) as (algorithm, digest bytes), when present and well-formed."""
        raw = self.claims.get(3)
        if raw is None:
            return None
        try:
            value = cbor.decode(raw)
        except DecodeError as exc:
            raise ValidationError(f"tc-list entry: image digest is not CBOR: {exc}") from None
        if not is_array(value) or len(value) != 2 or not isinstance(value[0], int) or not isinstance(value[1], bytes):
            raise ValidationError("tc-list entry: image digest is not a SUIT_Digest [alg, bytes]")
        return int(value[0]), bytes(value[1])

    def to_cbor(self) -> Mapping[int, Any]:
        return self.claims


@dataclass(frozen=True)
class RequestedTc:
    """requested-tc-info: a Trusted Component the Agent asks the TAM to install."""

    component_id: ComponentId
    sequence_number: int | None = None
    have_binary: bool | None = None

    def __post_init__(self) -> None:
        component_id_from_cbor(list(self.component_id), where="requested-tc-info component-id")
        if self.sequence_number is not None and not is_uint(self.sequence_number):
            raise ValidationError("requested-tc-info: tc-manifest-sequence-number is a uint (64 bits)")
        if self.have_binary is not None and not isinstance(self.have_binary, bool):
            raise ValidationError("requested-tc-info: have-binary is a bool")
        if self.have_binary and self.sequence_number is None:
            raise ValidationError("requested-tc-info: have-binary true requires tc-manifest-sequence-number")

    def to_cbor(self) -> dict[int, Any]:
        out: dict[int, Any] = {OptionLabel.COMPONENT_ID: list(self.component_id)}
        if self.sequence_number is not None:
            out[OptionLabel.TC_MANIFEST_SEQUENCE_NUMBER] = self.sequence_number
        if self.have_binary is not None:
            out[OptionLabel.HAVE_BINARY] = self.have_binary
        return out

    @classmethod
    def from_cbor(cls, value: Any) -> RequestedTc:
        if not isinstance(value, Mapping):
            raise ValidationError("requested-tc-info is a map")
        known = {OptionLabel.COMPONENT_ID, OptionLabel.TC_MANIFEST_SEQUENCE_NUMBER, OptionLabel.HAVE_BINARY}
        extra = [k for k in value if k not in known]
        if extra:
            raise ValidationError(f"requested-tc-info: unexpected keys {extra!r}")
        if OptionLabel.COMPONENT_ID not in value:
            raise ValidationError("requested-tc-info: component-id (16) is required")
        return cls(
            component_id=component_id_from_cbor(value[OptionLabel.COMPONENT_ID], where="requested-tc-info"),
            sequence_number=value.get(OptionLabel.TC_MANIFEST_SEQUENCE_NUMBER),
            have_binary=value.get(OptionLabel.HAVE_BINARY),
        )


# --- option codecs ------------------------------------------------------------------------------------------------
Decoder = Callable[[Any, str, bool], Any]
Encoder = Callable[[Any], Any]
FastDecoder = Callable[[Any], Any]


class _Slow:
    """The answer of a fast decoder that does not decide: the full decoder must run (and say what is wrong)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SLOW"


SLOW: Final = _Slow()


def identity(value: Any) -> Any:
    """The encoder of values that are their own CBOR form (byte and text strings, integers)."""
    return value


@dataclass(frozen=True)
class Codec:
    """``decode`` validates a CBOR value and returns the typed value; ``encode`` is its inverse.

    ``fast``, when set, is a shortcut for the common well-formed case that needs no error text: it returns exactly what
    ``decode`` would, or :data:`SLOW` whenever it cannot tell (then ``decode`` runs and raises or returns).
    ``fast_built`` (default: ``fast``) is the one the constructors use; it may rely on values seen before.
    """

    decode: Decoder
    encode: Encoder = field(default=identity)
    fast: FastDecoder | None = None
    fast_built: FastDecoder | None = None  # a shortcut like ``fast``, for the values of a message being built only

    def read(self, value: Any, name: str, compat: bool) -> Any:
        """``decode``, through ``fast`` first when there is one."""
        fast = self.fast
        if fast is not None:
            result = fast(value)
            if result is not SLOW:
                return result
        return self.decode(value, name, compat)


def bstr(lo: int = 0, hi: int | None = None) -> Codec:
    def dec(value: Any, name: str, compat: bool) -> bytes:
        if not isinstance(value, bytes):
            raise ValidationError(f"{name} is a byte string")
        if len(value) < lo or (hi is not None and len(value) > hi):
            raise ValidationError(f"{name} must be {lo}..{hi} bytes, got {len(value)}")
        return value

    top = UINT64_MAX if hi is None else hi

    def fast(value: Any) -> Any:
        return value if type(value) is bytes and lo <= len(value) <= top else SLOW

    return Codec(dec, fast=fast)


def tstr(lo: int = 0, hi: int | None = None) -> Codec:
    def dec(value: Any, name: str, compat: bool) -> str:
        if not isinstance(value, str):
            raise ValidationError(f"{name} is a text string")
        size = len(value.encode("utf-8", "surrogatepass"))
        if size < lo or (hi is not None and size > hi):
            raise ValidationError(f"{name} must be {lo}..{hi} bytes of UTF-8, got {size}")
        return value

    top = UINT64_MAX if hi is None else hi

    def fast(value: Any) -> Any:
        # An ASCII string has one UTF-8 byte per character; anything else is measured by the full decoder.
        return value if type(value) is str and value.isascii() and lo <= len(value) <= top else SLOW

    return Codec(dec, fast=fast)


def uint(limit: int = UINT64_MAX) -> Codec:
    def dec(value: Any, name: str, compat: bool) -> int:
        if not is_uint(value, limit):
            raise ValidationError(f"{name} is an unsigned integer up to {limit}")
        return int(value)

    def fast(value: Any) -> Any:
        return value if type(value) is int and 0 <= value <= limit else SLOW

    return Codec(dec, fast=fast)


def array(item: Codec, *, empty_in_compat: bool = False) -> Codec:
    """``[ + item ]`` (``empty_in_compat``: an empty array is accepted in compat mode, a documented peer quirk)."""

    def dec(value: Any, name: str, compat: bool) -> tuple[Any, ...]:
        if not is_array(value):
            raise ValidationError(f"{name} is an array")
        if not value and not (compat and empty_in_compat):
            raise ValidationError(f"{name} must have at least one element")
        return tuple(item.read(v, f"{name}[{i}]", compat) for i, v in enumerate(value))

    def enc(value: Any) -> list[Any]:
        return [item.encode(v) for v in value]

    fast_item = item.fast
    if fast_item is None:
        return Codec(dec, enc)

    def fast(value: Any) -> Any:
        kind = type(value)
        if (kind is not list and kind is not tuple) or not value:
            return SLOW
        out = []
        for v in value:
            result = fast_item(v)
            if result is SLOW:
                return SLOW
            out.append(result)
        return tuple(out)

    return Codec(dec, enc, fast)


def _cbor_item(value: Any, name: str) -> Any:
    try:
        return cbor.decode(value)
    except DecodeError as exc:
        raise ValidationError(f"{name} must hold one well-formed CBOR item: {exc}") from None


def _dec_embedded_cbor(value: Any, name: str, compat: bool) -> bytes:
    if not isinstance(value, bytes):
        raise ValidationError(f"{name} is a bstr-wrapped CBOR item")
    _cbor_item(value, name)
    return value


# Byte strings already found to hold a SUIT_Envelope. Validity depends on the bytes alone, so when a TAM builds Updates
# carrying the same Trusted Component for many devices, the manifest is not decoded again for each one. Received
# manifests are always decoded (see MANIFESTS). Bounded.
_KNOWN_ENVELOPES: dict[bytes, None] = {}
_KNOWN_ENVELOPES_MAX: Final = 64
_KNOWN_ENVELOPE_MAX_SIZE: Final = 64 * 1024


def _dec_envelope(value: Any, name: str, compat: bool) -> bytes:
    if not isinstance(value, bytes):
        raise ValidationError(f"{name} is a bstr-wrapped SUIT_Envelope")
    item = _cbor_item(value, name)
    if isinstance(item, cbor.CBORTag) and item.tag == SUIT_ENVELOPE_TAG:
        item = item.value
    if not isinstance(item, Mapping):
        raise ValidationError(f"{name}: a SUIT_Envelope is a map (optionally tagged 107)")
    if type(value) is bytes and len(value) <= _KNOWN_ENVELOPE_MAX_SIZE:
        if len(_KNOWN_ENVELOPES) >= _KNOWN_ENVELOPES_MAX:
            _KNOWN_ENVELOPES.clear()
        _KNOWN_ENVELOPES[value] = None
    return value


def _known_manifests(value: Any) -> Any:
    if type(value) not in _SEQUENCES or not value:
        return SLOW
    for envelope in value:
        if type(envelope) is not bytes or envelope not in _KNOWN_ENVELOPES:
            return SLOW
    return tuple(value)


def _dec_suite(value: Any, name: str, compat: bool) -> CipherSuite:
    return CipherSuite.from_cbor(value, where=name)


# Suites by their operations (exact ints): the usual offers decode to shared immutable objects. Bounded.
# (The shortcuts below are plain loops: in CPython 3.11 they beat map/set pipelines on such small inputs.)
_SUITES: dict[tuple[tuple[int, int], ...], CipherSuite] = {}
_SUITES_MAX: Final = 64
_SEQUENCES: Final = frozenset({list, tuple})


def _suite(operations: tuple[tuple[int, int], ...]) -> CipherSuite:
    suite = _SUITES.get(operations)
    if suite is None:
        suite = CipherSuite(operations)
        if len(_SUITES) >= _SUITES_MAX:
            _SUITES.clear()
        _SUITES[operations] = suite
    return suite


def _fast_suite(value: Any) -> Any:
    if type(value) not in _SEQUENCES or not value:
        return SLOW
    operations = []
    for op in value:
        if type(op) not in _SEQUENCES or len(op) != 2:
            return SLOW
        cose_type, alg = op
        if type(cose_type) is not int or type(alg) is not int:
            return SLOW
        operations.append((cose_type, alg))
    return _suite(tuple(operations))


def _fast_suites(value: Any) -> Any:
    """The whole ``[+ suite]`` array at once (the per-item loop of :func:`array`, without the per-item calls)."""
    if type(value) not in _SEQUENCES or not value:
        return SLOW
    suites = []
    for suite in value:
        if type(suite) in _SEQUENCES and len(suite) == 1:  # a single operation: the only kind in use
            op = suite[0]
            if type(op) in _SEQUENCES and len(op) == 2:
                cose_type, alg = op
                if type(cose_type) is int and type(alg) is int:
                    suites.append(_suite(((cose_type, alg),)))
                    continue
        found = _fast_suite(suite)
        if found is SLOW:
            return SLOW
        suites.append(found)
    return tuple(suites)


def _dec_profile(value: Any, name: str, compat: bool) -> SuitCoseProfile:
    return suit_cose_profile_from_cbor(value, where=name)


def _fast_profile(value: Any) -> Any:
    if type(value) not in _SEQUENCES or not value:
        return SLOW
    for x in value:
        if type(x) is not int:
            return SLOW
    return tuple(value)


def _fast_profiles(value: Any) -> Any:
    """The whole ``[+ profile]`` array at once (the per-item loop of :func:`array`, without the per-item calls)."""
    if type(value) not in _SEQUENCES or not value:
        return SLOW
    profiles = []
    for profile in value:
        if type(profile) not in _SEQUENCES or not profile:
            return SLOW
        for x in profile:
            if type(x) is not int:
                return SLOW
        profiles.append(tuple(profile))
    return tuple(profiles)


def _dec_component_id(value: Any, name: str, compat: bool) -> ComponentId:
    return component_id_from_cbor(value, where=name)


def _fast_component_id(value: Any) -> Any:
    if type(value) not in _SEQUENCES:
        return SLOW
    for x in value:
        if type(x) is not bytes:
            return SLOW
    return tuple(value)


def _dec_claims(value: Any, name: str, compat: bool) -> SystemPropertyClaims:
    if not isinstance(value, Mapping):
        raise ValidationError(f"{name} is a system-property-claims map")
    return SystemPropertyClaims(value)


def _dec_requested(value: Any, name: str, compat: bool) -> RequestedTc:
    return RequestedTc.from_cbor(value)


def _dec_err_code(value: Any, name: str, compat: bool) -> ErrorCode:
    if not is_uint(value, 255):
        raise ValidationError(f"{name} is an error code")
    try:
        return ErrorCode(value)
    except ValueError:
        raise ValidationError(f"{name}: unknown error code {value}") from None


_ERROR_CODES: Final[dict[int, ErrorCode]] = {int(code): code for code in ErrorCode}


def _fast_err_code(value: Any) -> Any:
    return _ERROR_CODES.get(value, SLOW) if type(value) is int else SLOW


def _to_cbor(value: Any) -> Any:
    return value.to_cbor()


def _encode_profiles(value: Any) -> list[Any]:
    return [list(profile) for profile in value]


TOKEN: Final = bstr(8, 64)
CHALLENGE: Final = bstr(8, 512)
PAYLOAD: Final = bstr()
TEXT: Final = tstr()
MSG_TEXT: Final = tstr(1, 128)
LANG_TEXT: Final = tstr(1, 35)
VERSION: Final = uint(UINT32_MAX)
VERSIONS: Final = array(VERSION)
EXT_LIST: Final = array(uint(UINT32_MAX))
FRESHNESS: Final = array(uint())
CIPHER_SUITE: Final = Codec(_dec_suite, _to_cbor, _fast_suite)
CIPHER_SUITES: Final = replace(array(CIPHER_SUITE), fast=_fast_suites)
SUIT_PROFILES: Final = Codec(array(Codec(_dec_profile, list, _fast_profile)).decode, _encode_profiles, _fast_profiles)
SUIT_REPORTS: Final = array(Codec(_dec_embedded_cbor))
MANIFESTS: Final = replace(array(Codec(_dec_envelope)), fast_built=_known_manifests)
COMPONENT_IDS: Final = array(Codec(_dec_component_id, list, _fast_component_id))
TC_LIST: Final = array(Codec(_dec_claims, _to_cbor), empty_in_compat=True)
REQUESTED_TC_LIST: Final = array(Codec(_dec_requested, _to_cbor))
ERR_CODE: Final = Codec(_dec_err_code, int, _fast_err_code)
