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
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Final, TypeVar

from veritee import cbor
from veritee.errors import EncodeError, ValidationError
from veritee.teep import fields as F
from veritee.teep.codes import CipherSuite, CoseType, DataItem, ErrorCode, MessageType, OptionLabel, SuitCoseProfile
from veritee.teep.encoding import PROFILE_OFFERS, SUITE_OFFERS, array_head, encode_item, map_head, uint
from veritee.teep.fields import SLOW, ComponentId, RequestedTc, SystemPropertyClaims

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


_M = TypeVar("_M", bound="_Message")
_UINT64_MAX: Final = F.UINT64_MAX
_REQUIRED: Final = object()  # a field without a default, in a class's field table


@dataclass(frozen=True, kw_only=True)
class _Message:
    """Fields shared by every message. ``option_order`` and ``quirks`` are bookkeeping, not content."""

    TYPE: ClassVar[MessageType]
    OPTIONS: ClassVar[dict[int, tuple[str, F.Codec]]]
    COMPAT_OPTIONS: ClassVar[dict[int, tuple[str, F.Codec]]] = {}
    # Derived per class (see __init_subclass__ and _from_validated): the option table flattened for checking and
    # for encoding, and the fields' defaults.
    _CHECK_PLAN: ClassVar[dict[bool, tuple[tuple[int, str, F.Codec, bool, F.FastDecoder | None], ...]]]
    _ENCODE_PLAN: ClassVar[dict[bool, tuple[tuple[bytes, str, F.Encoder | None], ...]]]
    _TYPE_HEAD: ClassVar[bytes]
    _POSITIONAL: ClassVar[bool] = False  # whether the class has elements after the options map
    _FIELD_TABLE: ClassVar[dict[str, Any] | None] = None
    _REQUIRED_FIELDS: ClassVar[tuple[str, ...]] = ()

    token: bytes | None = None
    extensions: Mapping[int, Any] = field(default_factory=dict)
    compat: bool = field(default=False, compare=False)
    option_order: tuple[int, ...] = field(default=(), compare=False, repr=False)
    quirks: tuple[str, ...] = field(default=(), compare=False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "OPTIONS" in cls.__dict__ or "COMPAT_OPTIONS" in cls.__dict__:
            cls._CHECK_PLAN = {compat: cls._check_plan(compat) for compat in (False, True)}
            cls._ENCODE_PLAN = {compat: cls._encode_plan(compat) for compat in (False, True)}
        if "TYPE" in cls.__dict__:
            cls._TYPE_HEAD = uint(int(cls.TYPE))
        cls._POSITIONAL = cls.positional_cbor is not _Message.positional_cbor

    @classmethod
    def _check_plan(cls, compat: bool) -> tuple[tuple[int, str, F.Codec, bool, F.FastDecoder | None], ...]:
        """(label, field, codec, codec encodes as identity, shortcut) in the option table's order (that of errors)."""
        return tuple((label, name, codec, codec.encode is F.identity, codec.fast_built or codec.fast)
                     for label, (name, codec) in cls._option_table(compat).items())  # fmt: skip

    @classmethod
    def _encode_plan(cls, compat: bool) -> tuple[tuple[bytes, str, F.Encoder | None], ...]:
        """(encoded label, field, encoder or None for the identity) in label order (the order of a built message)."""
        table = cls._option_table(compat)
        return tuple((uint(label), name, None if codec.encode is F.identity else codec.encode)
                     for label, (name, codec) in sorted(table.items()))  # fmt: skip

    def __post_init__(self) -> None:
        compat = self.compat
        if type(self.extensions) is not dict or self.extensions:  # an empty dict (the usual case) has nothing to check
            understood = self._option_table(compat)
            if not isinstance(self.extensions, Mapping) or not all(F.is_uint(k) for k in self.extensions):
                raise ValidationError(f"{type(self).__name__}: extension option labels are unsigned integers")
            for label in self.extensions:
                name = understood.get(label, (None,))[0]
                if name is not None and not (compat and getattr(self, name) is None):
                    raise ValidationError(f"{type(self).__name__}: option {label} is understood; set {name!r} instead")
        if not compat:
            for label, (name, _codec) in type(self).COMPAT_OPTIONS.items():
                if getattr(self, name) is not None:
                    raise ValidationError(f"{type(self).__name__}: option {label} ({name}) needs compat=True")
        # Every option value must survive its own codec: this is the same check decoding applies.
        state = self.__dict__
        for label, name, codec, identity, fast in self._CHECK_PLAN[compat]:
            value = state[name]
            if value is None:
                continue
            if identity:
                encoded = value
            else:
                try:
                    encoded = codec.encode(value)
                except (TypeError, AttributeError, ValueError) as exc:
                    raise ValidationError(f"{type(self).__name__}.{name}: {exc}") from None
            if fast is None or fast(encoded) is SLOW:
                codec.decode(encoded, f"{name} ({label})", compat)
        self._check()

    def _check(self) -> None:
        """Message-specific rules beyond the options: the positional elements, then :meth:`_check_rules`."""
        self._check_rules()

    def _check_rules(self) -> None:
        """Cross-field rules, which decoding (that has validated every element on its own) still has to apply."""

    @classmethod
    def _field_state(cls) -> dict[str, Any]:
        """A fresh ``__dict__`` for a message of this class: every field, in order, at its default (or _REQUIRED)."""
        table: dict[str, Any] | None = cls.__dict__.get("_FIELD_TABLE")
        if table is None:
            table = {f.name: (f.default if f.default is not MISSING else _REQUIRED) for f in fields(cls)}
            cls._REQUIRED_FIELDS = tuple(name for name, default in table.items() if default is _REQUIRED)
            cls._FIELD_TABLE = table
        return table.copy()

    @classmethod
    def _from_validated(cls: type[_M], state: dict[str, Any]) -> _M:
        """Build a message from a :meth:`_field_state` filled with values that ``message_from_cbor`` validated one by
        one, as the constructor would: only the cross-field rules are left to check."""
        for name in cls._REQUIRED_FIELDS:
            if state[name] is _REQUIRED:  # message_from_cbor always supplies these: never build a broken message
                raise ValidationError(f"{cls.__name__}: no value for {name}")
        message: _M = object.__new__(cls)
        object.__setattr__(message, "__dict__", state)
        message._check_rules()
        return message

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
        """The CBOR encoding of the message (the payload a COSE signature covers): ``cbor.encode(self.to_cbor())``.

        Built from the encodings of the parts (see :mod:`veritee.teep.encoding`), in the order ``options_cbor`` uses.
        """
        if not self.option_order and not self.extensions:  # a built message: the options in label order
            state = self.__dict__
            parts = [b"", self._TYPE_HEAD, b""]
            for label_head, name, encoder in self._ENCODE_PLAN[self.compat]:
                value = state[name]
                if value is not None:
                    parts.append(label_head)
                    parts.append(encode_item(value if encoder is None else encoder(value)))
            positional = self._positional_encoded() if self._POSITIONAL else ()
            parts[0] = array_head(2 + len(positional))
            parts[2] = map_head((len(parts) - 3) // 2)
            parts += positional
            return b"".join(parts)
        values: dict[int, Any] = {}
        for label, (name, codec) in self._option_table(self.compat).items():
            value = getattr(self, name)
            if value is not None:
                values[label] = codec.encode(value)
        for label, value in self.extensions.items():
            values.setdefault(label, value)
        if self.option_order:
            order = [label for label in self.option_order if label in values]
            order += sorted(label for label in values if label not in order)
        else:
            order = sorted(values)
        options = {int(label): values[label] for label in order}
        positional = self._positional_encoded()
        parts = [array_head(2 + len(positional)), uint(int(self.TYPE)), map_head(len(options))]
        for label, value in options.items():
            parts.append(uint(label))
            parts.append(encode_item(value))
        parts += positional
        return b"".join(parts)

    def _positional_encoded(self) -> list[bytes]:
        """The encodings of the elements after the options map (``positional_cbor``, item by item)."""
        return [encode_item(item) for item in self.positional_cbor()]

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
        # The usual offers are the same (immutable) tuples every time: once validated, they are known good.
        known_suites = SUITE_OFFERS.knows(suites)
        known_profiles = PROFILE_OFFERS.knows(profiles)
        if not known_suites and (not isinstance(suites, tuple) or not all(isinstance(s, CipherSuite) for s in suites)):
            raise ValidationError("QueryRequest: supported-teep-cipher-suites is a tuple of CipherSuite")
        if not known_profiles and (not isinstance(profiles, tuple) or not all(isinstance(p, tuple) for p in profiles)):
            raise ValidationError("QueryRequest: supported-suit-cose-profiles is a tuple of tuples")
        # A draft-08 QueryRequest decoded in compat mode has no SUIT COSE profiles (and maybe no suites).
        legacy_empty = self.compat
        if not known_suites and (suites or not legacy_empty):
            cbor_suites = F.CIPHER_SUITES.encode(suites)
            F.CIPHER_SUITES.read(cbor_suites, "supported-teep-cipher-suites", False)
            SUITE_OFFERS.remember(suites, lambda: cbor.encode(cbor_suites))
        if not known_profiles and (profiles or not legacy_empty):
            cbor_profiles = F.SUIT_PROFILES.encode(profiles)
            F.SUIT_PROFILES.read(cbor_profiles, "supported-suit-cose-profiles", False)
            PROFILE_OFFERS.remember(profiles, lambda: cbor.encode(cbor_profiles))
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

    def _positional_encoded(self) -> list[bytes]:
        suites, profiles = self.supported_cipher_suites, self.supported_suit_cose_profiles
        if not suites or not profiles:
            raise EncodeError("QueryRequest without cipher suites or SUIT COSE profiles (a decoded draft-08 form)")
        return [
            SUITE_OFFERS.get(suites) or cbor.encode([s.to_cbor() for s in suites]),
            PROFILE_OFFERS.get(profiles) or cbor.encode([list(p) for p in profiles]),
            uint(int(self.data_item_requested)),
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
        F.ERR_CODE.read(self.err_code, "err-code", self.compat)
        self._check_rules()

    def _check_rules(self) -> None:
        required = ERROR_REQUIRED_OPTIONS.get(ErrorCode(self.err_code))
        if required is not None and getattr(self, required) is None:
            raise ValidationError(f"Error {ErrorCode(self.err_code).name} must carry {required}")

    def positional_cbor(self) -> list[Any]:
        return [int(self.err_code)]

    def _positional_encoded(self) -> list[bytes]:
        return [uint(int(self.err_code))]


Message = QueryRequest | QueryResponse | Update | Success | Error

_CLASSES: Final[dict[int, type[_Message]]] = {
    MessageType.QUERY_REQUEST: QueryRequest,
    MessageType.QUERY_RESPONSE: QueryResponse,
    MessageType.UPDATE: Update,
    MessageType.SUCCESS: Success,
    MessageType.ERROR: Error,
}
_POSITIONAL_COUNT: Final = {QueryRequest: 3, QueryResponse: 0, Update: 0, Success: 0, Error: 1}
_DATA_ITEMS: Final = {item: DataItem(item) for item in range(16)}  # every combination of the defined bits
_SUITES_FAST: Final = F.CIPHER_SUITES.fast or (lambda value: SLOW)
_PROFILES_FAST: Final = F.SUIT_PROFILES.fast or (lambda value: SLOW)


def decode_message(data: bytes, *, compat: bool = False) -> Message:
    """Decode and validate one bare TEEP message (the COSE payload). Raises DecodeError / ValidationError."""
    return message_from_cbor(cbor.decode(data), compat=compat)


def message_from_cbor(obj: Any, *, compat: bool = False) -> Message:
    """Validate an already decoded TEEP message array and build the typed message."""
    if (type(obj) is not list and not F.is_array(obj)) or len(obj) < 2:
        raise ValidationError("a TEEP message is an array [type, options, ...]")
    msg_type, options = obj[0], obj[1]
    if (type(msg_type) is not int or not 0 <= msg_type <= 255) and not F.is_uint(msg_type, 255):
        raise ValidationError("the TEEP message type is an unsigned integer")
    cls = _CLASSES.get(msg_type)
    if cls is None:
        raise UnknownMessageTypeError(f"unknown TEEP message type {msg_type}")
    if type(options) is not dict and not isinstance(options, Mapping):
        raise ValidationError("the TEEP options are a map")
    quirks: list[str] = []
    positional = list(obj[2:])
    if cls is QueryRequest and len(positional) == 1 and compat:
        positional, options = _legacy_query_request(positional, dict(options), quirks)
    if len(positional) != _POSITIONAL_COUNT[cls]:
        raise ValidationError(f"a {cls.__name__} has {2 + _POSITIONAL_COUNT[cls]} elements, not {len(obj)}")
    values = cls._field_state()
    extensions: dict[int, Any] = {}
    table = cls._option_table(compat) if compat else cls.OPTIONS
    for label, value in options.items():
        if (type(label) is not int or not 0 <= label <= _UINT64_MAX) and not F.is_uint(label):
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
        fast = codec.fast
        decoded = fast(value) if fast is not None else SLOW
        values[name] = decoded if decoded is not SLOW else codec.decode(value, f"{name} ({label})", compat)
        if compat:
            if label in cls.COMPAT_OPTIONS:
                quirks.append(f"option {label} ({name}) is reserved in draft -26; read for compatibility")
            if label == L.TC_LIST and not value:
                quirks.append("empty tc-list (the CDDL requires one or more entries)")
    if positional:
        values.update(_positional(cls, positional, compat))
    values["extensions"] = extensions
    values["compat"] = compat
    values["option_order"] = tuple(map(int, options))
    values["quirks"] = tuple(quirks)
    # Every element has been validated above, exactly as the constructor would: only cross-field rules remain.
    return cls._from_validated(values)  # type: ignore[return-value]


def _positional(cls: type[_Message], positional: list[Any], compat: bool) -> dict[str, Any]:
    if cls is QueryRequest:
        suites, profiles, items = positional
        if (type(items) is not int or not 0 <= items <= _UINT64_MAX) and not F.is_uint(items):
            raise ValidationError("data-item-requested is an unsigned integer bitmap")
        # null in place of either array: only a draft-08 form decoded in compat mode may leave them empty.
        offered_suites: Any = () if suites is None else _SUITES_FAST(suites)
        if offered_suites is SLOW:
            offered_suites = F.CIPHER_SUITES.decode(suites, "supported-teep-cipher-suites", compat)
        offered_profiles: Any = () if profiles is None else _PROFILES_FAST(profiles)
        if offered_profiles is SLOW:
            offered_profiles = F.SUIT_PROFILES.decode(profiles, "supported-suit-cose-profiles", compat)
        if not compat and not offered_suites:
            raise ValidationError("supported-teep-cipher-suites must have at least one element")
        if not compat and not offered_profiles:
            raise ValidationError("supported-suit-cose-profiles must have at least one element")
        data_items = _DATA_ITEMS.get(items) if type(items) is int else None
        return {
            "supported_cipher_suites": offered_suites,
            "supported_suit_cose_profiles": offered_profiles,
            "data_item_requested": data_items if data_items is not None else DataItem(items),
        }
    if cls is Error:
        return {"err_code": F.ERR_CODE.read(positional[0], "err-code", compat)}
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
