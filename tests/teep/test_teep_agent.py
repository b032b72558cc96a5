"""The Agent's answers: every Error case the draft prescribes, libteep's (legacy) requests, TAM attestation."""

from __future__ import annotations

import pytest
from teep_support import TOKEN, LibteepKeys, libteep_keys, vector_hex
from teep_world import DEVICE, World, new_key

from veritee import cbor
from veritee.cose import Algorithm, Sign1Message
from veritee.suit.interpreter import Identity
from veritee.suit.store import InMemoryComponentStore
from veritee.teep.agent import AgentConfig, AgentState, TeepAgent
from veritee.teep.codes import (
    SUITE_SIGN1_ES256,
    SUITE_SIGN1_ESP256,
    DataItem,
    ErrorCode,
    FreshnessMechanism,
)
from veritee.teep.cose_wrap import open_message, sign_message
from veritee.teep.eat import make_teep_claims, sign_eat
from veritee.teep.events import (
    AttestationResultReceived,
    CompatQuirks,
    ErrorReceived,
    ErrorSent,
    QueryAnswered,
    TamAttestationRequired,
    TamErrorReported,
    UpdateApplied,
)
from veritee.teep.messages import Error, QueryRequest, QueryResponse, Success, Update


def _reply(agent: TeepAgent, data: bytes, anchors: list[object]) -> Error | QueryResponse | Success:
    _events, reply = agent.receive(data, 1_000)
    assert reply is not None
    message = open_message(reply, anchors, compat=True).message  # type: ignore[arg-type]
    assert isinstance(message, Error | QueryResponse | Success)
    return message


def _qr(**changes: object) -> QueryRequest:
    fields: dict[object, object] = {
        "token": TOKEN,
        "challenge": b"c" * 32,
        "supported_cipher_suites": (SUITE_SIGN1_ESP256,),
        "supported_suit_cose_profiles": ((-16, -9, -29, -65534),),
        "data_item_requested": DataItem.ATTESTATION | DataItem.TRUSTED_COMPONENTS,
    }
    fields.update(changes)
    return QueryRequest(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "code", "option", "value"),
    [
        ({"versions": (5, 7)}, ErrorCode.UNSUPPORTED_MSG_VERSION, "versions", (0,)),
        ({"supported_cipher_suites": (SUITE_SIGN1_ES256,)}, ErrorCode.UNSUPPORTED_CIPHER_SUITES,
         "supported_cipher_suites", (SUITE_SIGN1_ESP256,)),
        ({"supported_freshness_mechanisms": (FreshnessMechanism.TIMESTAMP,)},
         ErrorCode.UNSUPPORTED_FRESHNESS_MECHANISMS, "supported_freshness_mechanisms", (0,)),
        ({"data_item_requested": DataItem.SUIT_REPORTS, "supported_suit_cose_profiles": ((-16, -7, -25, 1),)},
         ErrorCode.UNSUPPORTED_SUIT_REPORT, "supported_suit_cose_profiles", None),
        ({"challenge": None, "token": None}, ErrorCode.PERMANENT_ERROR, "err_msg", None),
    ],
)  # fmt: skip
def test_agent_error_cases(changes: dict[str, object], code: ErrorCode, option: str, value: object) -> None:
    world = World()
    agent = world.agent()
    error = _reply(agent, sign_message(_qr(**changes), world.tam_key), [world.agent_key.public()])
    assert isinstance(error, Error) and error.err_code is code
    assert getattr(error, option) is not None
    if value is not None:
        assert getattr(error, option) == value
    assert error.token == changes.get("token", TOKEN)
    assert agent.state is AgentState.IDLE


