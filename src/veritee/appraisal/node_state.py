"""The verifier's node state machine, as data: states, inputs, and one table of transitions (pure, no I/O).

A node is ``registered`` once its AK is activated, ``trusted`` while its appraisals pass, ``untrusted`` after one
fails, ``unreachable`` when its evidence does not arrive in time, and ``quarantined`` when remediation (or an
operator) takes it out of service; only an operator's ``release`` brings a quarantined node back. Each transition may
emit an event (delivered to webhooks and the event stream by the verifier service). The node's attestation history
is kept apart (see the verifier service); this module only says which state follows which.

``TRANSITIONS`` is the whole machine: a pair missing from it is not allowed, and :func:`next_state` raises
:class:`~veritee.errors.ProtocolError` for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from veritee.errors import ProtocolError

__all__ = ["ADMISSIBLE", "TRANSITIONS", "NodeEvent", "NodeInput", "NodeState", "Transition", "next_state"]


class NodeState(StrEnum):
    """Where a node stands with the verifier."""

    REGISTERED = "registered"
    TRUSTED = "trusted"
    UNTRUSTED = "untrusted"
    UNREACHABLE = "unreachable"
    QUARANTINED = "quarantined"


class NodeInput(StrEnum):
    """What happens to a node: an appraisal outcome, a missed deadline, or an operator's (or remediation's) act."""

    PASSED = "passed"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    QUARANTINE = "quarantine"
    RELEASE = "release"
    REREGISTER = "reregister"


class NodeEvent(StrEnum):
    """Events the verifier publishes. Most come from transitions; ``REVOKED`` and ``APPRAISAL_FAILED`` are emitted by
    remediation (revoke, notify) and ``REGISTERED`` by a registration."""

    REGISTERED = "node.registered"
    TRUSTED = "node.trusted"
    UNTRUSTED = "node.untrusted"
    RECOVERED = "node.recovered"
    UNREACHABLE = "node.unreachable"
    QUARANTINED = "node.quarantined"
    RELEASED = "node.released"
    REVOKED = "node.revoked"
    APPRAISAL_FAILED = "node.appraisal_failed"


@dataclass(frozen=True, slots=True)
class Transition:
    """The state after an input, and the event it emits (None: nothing worth telling anyone)."""

    state: NodeState
    event: NodeEvent | None = None


_S = NodeState
_I = NodeInput
_E = NodeEvent

TRANSITIONS: Mapping[tuple[NodeState, NodeInput], Transition] = MappingProxyType(
    {
        # registered: activated, never appraised since
        (_S.REGISTERED, _I.PASSED): Transition(_S.TRUSTED, _E.TRUSTED),
        (_S.REGISTERED, _I.FAILED): Transition(_S.UNTRUSTED, _E.UNTRUSTED),
        (_S.REGISTERED, _I.UNREACHABLE): Transition(_S.UNREACHABLE, _E.UNREACHABLE),
        (_S.REGISTERED, _I.QUARANTINE): Transition(_S.QUARANTINED, _E.QUARANTINED),
        (_S.REGISTERED, _I.REREGISTER): Transition(_S.REGISTERED, _E.REGISTERED),
        # trusted
        (_S.TRUSTED, _I.PASSED): Transition(_S.TRUSTED),
        (_S.TRUSTED, _I.FAILED): Transition(_S.UNTRUSTED, _E.UNTRUSTED),
        (_S.TRUSTED, _I.UNREACHABLE): Transition(_S.UNREACHABLE, _E.UNREACHABLE),
        (_S.TRUSTED, _I.QUARANTINE): Transition(_S.QUARANTINED, _E.QUARANTINED),
        (_S.TRUSTED, _I.REREGISTER): Transition(_S.REGISTERED, _E.REGISTERED),
        # untrusted
        (_S.UNTRUSTED, _I.PASSED): Transition(_S.TRUSTED, _E.RECOVERED),
        (_S.UNTRUSTED, _I.FAILED): Transition(_S.UNTRUSTED),
        (_S.UNTRUSTED, _I.UNREACHABLE): Transition(_S.UNREACHABLE, _E.UNREACHABLE),
        (_S.UNTRUSTED, _I.QUARANTINE): Transition(_S.QUARANTINED, _E.QUARANTINED),
        (_S.UNTRUSTED, _I.REREGISTER): Transition(_S.REGISTERED, _E.REGISTERED),
        # unreachable
        (_S.UNREACHABLE, _I.PASSED): Transition(_S.TRUSTED, _E.RECOVERED),
        (_S.UNREACHABLE, _I.FAILED): Transition(_S.UNTRUSTED, _E.UNTRUSTED),
        (_S.UNREACHABLE, _I.UNREACHABLE): Transition(_S.UNREACHABLE),
        (_S.UNREACHABLE, _I.QUARANTINE): Transition(_S.QUARANTINED, _E.QUARANTINED),
        (_S.UNREACHABLE, _I.REREGISTER): Transition(_S.REGISTERED, _E.REGISTERED),
        # quarantined: still appraised and recorded, but only an operator's release ends it
        (_S.QUARANTINED, _I.PASSED): Transition(_S.QUARANTINED),
        (_S.QUARANTINED, _I.FAILED): Transition(_S.QUARANTINED),
        (_S.QUARANTINED, _I.UNREACHABLE): Transition(_S.QUARANTINED),
        (_S.QUARANTINED, _I.QUARANTINE): Transition(_S.QUARANTINED),
        (_S.QUARANTINED, _I.RELEASE): Transition(_S.REGISTERED, _E.RELEASED),
        (_S.QUARANTINED, _I.REREGISTER): Transition(_S.QUARANTINED),
    }
)

ADMISSIBLE: frozenset[NodeState] = frozenset({NodeState.TRUSTED})
"""States in which a node may run workloads (admission)."""


def next_state(state: NodeState, node_input: NodeInput) -> Transition:
    """The transition for ``node_input`` in ``state``; ProtocolError when the machine does not allow it."""
    try:
        return TRANSITIONS[(NodeState(state), NodeInput(node_input))]
    except (KeyError, ValueError):
        raise ProtocolError(f"a node in state {state!s} cannot take input {node_input!s}") from None
