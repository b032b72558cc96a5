"""A TAM and an Agent wired together in memory: install, update, delete, and every rejection the brief names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import pytest
from teep_world import APP, APP_MANIFEST, OTHER, OTHER_MANIFEST, World

from veritee import cbor
from veritee.cose import Algorithm, CoseKey
from veritee.errors import ProtocolError
from veritee.suit.interpreter import ResultCode
from veritee.teep.agent import AgentState, TeepAgent
from veritee.teep.codes import SUITE_SIGN1_ES256, SUITE_SIGN1_ESP256, CoseType, DataItem, ErrorCode
from veritee.teep.cose_wrap import peek_message, sign_message
from veritee.teep.eat import ConfirmationKeyMismatch, EatClaims
from veritee.teep.events import (
    AgentAuthenticated,
    DeviceStateReported,
    ErrorReceived,
    ErrorSent,
    EvidenceReceived,
    QueryAnswered,
    SuccessReceived,
    TokenExpired,
    UpdateApplied,
    UpdateFailed,
)
from veritee.teep.messages import QueryResponse, Success
from veritee.teep.tam import TamSession, TamState, TokenExpiredError

T = TypeVar("T")


def _one(events: Sequence[object], kind: type[T]) -> T:
    found = [e for e in events if isinstance(e, kind)]
    assert len(found) == 1, events
    return found[0]


def _agent_state(agent: TeepAgent) -> AgentState:
    return agent.state


def _tam_state(tam: TamSession) -> TamState:
    return tam.state  # a call, so that the type checker does not narrow the state between steps


def test_install_update_delete() -> None:
    world = World()
    tam, agent = world.tam(), world.agent()
    events = world.query(tam, agent)
    auth = _one(events, AgentAuthenticated)
    assert isinstance(auth, AgentAuthenticated) and auth.suite == SUITE_SIGN1_ESP256 and not auth.learned
    state = _one(events, DeviceStateReported)
    assert isinstance(state, DeviceStateReported) and state.tc_list == ()
    assert _tam_state(tam) is TamState.READY and tam.attestation_passed

    # install
    agent_events, tam_events = world.update(tam, agent, [world.envelope(1, b"TA version 1")])
    applied = _one(agent_events, UpdateApplied)
    assert isinstance(applied, UpdateApplied) and applied.installed == (APP_MANIFEST,)
    success = _one(tam_events, SuccessReceived)
    assert isinstance(success, SuccessReceived) and success.reports[0].success
    assert success.reports[0].nonce == success.token
    assert world.store.components[APP] == b"TA version 1"
    assert _tam_state(tam) is TamState.UPDATE_DONE and agent.state is AgentState.UPDATED

    # the next query reports it
    state = _one(world.query(tam, agent), DeviceStateReported)
    assert isinstance(state, DeviceStateReported)
    assert [t.component_id for t in state.tc_list] == [APP]
    assert state.tc_list[0].claims[14] == len(b"TA version 1")

    # update (higher sequence number)
    world.update(tam, agent, [world.envelope(2, b"TA version 2")])
    assert world.store.components[APP] == b"TA version 2"
    assert world.store.manifests[APP_MANIFEST].sequence_number == 2

    # delete: the device no longer needs it, the TAM unlinks it
    agent.unrequest_ta(APP_MANIFEST)
    state = _one(world.query(tam, agent), DeviceStateReported)
    assert isinstance(state, DeviceStateReported) and state.unneeded == (APP_MANIFEST,)
    agent_events, tam_events = world.update(tam, agent, [], state.unneeded)
    applied = _one(agent_events, UpdateApplied)
    assert isinstance(applied, UpdateApplied) and applied.unlinked == (APP_MANIFEST,)
    _one(tam_events, SuccessReceived)
    assert APP not in world.store.components and APP_MANIFEST not in world.store.components
    state = _one(world.query(tam, agent), DeviceStateReported)
    assert isinstance(state, DeviceStateReported) and state.unneeded == () and state.tc_list == ()
    tam.close()
    agent.close()
    assert _tam_state(tam) is TamState.CLOSED and _agent_state(agent) is AgentState.CLOSED


def _rejected(world: World, manifests: list[bytes], code: ResultCode | None) -> ErrorReceived:
    tam, agent = world.tam(), world.agent()
    world.query(tam, agent)
    before = (dict(world.store.components), dict(world.store.manifests))
    agent_events, tam_events = world.update(tam, agent, manifests)
    assert isinstance(_one(agent_events, UpdateFailed), UpdateFailed)
    error = _one(tam_events, ErrorReceived)
    assert isinstance(error, ErrorReceived)
    assert error.code is ErrorCode.MANIFEST_PROCESSING_FAILED and error.during == "Update"
    if code is not None:
        failure = error.reports[-1].failure
        assert failure is not None and failure.code == code
        assert all(r.nonce is not None for r in error.reports)
    assert (world.store.components, world.store.manifests) == before  # nothing changed
    assert _tam_state(tam) is TamState.UPDATE_DONE
    return error


def test_reject_rollback() -> None:
    world = World()
    tam, agent = world.tam(), world.agent()
    world.query(tam, agent)
    world.update(tam, agent, [world.envelope(5, b"v5")])
    _rejected(world, [world.envelope(4, b"v4")], ResultCode.ROLLBACK)
    _rejected(world, [world.envelope(5, b"v5 again")], ResultCode.ROLLBACK)
    assert world.store.components[APP] == b"v5"


def test_reject_tampered_manifest() -> None:
    world = World()
    good = world.envelope(1, b"TA payload")
    envelope = cbor.decode(good)
    manifest = bytearray(envelope[3])
    manifest[-1] ^= 0x01
    tampered = cbor.encode({**envelope, 3: bytes(manifest)})
    _rejected(world, [tampered], ResultCode.DIGEST_MISMATCH)


def test_reject_untrusted_manifest_signer() -> None:
    world = World()
    rogue = CoseKey.generate(Algorithm.ESP256)
    _rejected(world, [world.envelope(1, b"evil", signer=rogue)], ResultCode.UNTRUSTED_SIGNER)


def test_update_is_atomic() -> None:
    world = World()
    good = world.envelope(1, b"fine", component=OTHER, manifest_id=OTHER_MANIFEST)
    bad = world.envelope(1, b"evil", signer=CoseKey.generate(Algorithm.ESP256))
    error = _rejected(world, [good, bad], None)
    assert len(error.reports) == 2 and error.reports[0].success and not error.reports[1].success
    assert OTHER not in world.store.components


def test_malformed_manifest_and_unknown_unlink() -> None:
    world = World()
    _rejected(world, [cbor.encode({2: b"", 3: b""})], None)
    tam, agent = world.tam(), world.agent()
    world.query(tam, agent)
    agent_events, _tam_events = world.update(tam, agent, [], [OTHER_MANIFEST])
    failed = _one(agent_events, UpdateFailed)
    assert isinstance(failed, UpdateFailed) and "no installed manifest" in failed.reason


def test_replayed_token() -> None:
    world = World()
    tam, agent = world.tam(), world.agent()
    _events, reply = agent.receive(tam.start(world.tick()), world.tick())
    assert reply is not None
    tam.receive(reply, world.tick())
    tam.attestation_result(True)
    tam.start(world.tick())  # a new request is outstanding; the old answer comes back
    with pytest.raises(ProtocolError, match="replayed"):
        tam.receive(reply, world.tick())
    assert _tam_state(tam) is TamState.ERROR
    with pytest.raises(ProtocolError):
        tam.start(world.tick())


def test_query_response_with_a_wrong_token() -> None:
    world = World()
    tam = world.tam()
    tam.start(world.tick())
    forged = sign_message(QueryResponse(token=b"\x42" * 16, selected_version=0), world.agent_key)
    with pytest.raises(ProtocolError, match="matches no outstanding request"):
        tam.receive(forged, world.tick())
    assert _tam_state(tam) is TamState.ERROR
    tam = world.tam()
    tam.start(world.tick())
    with pytest.raises(ProtocolError, match="no token"):
        tam.receive(sign_message(QueryResponse(selected_version=0), world.agent_key), world.tick())


def test_update_before_attestation_passed() -> None:
    world = World()
    tam, agent = world.tam(), world.agent()
    world.query(tam, agent, appraise=False)
    assert _tam_state(tam) is TamState.APPRAISING
    with pytest.raises(ProtocolError):
        tam.send_update([world.envelope(1, b"x")], [], world.tick())
    tam = world.tam()
    world.query(tam, agent, appraise=False)
    tam.attestation_result(False)
    with pytest.raises(ProtocolError, match="attestation passed"):
        tam.send_update([world.envelope(1, b"x")], [], world.tick())
    assert _tam_state(tam) is TamState.ERROR
    assert APP not in world.store.components


def test_attestation_result_must_be_bound_to_the_agent() -> None:
    world = World()
    tam, agent = world.tam(), world.agent()
    world.query(tam, agent, appraise=False)
    impostor = EatClaims.from_cbor({8: {3: CoseKey.generate(Algorithm.ESP256).thumbprint()}})
    with pytest.raises(ConfirmationKeyMismatch):
        tam.attestation_result(True, impostor)
    assert _tam_state(tam) is TamState.ERROR


def test_unknown_cipher_suite_then_retry() -> None:
    world = World()
    # An old TAM offers only ES256; the Agent (strict) signs and verifies ESP256 only.
    tam = world.tam(supported_cipher_suites=(SUITE_SIGN1_ESP256, SUITE_SIGN1_ES256),
                    offered_cipher_suites=(SUITE_SIGN1_ES256,))  # fmt: skip
    agent = world.agent()
    agent_events, reply = agent.receive(tam.start(world.tick()), world.tick())
    sent = _one(agent_events, ErrorSent)
    assert isinstance(sent, ErrorSent) and sent.code is ErrorCode.UNSUPPORTED_CIPHER_SUITES
    assert agent.state is AgentState.IDLE
    assert reply is not None
    error = _one(tam.receive(reply, world.tick()), ErrorReceived)
    assert isinstance(error, ErrorReceived) and error.retry_suites == (SUITE_SIGN1_ESP256,)
    assert _tam_state(tam) is TamState.IDLE
    request = tam.start(world.tick())  # the retry is a COSE_Sign1 with the common suite
    assert peek_message(request).cose_type is CoseType.SIGN1 and peek_message(request).algs == (-9,)
    _events, reply = agent.receive(request, world.tick())
    assert reply is not None
    _one(tam.receive(reply, world.tick()), EvidenceReceived)
    assert tam.agent_suite == SUITE_SIGN1_ESP256 and _tam_state(tam) is TamState.APPRAISING


def test_no_common_cipher_suite() -> None:
    world = World()
    tam = world.tam(supported_cipher_suites=(SUITE_SIGN1_ES256,))
    agent = world.agent()
    _events, reply = agent.receive(tam.start(world.tick()), world.tick())
    assert reply is not None
    error = _one(tam.receive(reply, world.tick()), ErrorReceived)
    assert isinstance(error, ErrorReceived) and error.code is ErrorCode.UNSUPPORTED_CIPHER_SUITES
    assert error.retry_suites == ()


def test_token_expiry() -> None:
    world = World()
    tam, agent = world.tam(token_lifetime=5), world.agent()
    request = tam.start(world.now)
    _events, reply = agent.receive(request, world.now)
    assert reply is not None
    assert tam.poll(world.now + 5) == []
    expired = tam.poll(world.now + 6)
    assert len(expired) == 1 and isinstance(expired[0], TokenExpired) and expired[0].during == "QueryRequest"
    assert _tam_state(tam) is TamState.CLOSED
    with pytest.raises(ProtocolError):
        tam.receive(reply, world.now + 7)
    late = world.tam(token_lifetime=5)
    _events, reply = agent.receive(late.start(world.now), world.now)
    assert reply is not None
    with pytest.raises(TokenExpiredError):
        late.receive(reply, world.now + 10)
    assert _tam_state(late) is TamState.ERROR


def test_agent_that_cannot_attest() -> None:
    world = World()
    tam = world.tam(require_attestation=False)
    agent = world.agent(attestation_key=None, device=None)
    _events, reply = agent.receive(tam.start(world.tick()), world.tick())
    assert reply is not None
    error = _one(tam.receive(reply, world.tick()), ErrorReceived)
    assert isinstance(error, ErrorReceived) and error.code is ErrorCode.PERMANENT_ERROR
    # Policy allows agents without attestation: ask again for the device state only.
    _events, reply = agent.receive(tam.start(world.tick(), data_items=DataItem.TRUSTED_COMPONENTS), world.tick())
    assert reply is not None
    events = tam.receive(reply, world.tick())
    assert not [e for e in events if isinstance(e, EvidenceReceived)]
    assert _tam_state(tam) is TamState.READY
    world.update(tam, agent, [world.envelope(1, b"installed without attestation")])
    assert world.store.components[APP] == b"installed without attestation"


def test_requested_ta_and_learned_agent_key() -> None:
    world = World()
    tam = world.tam(agent_keys=(), learn_agent_keys=True)
    agent = world.agent(present_key=True)
    agent.request_ta(APP, sequence_number=1)
    events = world.query(tam, agent)
    auth = _one(events, AgentAuthenticated)
    assert isinstance(auth, AgentAuthenticated) and auth.learned
    assert auth.thumbprint == world.agent_key.thumbprint()
    state = _one(events, DeviceStateReported)
    assert isinstance(state, DeviceStateReported) and [r.component_id for r in state.requested] == [APP]
    world.update(tam, agent, [world.envelope(1, b"requested")])
    state = _one(world.query(tam, agent), DeviceStateReported)
    assert isinstance(state, DeviceStateReported) and state.requested == ()
    # Without learning, an unknown Agent is refused.
    stranger = world.tam(agent_keys=())
    _events, reply = agent.receive(stranger.start(world.tick()), world.tick())
    assert reply is not None
    with pytest.raises(Exception, match="trust anchor"):
        stranger.receive(reply, world.tick())
    assert _tam_state(stranger) is TamState.AWAIT_QUERY_RESPONSE  # an unverifiable message is dropped


def test_ed25519_session() -> None:
    world = World(agent_key=CoseKey.generate(Algorithm.Ed25519))
    tam, agent = world.tam(), world.agent()
    events = world.query(tam, agent)
    auth = _one(events, AgentAuthenticated)
    assert isinstance(auth, AgentAuthenticated) and auth.suite.operations == ((18, -19),)
    _agent_events, tam_events = world.update(tam, agent, [world.envelope(1, b"ed25519")])
    _one(tam_events, SuccessReceived)


def test_success_reports_must_carry_the_token() -> None:
    world = World()
    tam, agent = world.tam(), world.agent()
    world.query(tam, agent)
    update = tam.send_update([world.envelope(1, b"x")], [], world.tick())
    _events, reply = agent.receive(update, world.tick())
    assert reply is not None
    honest = cbor.decode(cbor.decode(reply).value[2])
    token = honest[1][20]
    report = cbor.encode({99: [[-16, bytes(32)]], 2: b"\x00" * 16, 3: [], 4: True})
    forged = sign_message(Success(token=token, suit_reports=(report,)), world.agent_key)
    with pytest.raises(ProtocolError, match="suit-report-nonce"):
        tam.receive(forged, world.tick())


def test_agent_answers_every_query_kind() -> None:
    world = World()
    agent = world.agent()
    tam = world.tam(data_items=DataItem.TRUSTED_COMPONENTS | DataItem.EXTENSIONS)
    agent_events, reply = agent.receive(tam.start(world.tick()), world.tick())
    answered = _one(agent_events, QueryAnswered)
    assert isinstance(answered, QueryAnswered) and not answered.evidence_included
    assert reply is not None
    _one(tam.receive(reply, world.tick()), DeviceStateReported)


def test_appendix_f_reports_lack_the_nonce() -> None:
    """Draft App. F reports use the pre-report-18 keys and carry no suit-report-nonce: a TAM that sent a token must
    refuse them (the SUIT decoder reads the old form; the nonce rule is TEEP's)."""
    world = World()
    tam, agent = world.tam(), world.agent()
    world.query(tam, agent)
    update = tam.send_update([world.envelope(1, b"x")], [], world.tick())
    _events, reply = agent.receive(update, world.tick())
    assert reply is not None
    token = cbor.decode(cbor.decode(reply).value[2])[1][20]
    f1 = cbor.encode({1: cbor.encode([-16, bytes(32)]), 2: "tam.teep.example/personalisation", 4: []})
    forged = sign_message(Success(token=token, suit_reports=(f1,)), world.agent_key)
    with pytest.raises(ProtocolError, match="suit-report-nonce"):
        tam.receive(forged, world.tick())


def test_first_query_request_is_signed_with_every_offered_algorithm() -> None:
    world = World()
    first = peek_message(world.tam().start(world.tick()))
    assert first.cose_type is CoseType.SIGN and first.algs == (-9, -19)
    assert first.kids == (world.tam_key.thumbprint(), world.tam_ed25519.thumbprint())
