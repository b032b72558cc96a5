"""Table-driven: every (state, input) pair outside the transition tables raises ProtocolError and ends the session;
the pairs inside them are exercised by the session tests and checked against the table here."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from teep_world import World

from veritee.errors import ProtocolError
from veritee.teep.agent import AGENT_TRANSITIONS, AgentInput, AgentState, TeepAgent
from veritee.teep.codes import SUITE_SIGN1_ESP256, DataItem, ErrorCode
from veritee.teep.cose_wrap import sign_message
from veritee.teep.messages import Error, Message, QueryRequest, QueryResponse, Success, Update
from veritee.teep.tam import TAM_TRANSITIONS, TamInput, TamSession, TamState

TOKEN = b"\x07" * 16
QR = QueryRequest(
    token=TOKEN,
    supported_cipher_suites=(SUITE_SIGN1_ESP256,),
    supported_suit_cose_profiles=((-16, -9, -29, -65534),),
    data_item_requested=DataItem.TRUSTED_COMPONENTS,
)


# --- TAM ----------------------------------------------------------------------------------------------------------
def _tam_in(state: TamState, world: World) -> TamSession:
    tam, agent = world.tam(), world.agent()
    if state is TamState.IDLE:
        return tam
    if state is TamState.CLOSED:
        tam.close()
        return tam
    if state is TamState.ERROR:
        tam.start(world.tick())
        with pytest.raises(ProtocolError):
            tam.receive(sign_message(QueryResponse(token=b"\x00" * 16), world.agent_key), world.tick())
        return tam
    if state is TamState.AWAIT_QUERY_RESPONSE:
        tam.start(world.tick())
        return tam
    world.query(tam, agent, appraise=state is not TamState.APPRAISING)
    if state in (TamState.APPRAISING, TamState.READY):
        return tam
    update = tam.send_update([], [], world.tick())
    if state is TamState.AWAIT_UPDATE_RESPONSE:
        return tam
    _events, reply = agent.receive(update, world.tick())
    assert reply is not None
    tam.receive(reply, world.tick())
    assert state is TamState.UPDATE_DONE
    return tam


def _tam_apply(tam: TamSession, event: TamInput, world: World) -> None:
    key = world.agent_key
    messages: dict[TamInput, Message] = {
        TamInput.QUERY_RESPONSE: QueryResponse(token=TOKEN),
        TamInput.QUERY_RESPONSE_WITH_EVIDENCE: QueryResponse(token=TOKEN, attestation_payload=b"evidence"),
        TamInput.SUCCESS: Success(token=TOKEN),
        TamInput.ERROR: Error(token=TOKEN, err_code=ErrorCode.TEMPORARY_ERROR),
        TamInput.QUERY_REQUEST: QR,
        TamInput.UPDATE: Update(token=TOKEN),
    }
    actions: dict[TamInput, Callable[[], object]] = {
        TamInput.START: lambda: tam.start(world.tick()),
        TamInput.ATTESTATION_RESULT: lambda: tam.attestation_result(True),
        TamInput.SEND_UPDATE: lambda: tam.send_update([], [], world.tick()),
        TamInput.CLOSE: tam.close,
    }
    if event in messages:
        tam.receive(sign_message(messages[event], key), world.tick())
    else:
        actions[event]()


# TIMEOUT only arises from poll() while a request is outstanding, i.e. in the two AWAIT states where it is legal.
TAM_PAIRS = [(s, i) for s in TamState for i in TamInput if (s, i) not in TAM_TRANSITIONS and i is not TamInput.TIMEOUT]


@pytest.mark.parametrize(("state", "event"), TAM_PAIRS, ids=[f"{s.value}+{i.value}" for s, i in TAM_PAIRS])
def test_tam_illegal_pairs(state: TamState, event: TamInput) -> None:
    world = World()
    tam = _tam_in(state, world)
    assert tam.state is state
    with pytest.raises(ProtocolError):
        _tam_apply(tam, event, world)
    assert tam.state is (TamState.CLOSED if state is TamState.CLOSED else TamState.ERROR)


def test_tam_table_covers_every_state() -> None:
    sources = {s for s, _ in TAM_TRANSITIONS}
    assert sources == set(TamState) - {TamState.CLOSED, TamState.ERROR}
    assert all(TAM_TRANSITIONS.get((s, i)) is None for s in (TamState.CLOSED, TamState.ERROR) for i in TamInput)


@pytest.mark.parametrize(("state", "event"), [(s, i) for (s, i) in TAM_TRANSITIONS if i is TamInput.CLOSE])
def test_tam_close_from_every_open_state(state: TamState, event: TamInput) -> None:
    world = World()
    tam = _tam_in(state, world)
    _tam_apply(tam, event, world)
    assert tam.state is TAM_TRANSITIONS[(state, event)]


# --- Agent --------------------------------------------------------------------------------------------------------
def _agent_in(state: AgentState, world: World) -> TeepAgent:
    agent = world.agent()
    signed_qr = sign_message(QR, world.tam_key)
    if state is AgentState.QUERIED:
        agent.receive(signed_qr, world.tick())
    elif state is AgentState.UPDATED:
        agent.receive(sign_message(Update(token=TOKEN), world.tam_key), world.tick())
    elif state is AgentState.CLOSED:
        agent.close()
    elif state is AgentState.ERROR:
        with pytest.raises(ProtocolError):
            agent.receive(sign_message(Success(token=TOKEN), world.tam_key), world.tick())
    assert agent.state is state
    return agent


def _agent_apply(agent: TeepAgent, event: AgentInput, world: World) -> None:
    messages: dict[AgentInput, Message] = {
        AgentInput.QUERY_REQUEST: QR,
        AgentInput.UPDATE: Update(token=TOKEN),
        AgentInput.QUERY_RESPONSE: QueryResponse(token=TOKEN),
        AgentInput.SUCCESS: Success(token=TOKEN),
        AgentInput.ERROR: Error(token=TOKEN, err_code=ErrorCode.TEMPORARY_ERROR),
    }
    if event is AgentInput.CLOSE:
        agent.close()
    else:
        agent.receive(sign_message(messages[event], world.tam_key), world.tick())


ALL_AGENT_PAIRS = [(s, i) for s in AgentState for i in AgentInput]


@pytest.mark.parametrize(("state", "event"), ALL_AGENT_PAIRS, ids=[f"{s.value}+{i.value}" for s, i in ALL_AGENT_PAIRS])
def test_agent_every_pair(state: AgentState, event: AgentInput) -> None:
    world = World()
    agent = _agent_in(state, world)
    expected = AGENT_TRANSITIONS.get((state, event))
    if expected is None:
        with pytest.raises(ProtocolError):
            _agent_apply(agent, event, world)
        assert agent.state is (AgentState.CLOSED if state is AgentState.CLOSED else AgentState.ERROR)
    else:
        _agent_apply(agent, event, world)
        assert agent.state is expected
