"""Property tests: random and mutated bytes only ever raise our typed errors; generated messages round-trip."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from teep_support import vector_hex
from teep_world import World

from veritee import cbor
from veritee.errors import DecodeError, EncodeError, ValidationError, VeriteeError
from veritee.teep.agent import AgentState
from veritee.teep.codes import ALL_SUIT_COSE_PROFILES, CipherSuite, DataItem, ErrorCode
from veritee.teep.cose_wrap import peek_message
from veritee.teep.eat import decode_eat
from veritee.teep.events import ErrorSent
from veritee.teep.fields import RequestedTc, SystemPropertyClaims
from veritee.teep.messages import Error, Message, QueryRequest, QueryResponse, Success, Update, decode_message
from veritee.teep.tam import TamState

VECTORS = [
    ("teep-protocol", "D1_query_request.hex"),
    ("teep-protocol", "D3_query_response.hex"),
    ("teep-protocol", "D4_update.hex"),
    ("teep-protocol", "D6_teep_error.hex"),
    ("libteep", "query_response.hex"),
    ("libteep", "ta_update2.hex"),
    ("libteep", "query_request_err2.hex"),
    ("libteep", "query_response_cose.hex"),
    ("libteep", "evidence_cose.hex"),
]
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _decode_any(data: bytes, compat: bool) -> None:
    try:
        message = decode_message(data, compat=compat)
    except (DecodeError, ValidationError):
        return
    try:
        message.encode()
    except EncodeError:
        assert message.compat and isinstance(message, QueryRequest)  # only a draft-08 form cannot be re-encoded


@SETTINGS
@given(st.binary(max_size=300), st.booleans())
def test_random_bytes_raise_only_typed_errors(data: bytes, compat: bool) -> None:
    _decode_any(data, compat)
    with contextlib.suppress(DecodeError, ValidationError):
        peek_message(data)
    with contextlib.suppress(DecodeError, ValidationError):
        decode_eat(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    parts = draw(st.sampled_from(VECTORS))
    data = bytearray(vector_hex(*parts))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "cut":
            del data[pos:]
        elif kind == "insert":
            data.insert(pos, draw(st.integers(0, 255)))
        elif len(data) > 1:
            del data[pos]
        if not data:
            data.append(0)
    return bytes(data)


@SETTINGS
@given(mutated(), st.booleans())
def test_mutated_vectors_raise_only_typed_errors(data: bytes, compat: bool) -> None:
    _decode_any(data, compat)
    try:
        peek = peek_message(data)
    except (DecodeError, ValidationError):
        return
    _decode_any(peek.payload, compat)


# --- generated messages -------------------------------------------------------------------------------------------
tokens = st.binary(min_size=8, max_size=64)
challenges = st.binary(min_size=8, max_size=512)
texts = st.text(min_size=1, max_size=40)
uint32 = st.integers(0, 2**32 - 1)
component_ids = st.lists(st.binary(max_size=8), max_size=3).map(tuple)
suites = st.lists(st.tuples(st.sampled_from([18, 98, 16]), st.integers(-70000, 30)), min_size=1, max_size=2).map(
    lambda ops: CipherSuite(tuple(ops))
)
profiles = st.lists(st.integers(-70000, 30), min_size=1, max_size=4).map(tuple)
reports = st.builds(lambda n: cbor.encode({99: [[-16, bytes(32)]], 2: n, 3: [], 4: True}), tokens)
manifests = st.dictionaries(st.integers(0, 5), st.binary(max_size=4), max_size=3).map(cbor.encode)
claims = st.builds(
    lambda cid, extra: SystemPropertyClaims({0: list(cid), **extra}),
    component_ids,
    st.dictionaries(st.integers(4, 30), st.integers(0, 9) | st.binary(max_size=4), max_size=3),
)
requested = st.builds(
    lambda cid, seq, have: RequestedTc(cid, seq, have if seq is not None else (None if have else have)),
    component_ids,
    st.none() | st.integers(0, 2**64 - 1),
    st.none() | st.booleans(),
)
freshness = st.integers(0, 3)
extensions = st.dictionaries(st.integers(24, 1000), st.integers() | st.text(max_size=5), max_size=2)


def opt(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def tup(strategy: st.SearchStrategy[Any], max_size: int = 3) -> st.SearchStrategy[Any]:
    return st.lists(strategy, min_size=1, max_size=max_size).map(tuple)


query_requests = st.builds(
    QueryRequest,
    token=opt(tokens),
    supported_cipher_suites=tup(suites),
    supported_suit_cose_profiles=tup(profiles) | st.just(ALL_SUIT_COSE_PROFILES),
    data_item_requested=st.integers(0, 15).map(DataItem),
    supported_freshness_mechanisms=opt(tup(st.integers(0, 3))),
    challenge=opt(challenges),
    versions=opt(tup(uint32)),
    attestation_payload_format=opt(texts),
    attestation_payload=opt(st.binary(max_size=16)),
    suit_reports=opt(tup(reports, 2)),
    extensions=extensions,
)
query_responses = st.builds(
    QueryResponse,
    token=opt(tokens),
    selected_version=opt(uint32),
    attestation_payload_format=opt(texts),
    attestation_payload=opt(st.binary(max_size=16)),
    suit_reports=opt(tup(reports, 2)),
    tc_list=opt(tup(claims)),
    requested_tc_list=opt(tup(requested)),
    unneeded_manifest_list=opt(tup(component_ids)),
    ext_list=opt(tup(uint32)),
    extensions=extensions,
)
updates = st.builds(
    Update,
    token=opt(tokens),
    unneeded_manifest_list=opt(tup(component_ids)),
    manifest_list=opt(tup(manifests)),
    attestation_payload_format=opt(texts),
    attestation_payload=opt(st.binary(max_size=16)),
    err_code=opt(st.sampled_from(ErrorCode)),
    err_msg=opt(texts),
    err_lang=opt(st.text(min_size=1, max_size=8)),
    extensions=extensions,
)
successes = st.builds(Success, token=opt(tokens), msg=opt(texts), suit_reports=opt(tup(reports, 2)))


@st.composite
def errors(draw: st.DrawFn) -> Error:
    code = draw(st.sampled_from(ErrorCode))
    return Error(
        err_code=code,
        token=draw(opt(tokens)),
        err_msg=draw(opt(texts)),
        err_lang=draw(opt(st.text(min_size=1, max_size=8))),
        supported_cipher_suites=draw(tup(suites) if code is ErrorCode.UNSUPPORTED_CIPHER_SUITES else opt(tup(suites))),
        supported_freshness_mechanisms=draw(
            tup(st.integers(0, 3))
            if code is ErrorCode.UNSUPPORTED_FRESHNESS_MECHANISMS
            else opt(tup(st.integers(0, 3)))
        ),
        supported_suit_cose_profiles=draw(
            tup(profiles) if code is ErrorCode.UNSUPPORTED_SUIT_REPORT else opt(tup(profiles))
        ),
        challenge=draw(opt(challenges)),
        versions=draw(tup(uint32) if code is ErrorCode.UNSUPPORTED_MSG_VERSION else opt(tup(uint32))),
        suit_reports=draw(opt(tup(reports, 2))),
        extensions=draw(extensions),
    )


@SETTINGS
@given(st.one_of(query_requests, query_responses, updates, successes, errors()))
def test_generated_messages_round_trip(message: Message) -> None:
    data = message.encode()
    again = decode_message(data)
    assert again == message
    assert again.encode() == data
    assert decode_message(data, compat=True).encode() == data


# --- the state machines on hostile bytes --------------------------------------------------------------------------
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.binary(max_size=64))
def test_agent_and_tam_survive_hostile_bytes(data: bytes, junk: bytes) -> None:
    world = World()
    agent = world.agent(compat=True)
    for blob in (data, junk):
        events, reply = agent.receive(blob, 1.0)  # anything unverifiable is answered with an Error
        assert reply is not None and any(isinstance(e, ErrorSent) for e in events)
        assert agent.state is AgentState.IDLE
    tam = world.tam(compat=True)
    tam.start(1.0)
    for blob in (data, junk):
        with contextlib.suppress(VeriteeError):
            tam.receive(blob, 2.0)
        assert tam.state is TamState.AWAIT_QUERY_RESPONSE  # dropped: nothing here is signed by the Agent
