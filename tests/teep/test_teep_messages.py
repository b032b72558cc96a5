"""The TEEP message model against the draft's Appendix D and libteep's vectors, plus the CDDL rules one by one."""

from __future__ import annotations

import pytest
from teep_support import TOKEN, vector_hex

from veritee import cbor
from veritee.errors import DecodeError, EncodeError, ValidationError
from veritee.teep.codes import (
    ALL_SUIT_COSE_PROFILES,
    MTI_CIPHER_SUITES,
    SUITE_SIGN1_ES256,
    SUITE_SIGN1_ESP256,
    CipherSuite,
    CoseType,
    DataItem,
    ErrorCode,
    MessageType,
    OptionLabel,
)
from veritee.teep.fields import RequestedTc, SystemPropertyClaims
from veritee.teep.messages import (
    Error,
    QueryRequest,
    QueryResponse,
    Success,
    UnknownMessageTypeError,
    Update,
    decode_message,
    message_from_cbor,
)

DRAFT = ["D1_query_request", "D3_query_response", "D4_update", "D5_teep_success", "D6_teep_error"]


@pytest.mark.parametrize("name", DRAFT)
@pytest.mark.parametrize("compat", [False, True])
def test_draft_examples_round_trip_byte_for_byte(name: str, compat: bool) -> None:
    data = vector_hex("teep-protocol", f"{name}.hex")
    message = decode_message(data, compat=compat)
    assert message.encode() == data
    assert message.quirks == ()
    assert message.extensions == {}
    assert decode_message(message.encode()) == message


def test_d1_query_request_content() -> None:
    msg = decode_message(vector_hex("teep-protocol", "D1_query_request.hex"))
    assert isinstance(msg, QueryRequest)
    assert msg.type is MessageType.QUERY_REQUEST
    assert msg.token == TOKEN
    assert msg.versions == (0,)
    assert msg.supported_cipher_suites == MTI_CIPHER_SUITES
    assert msg.supported_suit_cose_profiles == ALL_SUIT_COSE_PROFILES
    assert msg.data_item_requested == DataItem.ATTESTATION | DataItem.TRUSTED_COMPONENTS
    assert msg.challenge is None


def test_d3_query_response_content() -> None:
    msg = decode_message(vector_hex("teep-protocol", "D3_query_response.hex"))
    assert isinstance(msg, QueryResponse)
    assert msg.selected_version == 0
    assert msg.attestation_payload == b""
    assert msg.tc_list is not None and len(msg.tc_list) == 1
    entry = msg.tc_list[0]
    assert entry.component_id == (bytes.fromhex("0102030405060708090a0b0c0d0e0f"),)
    assert entry.image_digest == (
        -16,
        bytes.fromhex("a7fd6593eac32eb4be578278e6540c5c09cfd7d4d234973054833b2b93030609"),
    )


def test_d4_update_carries_one_suit_envelope() -> None:
    msg = decode_message(vector_hex("teep-protocol", "D4_update.hex"))
    assert isinstance(msg, Update)
    assert msg.manifest_list is not None and len(msg.manifest_list) == 1
    envelope = cbor.decode(msg.manifest_list[0])
    assert set(envelope) == {2, 3}


def test_d5_d6_content() -> None:
    success = decode_message(vector_hex("teep-protocol", "D5_teep_success.hex"))
    assert isinstance(success, Success) and success.token == TOKEN and success.msg is None
    error = decode_message(vector_hex("teep-protocol", "D6_teep_error.hex"))
    assert isinstance(error, Error)
    assert error.err_code is ErrorCode.MANIFEST_PROCESSING_FAILED
    assert error.err_msg == "disk-full"


@pytest.mark.parametrize("name", ["query_request", "teep_error", "teep_success", "update"])
def test_libteep_current_messages_round_trip(name: str) -> None:
    data = vector_hex("libteep", f"{name}.hex")
    message = decode_message(data)
    assert message.encode() == data
    assert message.quirks == ()


def test_libteep_update_equals_the_draft_example() -> None:
    assert decode_message(vector_hex("libteep", "update.hex")) == decode_message(
        vector_hex("teep-protocol", "D4_update.hex")
    )


def test_libteep_query_request_uses_the_older_suites() -> None:
    msg = decode_message(vector_hex("libteep", "query_request.hex"))
    assert isinstance(msg, QueryRequest)
    assert msg.supported_cipher_suites == (SUITE_SIGN1_ES256, CipherSuite.sign1(-8))


