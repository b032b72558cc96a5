"""The node state machine as data: every state answers every appraisal input; only an operator ends quarantine."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from veritee.appraisal.node_state import (
    ADMISSIBLE,
    TRANSITIONS,
    NodeEvent,
    NodeInput,
    NodeState,
    Transition,
    next_state,
)
from veritee.errors import ProtocolError

S, In, E = NodeState, NodeInput, NodeEvent


def test_every_state_handles_every_appraisal_input() -> None:
    for state in NodeState:
        for node_input in (In.PASSED, In.FAILED, In.UNREACHABLE, In.QUARANTINE, In.REREGISTER):
            assert (state, node_input) in TRANSITIONS


@pytest.mark.parametrize(
    ("state", "node_input", "expected"),
    [
        (S.REGISTERED, In.PASSED, Transition(S.TRUSTED, E.TRUSTED)),
        (S.TRUSTED, In.PASSED, Transition(S.TRUSTED)),
        (S.TRUSTED, In.FAILED, Transition(S.UNTRUSTED, E.UNTRUSTED)),
        (S.UNTRUSTED, In.FAILED, Transition(S.UNTRUSTED)),
        (S.UNTRUSTED, In.PASSED, Transition(S.TRUSTED, E.RECOVERED)),
        (S.TRUSTED, In.UNREACHABLE, Transition(S.UNREACHABLE, E.UNREACHABLE)),
        (S.UNREACHABLE, In.UNREACHABLE, Transition(S.UNREACHABLE)),
        (S.UNREACHABLE, In.PASSED, Transition(S.TRUSTED, E.RECOVERED)),
        (S.UNREACHABLE, In.FAILED, Transition(S.UNTRUSTED, E.UNTRUSTED)),
        (S.TRUSTED, In.QUARANTINE, Transition(S.QUARANTINED, E.QUARANTINED)),
        (S.QUARANTINED, In.PASSED, Transition(S.QUARANTINED)),
        (S.QUARANTINED, In.RELEASE, Transition(S.REGISTERED, E.RELEASED)),
        (S.QUARANTINED, In.REREGISTER, Transition(S.QUARANTINED)),
        (S.UNTRUSTED, In.REREGISTER, Transition(S.REGISTERED, E.REGISTERED)),
    ],
)
def test_transitions(state: NodeState, node_input: NodeInput, expected: Transition) -> None:
    assert next_state(state, node_input) == expected


@pytest.mark.parametrize("state", [s for s in NodeState if s is not S.QUARANTINED])
def test_release_is_only_for_quarantined_nodes(state: NodeState) -> None:
    with pytest.raises(ProtocolError, match="cannot take input release"):
        next_state(state, In.RELEASE)


def test_quarantine_is_left_only_by_release() -> None:
    for (state, node_input), transition in TRANSITIONS.items():
        if state is S.QUARANTINED and node_input is not In.RELEASE:
            assert transition.state is S.QUARANTINED


def test_only_trusted_is_admissible() -> None:
    assert {S.TRUSTED} == ADMISSIBLE


@given(st.text(max_size=12), st.text(max_size=12))
def test_unknown_states_and_inputs_are_protocol_errors(state: str, node_input: str) -> None:
    try:
        transition = next_state(state, node_input)  # type: ignore[arg-type]
    except ProtocolError:
        return
    assert (NodeState(state), NodeInput(node_input)) in TRANSITIONS
    assert isinstance(transition, Transition)