def test_untrusted_tam_and_garbage_get_a_permanent_error() -> None:
    world = World()
    agent = world.agent()
    rogue = new_key()
    error = _reply(agent, sign_message(_qr(), rogue), [world.agent_key.public()])
    assert isinstance(error, Error) and error.err_code is ErrorCode.PERMANENT_ERROR
    assert error.err_msg is not None and "not trusted" in error.err_msg and error.token is None
    garbage = _reply(agent, b"\x01\x02\x03", [world.agent_key.public()])
    assert isinstance(garbage, Error) and garbage.err_code is ErrorCode.PERMANENT_ERROR
    assert agent.state is AgentState.IDLE


def test_evidence_is_bound_to_the_challenge_and_the_agent_key() -> None:
    world = World()
    agent = world.agent()
    response = _reply(agent, sign_message(_qr(), world.tam_key), [world.agent_key.public()])
    assert isinstance(response, QueryResponse) and response.attestation_payload is not None
    assert response.attestation_payload_format is None  # our EAT profile is the default format
    claims = cbor.decode(Sign1Message.decode(response.attestation_payload).payload or b"")
    assert claims[10] == b"c" * 32
    assert claims[8] == {3: world.agent_key.thumbprint()}
    assert claims[6] == 1_000
    # Without a challenge the token is the nonce (passport model).
    passport = _reply(agent, sign_message(_qr(challenge=None), world.tam_key), [world.agent_key.public()])
    assert isinstance(passport, QueryResponse) and passport.attestation_payload is not None
    assert cbor.decode(Sign1Message.decode(passport.attestation_payload).payload or b"")[10] == TOKEN


@pytest.fixture(scope="module")
def keys() -> LibteepKeys:
    return libteep_keys()


def _libteep_agent(keys: LibteepKeys, *, compat: bool, legacy_tam: bool = False) -> TeepAgent:
    config = AgentConfig(
        agent_key=keys.agent,
        tam_keys=(keys.legacy_tam,) if legacy_tam else (keys.tam.public(), keys.tam_ed25519.public()),
        tc_signer_keys=(keys.suit_signer.public(),),
        attestation_key=new_key(),
        device=DEVICE,
        compat=compat,
        identity=Identity(
            vendor_ids=frozenset({bytes.fromhex("c0ddd5f15243566087db4f5b0aa26c2f")}),
            class_ids=frozenset({bytes.fromhex("db42f7093d8c55baa8c5265fc5820f4e")}),
        ),
    )
    return TeepAgent(config, InMemoryComponentStore())


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("query_request_err1_cose", ErrorCode.UNSUPPORTED_MSG_VERSION),  # versions [1]
        ("query_request_err2_cose", ErrorCode.UNSUPPORTED_CIPHER_SUITES),  # encrypt-only suite
        ("query_request_err3_cose", ErrorCode.PERMANENT_ERROR),  # 2-byte token
    ],
)
def test_libteep_error_inputs(keys: LibteepKeys, name: str, code: ErrorCode) -> None:
    agent = _libteep_agent(keys, compat=True, legacy_tam=True)
    events, reply = agent.receive(vector_hex("libteep", f"{name}.hex"), 1_000)
    sent = [e for e in events if isinstance(e, ErrorSent)]
    assert [e.code for e in sent] == [code]
    assert reply is not None
    error = open_message(reply, [keys.agent.public()]).message
    assert isinstance(error, Error) and error.err_code is code


def test_libteep_legacy_es256_query_request(keys: LibteepKeys) -> None:
    agent = _libteep_agent(keys, compat=True, legacy_tam=True)
    events, reply = agent.receive(vector_hex("libteep", "query_request_es256.hex"), 1_000)
    assert any(isinstance(e, CompatQuirks) for e in events)
    answered = [e for e in events if isinstance(e, QueryAnswered)]
    assert answered and answered[0].suite == SUITE_SIGN1_ES256
    assert reply is not None
    verified = open_message(reply, [keys.agent.public()])
    assert verified.alg is Algorithm.ES256 and isinstance(verified.message, QueryResponse)