def test_libteep_query_response_option_5() -> None:
    data = vector_hex("libteep", "query_response.hex")
    strict = decode_message(data)
    assert isinstance(strict, QueryResponse)
    # Strict: option 5 is reserved, so it is ignored but kept (and re-encoded in place).
    assert strict.selected_cipher_suite is None
    assert strict.extensions == {5: [[18, -7]]}
    assert strict.encode() == data
    compat = decode_message(data, compat=True)
    assert isinstance(compat, QueryResponse)
    assert compat.selected_cipher_suite == SUITE_SIGN1_ES256
    assert compat.extensions == {}
    assert any("option 5" in q for q in compat.quirks)
    assert compat.encode() == data
    assert compat.tc_list is not None and [t.component_id for t in compat.tc_list] == [
        (bytes.fromhex("0102030405060708090a0b0c0d0e0f"),),
        (bytes.fromhex("1102030405060708090a0b0c0d0e0f"),),
    ]
    assert compat.tc_list[1].claims[28] == [1, 0, 0]


@pytest.mark.parametrize("name", ["ta_update", "ta_update2"])
def test_libteep_pre_draft05_integer_token(name: str) -> None:
    data = vector_hex("libteep", f"{name}.hex")
    with pytest.raises(ValidationError, match="token"):
        decode_message(data)
    msg = decode_message(data, compat=True)
    assert isinstance(msg, Update)
    assert msg.token is None
    assert msg.extensions == {20: 2004318072}
    assert any("integer token" in q for q in msg.quirks)
    assert msg.encode() == data
    if name == "ta_update2":
        assert msg.unneeded_manifest_list == ((b"\x01\x02\x03",),)


def test_libteep_draft08_query_requests() -> None:
    err1 = vector_hex("libteep", "query_request_err1.hex")
    err2 = vector_hex("libteep", "query_request_err2.hex")
    for data in (err1, err2):
        with pytest.raises(ValidationError, match="5 elements"):
            decode_message(data)
    old_version = decode_message(err1, compat=True)
    assert isinstance(old_version, QueryRequest)
    assert old_version.versions == (1,)
    assert old_version.supported_cipher_suites == ()
    assert any("draft-08" in q for q in old_version.quirks)
    old_suites = decode_message(err2, compat=True)
    assert isinstance(old_suites, QueryRequest)
    # [null, A256GCM, null] = encrypt-only: an operation our signing suites never match.
    assert old_suites.supported_cipher_suites == (CipherSuite(((int(CoseType.ENCRYPT0), 3),)),)
    with pytest.raises(EncodeError, match="draft-08"):
        old_suites.encode()


def test_libteep_short_token_is_rejected_in_every_mode() -> None:
    data = vector_hex("libteep", "query_request_err3.hex")
    with pytest.raises(ValidationError, match="5 elements"):
        decode_message(data)
    with pytest.raises(ValidationError, match=r"8\.\.64 bytes, got 2"):
        decode_message(data, compat=True)


# --- CDDL and prose rules -----------------------------------------------------------------------------------------
def _qr(options: dict[object, object]) -> list[object]:
    return [1, {20: TOKEN, **options}, [[[18, -9]]], [[-16, -9, -29, -65534]], 3]


@pytest.mark.parametrize(
    ("obj", "match"),
    [
        (_qr({"20": b""}), "labels are unsigned"),
        ([1, {20: b"\x00" * 7}, [[[18, -9]]], [[-16, -9]], 3], "8..64"),
        ([1, {20: b"\x00" * 65}, [[[18, -9]]], [[-16, -9]], 3], "8..64"),
        (_qr({2: b"\x00" * 7}), "8..512"),
        (_qr({2: b"\x00" * 513}), "8..512"),
        (_qr({3: []}), "at least one"),
        (_qr({3: [2**32]}), "unsigned integer up to"),
        (_qr({21: [-1]}), "unsigned"),
        (_qr({13: b"bytes"}), "text string"),
        (_qr({19: [b"\xff"]}), "well-formed CBOR"),
        ([1, {}, [], [[-16]], 3], "at least one"),
        ([1, {}, [[[18]]], [[-16]], 3], "two integers"),
        ([1, {}, [[[18, -9]]], [], 3], "at least one"),
        ([1, {}, [[[18, -9]]], [["x"]], 3], "COSE algorithm numbers"),
        ([1, {}, [[[18, -9]]], [[-16]], -1], "bitmap"),
        ([1, {}, [[[18, -9]]], [[-16]], 3, 4], "5 elements"),
        ([2, {8: []}], "at least one"),
        ([2, {8: [{1: 2}]}], "system-component-id"),
        ([2, {8: [{0: [1]}]}], "byte strings"),
        ([2, {14: [{17: 1}]}], "component-id"),
        ([2, {14: [{16: [], 18: True}]}], "have-binary true requires"),
        ([2, {14: [{16: [], 99: 1}]}], "unexpected keys"),
        ([2, {6: 2**32}], "up to"),
        ([3, {10: [b"\x01"]}], "SUIT_Envelope is a map"),
        ([3, {10: [bytes.fromhex("d86ba0")]}], None),
        ([3, {23: 11}], "unknown error code"),
        ([3, {12: ""}], "1..128"),
        ([3, {22: "x" * 36}], "1..35"),
        ([5, {11: "é" * 65}], "1..128"),
        ([6, {}, 5], "supported_cipher_suites"),
        ([6, {}, 3], "supported_freshness_mechanisms"),
        ([6, {}, 4], "versions"),
        ([6, {}, 8], "supported_suit_cose_profiles"),
        ([6, {}], "3 elements"),
        ([6, {}, 99], "unknown error code"),
        ([4, {}], "unknown TEEP message type"),
        ([7, {}], "unknown TEEP message type"),
        ([1, []], "options are a map"),
        ({1: 2}, "an array"),
        ([True, {}], "unsigned integer"),
    ],
)
def test_cddl_violations(obj: object, match: str | None) -> None:
    if match is None:  # a tagged (107) SUIT_Envelope is fine
        assert message_from_cbor(obj).encode() == cbor.encode(obj)
        return
    with pytest.raises(ValidationError, match=match):
        message_from_cbor(obj)


