"""The five TEEP messages as frozen dataclasses, with strict decoding and byte-exact re-encoding.

``decode_message(data)`` checks a message against the CDDL and the prose of draft-ietf-teep-protocol-26: the shape of
each message type, every option it understands (sizes, element types, cardinality) and the options an Error must
carry for its code. Option labels a message does not understand (unknown, reserved, or defined for another message)
are ignored but kept in ``extensions`` and re-encoded, in their original order, by ``encode()``.

``compat=True`` also accepts the older encodings that peers still send (see docs/teep-decisions.md): libteep's
reserved option 5 (selected-teep-cipher-suite) and empty tc-list, draft-08 QueryRequests (three elements, cipher
suites as ``[sign, encrypt, mac]`` in option 1) and pre-draft-05 integer tokens. Every relaxation used is listed in
the message's ``quirks`` so that callers can report it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Final

from veritee import cbor
from veritee.errors import EncodeError, ValidationError
from veritee.teep import fields as F
from veritee.teep.codes import CipherSuite, CoseType, DataItem, ErrorCode, MessageType, OptionLabel, SuitCoseProfile
from veritee.teep.fields import ComponentId, RequestedTc, SystemPropertyClaims

__all__ = [
    "Error",
    "Message",
    "QueryRequest",
    "QueryResponse",
    "Success",
    "UnknownMessageTypeError",
    "Update",
    "decode_message",
    "message_from_cbor",
]

L = OptionLabel


class UnknownMessageTypeError(ValidationError):
    """The first array element is not a TEEP message type we implement."""


@dataclass(frozen=True, kw_only=True)
class _Message:
    """Fields shared by every message. ``option_order`` and ``quirks`` are bookkeeping, not content."""

    TYPE: ClassVar[MessageType]
    OPTIONS: ClassVar[dict[int, tuple[str, F.Codec]]]
    COMPAT_OPTIONS: ClassVar[dict[int, tuple[str, F.Codec]]] = {}

    token: bytes | None = None
    extensions: Mapping[int, Any] = field(default_factory=dict)
    compat: bool = field(default=False, compare=False)
    option_order: tuple[int, ...] = field(default=(), compare=False, repr=False)
    quirks: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.extensions, Mapping) or not all(F.is_uint(k) for k in self.extensions):
            raise ValidationError(f"{type(self).__name__}: extension option labels are unsigned integers")
        understood = self._option_table(self.compat)
        for label in self.extensions:
            name = understood.get(label, (None,))[0]
            if name is not None and not (self.compat and getattr(self, name) is None):
                raise ValidationError(f"{type(self).__name__}: option {label} is understood; set {name!r} instead")
        if not self.compat:
            for label, (name, _codec) in type(self).COMPAT_OPTIONS.items():
                if getattr(self, name) is not None:
                    raise ValidationError(f"{type(self).__name__}: option {label} ({name}) needs compat=True")
        # Every option value must survive its own codec: this is the same check decoding applies.
        for label, (name, codec) in understood.items():
            value = getattr(self, name)
            if value is not None:
                try:
                    encoded = codec.encode(value)
                except (TypeError, AttributeError, ValueError) as exc:
                    raise ValidationError(f"{type(self).__name__}.{name}: {exc}") from None
                codec.decode(encoded, f"{name} ({label})", self.compat)
        self._check()

    def _check(self) -> None:
        """Message-specific rules beyond the options (positional elements, cross-field rules)."""

    @classmethod
    def _option_table(cls, compat: bool) -> dict[int, tuple[str, F.Codec]]:
        return {**cls.OPTIONS, **cls.COMPAT_OPTIONS} if compat else cls.OPTIONS

    # --- encoding -------------------------------------------------------------------------------------------------
    def options_cbor(self) -> dict[int, Any]:
        values: dict[int, Any] = {}
        for label, (name, codec) in self._option_table(self.compat).items():
            value = getattr(self, name)
            if value is not None:
                values[label] = codec.encode(value)
        for label, value in self.extensions.items():
            values.setdefault(label, value)
        order = [label for label in self.option_order if label in values]
        order += sorted(label for label in values if label not in order)
        return {int(label): values[label] for label in order}

    def positional_cbor(self) -> list[Any]:
        return []

    def to_cbor(self) -> list[Any]:
        return [int(self.TYPE), self.options_cbor(), *self.positional_cbor()]

    def encode(self) -> bytes:
        """The CBOR encoding of the message (the payload a COSE signature covers)."""
        return cbor.encode(self.to_cbor())

    @property
    def type(self) -> MessageType:
        return self.TYPE


def _opt(label: int, name: str, codec: F.Codec) -> tuple[int, tuple[str, F.Codec]]:
    return int(label), (name, codec)


@dataclass(frozen=True, kw_only=True)
class QueryRequest(_Message):
    TYPE: ClassVar[MessageType] = MessageType.QUERY_REQUEST
    OPTIONS: ClassVar[dict[int, tuple[str, F.Codec]]] = dict(
        [
            _opt(L.TOKEN, "token", F.TOKEN),
            _opt(L.SUPPORTED_FRESHNESS_MECHANISMS, "supported_freshness_mechanisms", F.FRESHNESS),
            _opt(L.CHALLENGE, "challenge", F.CHALLENGE),
            _opt(L.VERSIONS, "versions", F.VERSIONS),
            _opt(L.ATTESTATION_PAYLOAD_FORMAT, "attestation_payload_format", F.TEXT),
            _opt(L.ATTESTATION_PAYLOAD, "attestation_payload", F.PAYLOAD),
            _opt(L.SUIT_REPORTS, "suit_reports", F.SUIT_REPORTS),
        ]
    )

    supported_cipher_suites: tuple[CipherSuite, ...]
    supported_suit_cose_profiles: tuple[SuitCoseProfile, ...]
    data_item_requested: DataItem
    supported_freshness_mechanisms: tuple[int, ...] | None = None
    challenge: bytes | None = None
    versions: tuple[int, ...] | None = None
    attestation_payload_format: str | None = None
    attestation_payload: bytes | None = None
    suit_reports: tuple[bytes, ...] | None = None

    def _check(self) -> None:
        suites, profiles = self.supported_cipher_suites, self.supported_suit_cose_profiles
        if not isinstance(suites, tuple) or not all(isinstance(s, CipherSuite) for s in suites):
            raise ValidationError("QueryRequest: supported-teep-cipher-suites is a tuple of CipherSuite")
        if not isinstance(profiles, tuple) or not all(isinstance(p, tuple) for p in profiles):
            raise ValidationError("QueryRequest: supported-suit-cose-profiles is a tuple of tuples")
        # A draft-08 QueryRequest decoded in compat mode has no SUIT COSE profiles (and maybe no suites).
        legacy_empty = self.compat
        if suites or not legacy_empty:
            F.CIPHER_SUITES.decode(F.CIPHER_SUITES.encode(suites), "supported-teep-cipher-suites", False)
        if profiles or not legacy_empty:
            F.SUIT_PROFILES.decode([list(p) for p in profiles], "supported-suit-cose-profiles", False)
        if not F.is_uint(self.data_item_requested):
            raise ValidationError("QueryRequest: data-item-requested is an unsigned integer bitmap")

    def positional_cbor(self) -> list[Any]:
        if not self.supported_cipher_suites or not self.supported_suit_cose_profiles:
            raise EncodeError("QueryRequest without cipher suites or SUIT COSE profiles (a decoded draft-08 form)")
        return [
            [s.to_cbor() for s in self.supported_cipher_suites],
            [list(p) for p in self.supported_suit_cose_profiles],
            int(self.data_item_requested),
        ]


@dataclass(frozen=True, kw_only=True)
class QueryResponse(_Message):
    TYPE: ClassVar[MessageType] = MessageType.QUERY_RESPONSE
    OPTIONS: ClassVar[dict[int, tuple[str, F.Codec]]] = dict(
        [
            _opt(L.TOKEN, "token", F.TOKEN),
            _opt(L.SELECTED_VERSION, "selected_version", F.VERSION),
            _opt(L.ATTESTATION_PAYLOAD_FORMAT, "attestation_payload_format", F.TEXT),
            _opt(L.ATTESTATION_PAYLOAD, "attestation_payload", F.PAYLOAD),
            _opt(L.SUIT_REPORTS, "suit_reports", F.SUIT_REPORTS),
            _opt(L.TC_LIST, "tc_list", F.TC_LIST),
            _opt(L.REQUESTED_TC_LIST, "requested_tc_list", F.REQUESTED_TC_LIST),
            _opt(L.UNNEEDED_MANIFEST_LIST, "unneeded_manifest_list", F.COMPONENT_IDS),
            _opt(L.EXT_LIST, "ext_list", F.EXT_LIST),
        ]
    )
    COMPAT_OPTIONS: ClassVar[dict[int, tuple[str, F.Codec]]] = dict(
        [_opt(L.SELECTED_TEEP_CIPHER_SUITE, "selected_cipher_suite", F.CIPHER_SUITE)]
    )

    selected_version: int | None = None
    attestation_payload_format: str | None = None
    attestation_payload: bytes | None = None
    suit_reports: tuple[bytes, ...] | None = None
    tc_list: tuple[SystemPropertyClaims, ...] | None = None
    requested_tc_list: tuple[RequestedTc, ...] | None = None
    unneeded_manifest_list: tuple[ComponentId, ...] | None = None
    ext_list: tuple[int, ...] | None = None
    selected_cipher_suite: CipherSuite | None = None  # option 5, compat only


@dataclass(frozen=True, kw_only=True)
class Update(_Message):
    TYPE: ClassVar[MessageType] = MessageType.UPDATE
    OPTIONS: ClassVar[dict[int, tuple[str, F.Codec]]] = dict(
        [
            _opt(L.TOKEN, "token", F.TOKEN),
            _opt(L.UNNEEDED_MANIFEST_LIST, "unneeded_manifest_list", F.COMPONENT_IDS),
            _opt(L.MANIFEST_LIST, "manifest_list", F.MANIFESTS),
            _opt(L.ATTESTATION_PAYLOAD_FORMAT, "attestation_payload_format", F.TEXT),
            _opt(L.ATTESTATION_PAYLOAD, "attestation_payload", F.PAYLOAD),
            _opt(L.ERR_CODE, "err_code", F.ERR_CODE),
            _opt(L.ERR_MSG, "err_msg", F.MSG_TEXT),
            _opt(L.ERR_LANG, "err_lang", F.LANG_TEXT),
        ]
    )

    unneeded_manifest_list: tuple[ComponentId, ...] | None = None
    manifest_list: tuple[bytes, ...] | None = None
    attestation_payload_format: str | None = None
    attestation_payload: bytes | None = None
    err_code: ErrorCode | None = None
    err_msg: str | None = None
    err_lang: str | None = None


@dataclass(frozen=True, kw_only=True)
class Success(_Message):
    TYPE: ClassVar[MessageType] = MessageType.SUCCESS
    OPTIONS: ClassVar[dict[int, tuple[str, F.Codec]]] = dict(
        [
            _opt(L.TOKEN, "token", F.TOKEN),
            _opt(L.MSG, "msg", F.MSG_TEXT),
            _opt(L.SUIT_REPORTS, "suit_reports", F.SUIT_REPORTS),
        ]
    )

    msg: str | None = None
    suit_reports: tuple[bytes, ...] | None = None


# Options an Error must carry for some codes (draft §4.6).
ERROR_REQUIRED_OPTIONS: Final = {
    ErrorCode.UNSUPPORTED_CIPHER_SUITES: "supported_cipher_suites",
    ErrorCode.UNSUPPORTED_FRESHNESS_MECHANISMS: "supported_freshness_mechanisms",
    ErrorCode.UNSUPPORTED_MSG_VERSION: "versions",
    ErrorCode.UNSUPPORTED_SUIT_REPORT: "supported_suit_cose_profiles",
}


@dataclass(frozen=True, kw_only=True)
class Error(_Message):
    TYPE: ClassVar[MessageType] = MessageType.ERROR
    OPTIONS: ClassVar[dict[int, tuple[str, F.Codec]]] = dict(
        [
            _opt(L.TOKEN, "token", F.TOKEN),
            _opt(L.ERR_MSG, "err_msg", F.MSG_TEXT),
            _opt(L.ERR_LANG, "err_lang", F.LANG_TEXT),
            _opt(L.SUPPORTED_TEEP_CIPHER_SUITES, "supported_cipher_suites", F.CIPHER_SUITES),
            _opt(L.SUPPORTED_FRESHNESS_MECHANISMS, "supported_freshness_mechanisms", F.FRESHNESS),
            _opt(L.SUPPORTED_SUIT_COSE_PROFILES, "supported_suit_cose_profiles", F.SUIT_PROFILES),
            _opt(L.CHALLENGE, "challenge", F.CHALLENGE),
            _opt(L.VERSIONS, "versions", F.VERSIONS),
            _opt(L.SUIT_REPORTS, "suit_reports", F.SUIT_REPORTS),
        ]
    )

    err_code: ErrorCode
    err_msg: str | None = None
    err_lang: str | None = None
    supported_cipher_suites: tuple[CipherSuite, ...] | None = None
    supported_freshness_mechanisms: tuple[int, ...] | None = None
    supported_suit_cose_profiles: tuple[SuitCoseProfile, ...] | None = None
    challenge: bytes | None = None
    versions: tuple[int, ...] | None = None
    suit_reports: tuple[bytes, ...] | None = None

    def _check(self) -> None:
        F.ERR_CODE.decode(self.err_code, "err-code", self.compat)
        required = ERROR_REQUIRED_OPTIONS.get(ErrorCode(self.err_code))
        if required is not None and getattr(self, required) is None:
            raise ValidationError(f"Error {ErrorCode(self.err_code).name} must carry {required}")

    def positional_cbor(self) -> list[Any]:
        return [int(self.err_code)]


Message = QueryRequest | QueryResponse | Update | Success | Error

_CLASSES: Final[dict[int, type[_Message]]] = {
    MessageType.QUERY_REQUEST: QueryRequest,
    MessageType.QUERY_RESPONSE: QueryResponse,
    MessageType.UPDATE: Update,
    MessageType.SUCCESS: Success,
    MessageType.ERROR: Error,
}
_POSITIONAL_COUNT: Final = {QueryRequest: 3, QueryResponse: 0, Update: 0, Success: 0, Error: 1}


def decode_message(data: bytes, *, compat: bool = False) -> Message:
    """Decode and validate one bare TEEP message (the COSE payload). Raises DecodeError / ValidationError."""
    return message_from_cbor(cbor.decode(data), compat=compat)


def message_from_cbor(obj: Any, *, compat: bool = False) -> Message:
    """Validate an already decoded TEEP message array and build the typed message."""
    if not F.is_array(obj) or len(obj) < 2:
        raise ValidationError("a TEEP message is an array [type, options, ...]")
    msg_type, options = obj[0], obj[1]
    if not F.is_uint(msg_type, 255):
        raise ValidationError("the TEEP message type is an unsigned integer")
    cls = _CLASSES.get(msg_type)
    if cls is None:
        raise UnknownMessageTypeError(f"unknown TEEP message type {msg_type}")
    if not isinstance(options, Mapping):
        raise ValidationError("the TEEP options are a map")
    quirks: list[str] = []
    positional = list(obj[2:])
    if cls is QueryRequest and len(positional) == 1 and compat:
        positional, options = _legacy_query_request(positional, dict(options), quirks)
    if len(positional) != _POSITIONAL_COUNT[cls]:
        raise ValidationError(f"a {cls.__name__} has {2 + _POSITIONAL_COUNT[cls]} elements, not {len(obj)}")
    kwargs: dict[str, Any] = {}
    extensions: dict[int, Any] = {}
    table = cls._option_table(compat)
    for label, value in options.items():
        if not F.is_uint(label):
            raise ValidationError(f"TEEP option labels are unsigned integers, not {label!r}")
        entry = table.get(label)
        if entry is None:
            extensions[label] = value
            continue
        name, codec = entry
        if compat and label == L.TOKEN and F.is_uint(value):
            quirks.append("integer token (pre-draft-05) kept as an unread option")
            extensions[label] = value
            continue
        kwargs[name] = codec.decode(value, f"{name} ({label})", compat)
        if label in cls.COMPAT_OPTIONS:
            quirks.append(f"option {label} ({name}) is reserved in draft -26; read for compatibility")
        if label == L.TC_LIST and not value:
            quirks.append("empty tc-list (the CDDL requires one or more entries)")
    kwargs.update(_positional(cls, positional, compat))
    return cls(  # type: ignore[return-value]
        **kwargs,
        extensions=extensions,
        compat=compat,
        option_order=tuple(int(k) for k in options),
        quirks=tuple(quirks),
    )


def _positional(cls: type[_Message], positional: list[Any], compat: bool) -> dict[str, Any]:
    if cls is QueryRequest:
        suites, profiles, items = positional
        if not F.is_uint(items):
            raise ValidationError("data-item-requested is an unsigned integer bitmap")
        return {
            "supported_cipher_suites": F.CIPHER_SUITES.decode(suites, "supported-teep-cipher-suites", compat)
            if suites is not None
            else (),
            "supported_suit_cose_profiles": F.SUIT_PROFILES.decode(profiles, "supported-suit-cose-profiles", compat)
            if profiles is not None
            else (),
            "data_item_requested": DataItem(items),
        }
    if cls is Error:
        return {"err_code": F.ERR_CODE.decode(positional[0], "err-code", compat)}
    return {}


def _legacy_query_request(
    positional: list[Any], options: dict[Any, Any], quirks: list[str]
) -> tuple[list[Any], dict[Any, Any]]:
    """A draft-08 QueryRequest ``[1, {options}, data-item-requested]`` with option 1 = ``[[sign, enc, mac], ...]``."""
    quirks.append("draft-08 QueryRequest (three elements; cipher suites in option 1)")
    raw = options.pop(int(L.SUPPORTED_TEEP_CIPHER_SUITES), None)
    suites: list[list[list[int]]] | None = None
    if raw is not None:
        if not F.is_array(raw):
            raise ValidationError("draft-08 supported-cipher-suites is an array")
        suites = []
        for i, triple in enumerate(raw):
            if not F.is_array(triple) or len(triple) != 3:
                raise ValidationError(f"draft-08 cipher suite [{i}] is [sign, encrypt, mac]")
            ops = [
                [int(cose_type), alg]
                for cose_type, alg in zip((CoseType.SIGN1, CoseType.ENCRYPT0, CoseType.MAC0), triple, strict=True)
                if alg is not None
            ]
            if not ops or not all(F.is_array(op) and isinstance(op[1], int) for op in ops):
                raise ValidationError(f"draft-08 cipher suite [{i}] names no algorithm")
            suites.append(ops)
    return [suites, None, positional[0]], options


def message_fields(message: Message) -> dict[str, Any]:
    """The content fields of a message (for diagnostics and the CLI), without the bookkeeping ones."""
    skip = {"option_order", "compat", "quirks"}
    return {f.name: getattr(message, f.name) for f in fields(message) if f.name not in skip}