def test_libteep_current_query_request_needs_compat(keys: LibteepKeys) -> None:
    data = vector_hex("libteep", "query_request_cose.hex")  # ES256, suites [[18,-7]], [[18,-8]]
    strict = _libteep_agent(keys, compat=False)
    error = _reply(strict, data, [keys.agent.public()])
    assert isinstance(error, Error) and error.err_code is ErrorCode.UNSUPPORTED_CIPHER_SUITES
    assert error.supported_cipher_suites == (SUITE_SIGN1_ESP256,)
    compat = _libteep_agent(keys, compat=True)
    response = _reply(compat, data, [keys.agent.public()])
    assert isinstance(response, QueryResponse) and response.token == TOKEN


def test_draft_d4_update_is_an_invoke_only_manifest(keys: LibteepKeys) -> None:
    """libteep's update_cose carries the draft's D.4 manifest: its 'install' sits under key 9 (suit-invoke in
    manifest-37), so the update procedure has no section to run and installs nothing; only the manifest's sequence
    number is recorded, and the same Update delivered again is a rollback."""
    agent = _libteep_agent(keys, compat=True)
    data = vector_hex("libteep", "update_cose.hex")
    events, reply = agent.receive(data, 1_000)
    applied = [e for e in events if isinstance(e, UpdateApplied)]
    assert applied and applied[0].installed == ()
    assert reply is not None
    success = open_message(reply, [keys.agent.public()]).message
    assert isinstance(success, Success) and success.token == TOKEN and success.suit_reports is not None
    store = agent.store
    assert isinstance(store, InMemoryComponentStore) and store.components == {}
    assert store.manifests[()].sequence_number == 3
    error = _reply(agent, data, [keys.agent.public()])
    assert isinstance(error, Error) and error.err_code is ErrorCode.MANIFEST_PROCESSING_FAILED
    assert error.suit_reports is not None and error.err_msg is not None and "sequence number" in error.err_msg


def test_tam_attestation_required() -> None:
    world = World()
    tam_attester = new_key()
    agent = world.agent(require_tam_attestation=True, tam_attester_keys=(tam_attester.public(),))
    tam = world.tam()
    events, reply = agent.receive(tam.start(world.tick()), world.tick())
    required = [e for e in events if isinstance(e, TamAttestationRequired)]
    assert required
    assert reply is not None
    error = next(e for e in tam.receive(reply, world.tick()) if isinstance(e, ErrorReceived))
    assert error.code is ErrorCode.ATTESTATION_REQUIRED and error.challenge == required[0].challenge
    tam_evidence = sign_eat(
        make_teep_claims(
            agent_key=world.tam_key,
            ueid=b"\x02" + bytes(16),
            oemid=b"TAM",
            hwmodel=b"tam-model",
            hwversion=("1",),
            manifests=[(60, b"")],
            nonce=error.challenge,
        ),
        tam_attester,
    )
    events, reply = agent.receive(tam.start(world.tick(), attestation_payload=tam_evidence), world.tick())
    assert [e.sender_message for e in events if isinstance(e, AttestationResultReceived)] == ["QueryRequest"]
    assert reply is not None and agent.state is AgentState.QUERIED
    # Replaying the same evidence (its challenge was used) is refused.
    again = world.tam()
    events, reply = agent.receive(again.start(world.tick(), attestation_payload=tam_evidence), world.tick())
    assert [e.code for e in events if isinstance(e, ErrorSent)] == [ErrorCode.ATTESTATION_REQUIRED]


def test_update_with_attestation_result_and_tam_error() -> None:
    world = World()
    agent = world.agent()
    update = Update(token=TOKEN, attestation_payload=b"result", err_code=ErrorCode.TEMPORARY_ERROR, err_msg="later")
    events, reply = agent.receive(sign_message(update, world.tam_key), 1)
    assert [type(e) for e in events] == [TamErrorReported, AttestationResultReceived, UpdateApplied]
    assert reply is not None
    assert isinstance(open_message(reply, [world.agent_key.public()]).message, Success)