def test_unknown_message_type_error_is_a_validation_error() -> None:
    with pytest.raises(UnknownMessageTypeError):
        decode_message(cbor.encode([4, {}]))


def test_error_codes_with_their_required_options_are_valid() -> None:
    for obj in ([6, {1: [[[18, -9]]]}, 5], [6, {21: [0]}, 3], [6, {3: [0]}, 4], [6, {4: [[-16, -9]]}, 8]):
        assert message_from_cbor(obj).encode() == cbor.encode(obj)


def test_unknown_and_misplaced_options_are_ignored_but_kept_in_order() -> None:
    obj = [5, {99: "future", 20: TOKEN, 10: [b"\xa0"], 1000: {1: 2}}]
    msg = decode_message(cbor.encode(obj))
    assert isinstance(msg, Success)
    assert msg.token == TOKEN
    assert msg.extensions == {99: "future", 10: [b"\xa0"], 1000: {1: 2}}
    assert msg.encode() == cbor.encode(obj)


def test_built_messages_encode_options_in_label_order() -> None:
    msg = Success(token=TOKEN, msg="ok", extensions={30: 1})
    assert cbor.decode(msg.encode()) == [5, {11: "ok", 20: TOKEN, 30: 1}]
    assert list(cbor.decode(msg.encode())[1]) == [11, 20, 30]


def test_constructors_validate_like_the_decoder() -> None:
    with pytest.raises(ValidationError, match=r"8\.\.64"):
        Success(token=b"short")
    with pytest.raises(ValidationError, match="must carry supported_cipher_suites"):
        Error(err_code=ErrorCode.UNSUPPORTED_CIPHER_SUITES)
    with pytest.raises(ValidationError, match="needs compat=True"):
        QueryResponse(selected_cipher_suite=SUITE_SIGN1_ES256)
    with pytest.raises(ValidationError, match="set 'token' instead"):
        Success(extensions={int(OptionLabel.TOKEN): TOKEN})
    with pytest.raises(ValidationError, match="tuple of CipherSuite"):
        QueryRequest(
            supported_cipher_suites=[SUITE_SIGN1_ESP256],  # type: ignore[arg-type]
            supported_suit_cose_profiles=ALL_SUIT_COSE_PROFILES,
            data_item_requested=DataItem.ATTESTATION,
        )
    with pytest.raises(ValidationError, match="at least one"):
        QueryRequest(supported_cipher_suites=(), supported_suit_cose_profiles=(), data_item_requested=DataItem.NONE)
    with pytest.raises(ValidationError, match="have-binary"):
        RequestedTc(component_id=(b"x",), have_binary=True)
    with pytest.raises(ValidationError, match="system-component-id"):
        SystemPropertyClaims({3: b""})


def test_query_response_with_every_option_round_trips() -> None:
    msg = QueryResponse(
        token=TOKEN,
        selected_version=0,
        attestation_payload_format="application/eat+cwt",
        attestation_payload=b"\x01\x02",
        suit_reports=(cbor.encode({99: [[-16, b"\x00" * 32]], 3: [], 4: True}),),
        tc_list=(SystemPropertyClaims({0: [b"a"], 3: cbor.encode([-16, b"\x11" * 32])}),),
        requested_tc_list=(RequestedTc((b"tc",), 3, True), RequestedTc((b"other",))),
        unneeded_manifest_list=((b"old",),),
        ext_list=(7,),
    )
    again = decode_message(msg.encode())
    assert again == msg
    assert again.encode() == msg.encode()


def test_compat_empty_tc_list() -> None:
    data = cbor.encode([2, {20: TOKEN, 8: []}])
    with pytest.raises(ValidationError, match="at least one"):
        decode_message(data)
    msg = decode_message(data, compat=True)
    assert isinstance(msg, QueryResponse)
    assert msg.tc_list == ()
    assert any("empty tc-list" in q for q in msg.quirks)
    assert msg.encode() == data


def test_malformed_cbor_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_message(b"\x82\x05")
    with pytest.raises(DecodeError, match="trailing"):
        decode_message(vector_hex("teep-protocol", "D5_teep_success.hex") + b"\x00")
