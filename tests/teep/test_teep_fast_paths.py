"""The shortcuts behind fast TEEP encoding and decoding give exactly the answers of the full code they skip.

* every codec's ``fast`` decoder returns what ``decode`` returns, or declines (``SLOW``), never more lenient;
* ``encode()`` (built from encoded parts) is ``cbor.encode(to_cbor())`` byte for byte;
* a decoded message (built without re-running the constructor's checks) is one the public constructor accepts;
* the memos (offers by identity, manifests by content, suites by value) never let an invalid value through.
"""

from __future__ import annotations

import dataclasses
from enum import IntEnum, IntFlag
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from teep_support import TOKEN, vector_hex
from test_teep_properties import errors, mutated, query_requests, query_responses, successes, updates

from veritee import cbor
from veritee.cose import Algorithm, CoseKey, sign1
from veritee.errors import DecodeError, EncodeError, ValidationError
from veritee.teep import fields as F
from veritee.teep.codes import ALL_SUIT_COSE_PROFILES, MTI_CIPHER_SUITES, CipherSuite, DataItem, ErrorCode
from veritee.teep.cose_wrap import open_message, sign_message
from veritee.teep.encoding import array_head, encode_item, head, map_head, uint
from veritee.teep.messages import Message, QueryRequest, Success, Update, decode_message, message_from_cbor

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MESSAGES = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Small(IntEnum):
    ONE = 1
    TWENTY = 20


class Bytes(bytes):
    pass


scalars = (
    st.integers(-(2**65), 2**65)
    | st.integers(-20, 300)
    | st.booleans()
    | st.none()
    | st.floats(allow_nan=False)
    | st.binary(max_size=80)
    | st.text(max_size=40)
    | st.sampled_from([Small.ONE, Small.TWENTY, DataItem.ATTESTATION, ErrorCode.TEMPORARY_ERROR, Bytes(b"x" * 9)])
    | st.binary(max_size=12).map(bytearray)
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.lists(children, max_size=5).map(tuple)
        | st.dictionaries(st.integers(0, 30), children, max_size=3)
    ),
    max_leaves=25,
)
# Shapes close to the real ones, so that the shortcuts' accepting branches are exercised too.
operations = st.tuples(st.sampled_from([18, 98, True, 18.0]), st.integers(-70000, 30))
near = st.one_of(
    st.lists(st.lists(operations | operations.map(list), max_size=2), max_size=3),
    st.lists(st.lists(st.integers(-70000, 30) | st.booleans(), max_size=4), max_size=4),
    st.lists(st.binary(max_size=9) | st.text(max_size=3), max_size=3),
    st.lists(st.integers(-1, 2**33) | st.booleans(), max_size=4),
    st.integers(-1, 300) | st.booleans(),
)

CODECS = {
    "token": F.TOKEN,
    "challenge": F.CHALLENGE,
    "payload": F.PAYLOAD,
    "text": F.TEXT,
    "msg": F.MSG_TEXT,
    "lang": F.LANG_TEXT,
    "version": F.VERSION,
    "versions": F.VERSIONS,
    "ext-list": F.EXT_LIST,
    "freshness": F.FRESHNESS,
    "suite": F.CIPHER_SUITE,
    "suites": F.CIPHER_SUITES,
    "profiles": F.SUIT_PROFILES,
    "component-ids": F.COMPONENT_IDS,
    "err-code": F.ERR_CODE,
    "manifests": F.MANIFESTS,
}


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (``1 == True`` but they are not the same answer)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, CipherSuite):
        return same(a.operations, b.operations)
    return bool(a == b)


@SETTINGS
@given(st.sampled_from(sorted(CODECS)), values | near, st.booleans())
def test_fast_decoders_answer_like_the_full_decoders(name: str, value: Any, compat: bool) -> None:
    codec = CODECS[name]
    for fast in (codec.fast, codec.fast_built):
        if fast is None:
            continue
        answer = fast(value)
        try:
            expected = codec.decode(value, name, compat)
        except ValidationError:
            assert answer is F.SLOW, f"{name}: the shortcut accepted {value!r}, which the decoder rejects"
            continue
        assert answer is F.SLOW or same(answer, expected), f"{name}: {answer!r} != {expected!r}"
        assert same(codec.read(value, name, compat), expected)


generated = st.one_of(query_requests, query_responses, updates, successes, errors())


@MESSAGES
@given(generated)
def test_encode_is_the_encoding_of_to_cbor(message: Message) -> None:
    assert message.encode() == cbor.encode(message.to_cbor())
    decoded = decode_message(message.encode())
    assert decoded.encode() == cbor.encode(decoded.to_cbor())
    # A given option order and extensions take the general path; it must agree too.
    labels = list(cbor.decode(message.encode())[1])
    reordered = dataclasses.replace(message, option_order=tuple(reversed(labels)), extensions={999: [1, "x"]})
    assert reordered.encode() == cbor.encode(reordered.to_cbor())


def _encoding(message: Message) -> bytes | str:
    try:
        return message.encode()
    except EncodeError as exc:  # only a decoded draft-08 QueryRequest cannot be encoded
        return str(exc)


def _accepted_by_the_constructor(message: Message) -> None:
    rebuilt = dataclasses.replace(message)  # runs __init__ and every check of the public constructor
    assert rebuilt == message
    bookkeeping = (rebuilt.quirks, rebuilt.option_order, rebuilt.compat)
    assert bookkeeping == (message.quirks, message.option_order, message.compat)
    assert _encoding(rebuilt) == _encoding(message)


@SETTINGS
@given(mutated(), st.booleans())
def test_decoded_messages_are_ones_the_constructor_accepts(data: bytes, compat: bool) -> None:
    try:
        message = decode_message(data, compat=compat)
    except (DecodeError, ValidationError):
        return
    _accepted_by_the_constructor(message)


@MESSAGES
@given(generated, st.booleans())
def test_generated_messages_decode_to_ones_the_constructor_accepts(message: Message, compat: bool) -> None:
    _accepted_by_the_constructor(decode_message(message.encode(), compat=compat))


def test_vectors_decode_to_ones_the_constructor_accepts() -> None:
    for name in ("D1_query_request", "D3_query_response", "D4_update", "D5_teep_success", "D6_teep_error"):
        for compat in (False, True):
            _accepted_by_the_constructor(decode_message(vector_hex("teep-protocol", f"{name}.hex"), compat=compat))
    for name in ("query_response", "ta_update", "ta_update2", "query_request_err1", "query_request_err2"):
        _accepted_by_the_constructor(decode_message(vector_hex("libteep", f"{name}.hex"), compat=True))


@pytest.mark.parametrize("position", [2, 3])
def test_null_instead_of_an_offer_array_needs_compat(position: int) -> None:
    obj: list[Any] = [1, {20: TOKEN}, [[[18, -9]]], [[-16, -9, -29, -65534]], 3]
    obj[position] = None
    with pytest.raises(ValidationError, match="at least one element"):
        message_from_cbor(obj)
    message = message_from_cbor(obj, compat=True)
    assert isinstance(message, QueryRequest)
    assert not (message.supported_cipher_suites and message.supported_suit_cose_profiles)


def _query_request(suites: Any, profiles: Any = ALL_SUIT_COSE_PROFILES) -> QueryRequest:
    return QueryRequest(supported_cipher_suites=suites, supported_suit_cose_profiles=profiles,
                        data_item_requested=DataItem.ATTESTATION)  # fmt: skip


def test_offers_are_remembered_by_identity_never_by_equality() -> None:
    good = (CipherSuite(((18, 1),)),)
    _query_request(good)
    _query_request(good)  # remembered: same object, same (immutable) content
    bad = (CipherSuite(((18, True),)),)
    assert bad == good  # equal, yet a bool is not a COSE algorithm number
    with pytest.raises(ValidationError, match="two integers"):
        _query_request(bad)
    profiles = ((-16, 1),)
    _query_request(MTI_CIPHER_SUITES, profiles)
    with pytest.raises(ValidationError, match="COSE algorithm numbers"):
        _query_request(MTI_CIPHER_SUITES, ((-16, True),))
    msg = _query_request(good, profiles)
    assert msg.encode() == cbor.encode(msg.to_cbor())


def test_offers_with_mutable_parts_are_checked_every_time() -> None:
    operation = [18, -9]
    suites = (CipherSuite((operation,)),)  # type: ignore[arg-type]  # a list where a tuple belongs
    _query_request(suites)
    _query_request(suites)
    operation[1] = True
    with pytest.raises(ValidationError, match="two integers"):
        _query_request(suites)


def test_known_manifests_skip_decoding_only_when_building() -> None:
    envelope = cbor.encode(cbor.CBORTag(107, {2: b"auth", 3: b"manifest"}))
    Update(token=TOKEN, manifest_list=(envelope,))
    Update(token=TOKEN, manifest_list=(envelope,))  # the same bytes: known valid
    for bad in (b"\x01", envelope + b"\x00", cbor.encode([1])):
        with pytest.raises(ValidationError):
            Update(token=TOKEN, manifest_list=(envelope, bad))
        with pytest.raises(ValidationError):
            decode_message(cbor.encode([3, {10: [envelope, bad]}]))
    assert F.MANIFESTS.fast is None  # received manifests are always decoded


def test_single_operation_suites_are_shared_but_never_confused() -> None:
    first = F.CIPHER_SUITES.read([[[18, -9]], [[18, -19]]], "suites", False)
    again = F.CIPHER_SUITES.read([[[18, -9]], [[18, -19]]], "suites", False)
    assert first == MTI_CIPHER_SUITES and all(a is b for a, b in zip(first, again, strict=True))
    with pytest.raises(ValidationError):
        F.CIPHER_SUITES.read([[[18, True]]], "suites", False)
    with pytest.raises(ValidationError):
        F.CIPHER_SUITES.read([[[True, -9]]], "suites", False)
    assert F.CIPHER_SUITES.read([[(18, 1)]], "suites", False)[0].operations == ((18, 1),)


def test_data_item_union_is_the_flag_union() -> None:
    operands: list[Any] = [*DataItem, *(DataItem(v) for v in range(16)), 0, 5, 16, 2**40, -1]
    for left in list(DataItem) + [DataItem(v) for v in range(16)]:
        for right in operands:
            ours, theirs = left | right, IntFlag.__or__(left, right)
            assert ours == theirs and type(ours) is type(theirs) and repr(ours) == repr(theirs)
    assert DataItem.ATTESTATION.__or__("x") is NotImplemented  # type: ignore[operator]
    assert DataItem(3) == 3 | DataItem.ATTESTATION


@pytest.mark.parametrize("alg", [Algorithm.ESP256, Algorithm.Ed25519])
def test_signing_with_prepared_headers_is_plain_sign1(alg: Algorithm) -> None:
    key = CoseKey.generate(alg)
    other = CoseKey.generate(alg)
    payload = Success(token=TOKEN).encode()
    for _ in range(2):  # the second round uses the prepared headers
        assert sign_message(payload, key) == sign1(payload, key, protected={1: int(alg)},
                                                   unprotected={4: key.thumbprint()})  # fmt: skip
        assert sign_message(payload, key, kid=False) == sign1(payload, key, protected={1: int(alg)}, unprotected={})
        assert sign_message(payload, key, kid=b"k") == sign1(
            payload, key, protected={1: int(alg)}, unprotected={4: b"k"}
        )
        assert sign_message(payload, other) == sign1(payload, other, protected={1: int(alg)},
                                                     unprotected={4: other.thumbprint()})  # fmt: skip
    verified = open_message(sign_message(payload, other), [key.public(), other.public()])
    assert verified.signer == other.public() and verified.kid == other.thumbprint()


def test_open_message_dispatch_on_the_first_bytes() -> None:
    key = CoseKey.generate(Algorithm.Ed25519)
    signed = sign_message(Success(token=TOKEN), key)
    anchors = [key.public()]
    assert open_message(bytearray(signed), anchors).message == Success(token=TOKEN)  # type: ignore[arg-type]
    untagged = cbor.encode(cbor.decode(signed).value)
    assert open_message(untagged, anchors).message == Success(token=TOKEN)
    for broken in (signed[:-1], b"\xd2", b"\xd8\x62", b"\xd8\x62\x80", b"\xd2\x80", signed + b"\x00"):
        with pytest.raises(DecodeError):
            open_message(broken, anchors)
    with pytest.raises(DecodeError, match="not tag 17"):
        open_message(cbor.encode(cbor.CBORTag(17, [])), anchors)


@SETTINGS
@given(values)
def test_encoding_parts_are_what_cbor_encode_writes(value: Any) -> None:
    try:
        expected = cbor.encode(value)
    except EncodeError:
        with pytest.raises(EncodeError):
            encode_item(value)
        return
    assert encode_item(value) == expected
    if isinstance(value, int) and not isinstance(value, bool):
        assert uint(value) == expected


@pytest.mark.parametrize("n", [0, 1, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1])
def test_heads_are_preferred_serialization(n: int) -> None:
    unsigned = cbor.encode(n)  # major type 0: the same argument encoding as every other head
    assert head(0, n) == unsigned == uint(n)
    for major in (2, 4, 5):
        assert head(major, n) == bytes([(major << 5) | unsigned[0]]) + unsigned[1:]
    assert array_head(n) == head(4, n) and map_head(n) == head(5, n)
    if n < 300:
        assert array_head(n) == cbor.encode([0] * n)[: len(unsigned)]
        assert head(2, n) == cbor.encode(b"\x00" * n)[: len(unsigned)]
