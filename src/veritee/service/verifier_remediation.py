"""Remediation: what the verifier does, in the same transaction, when a node's appraisal fails.

The configured actions run in a fixed order: quarantine (state), revoke (the AK: evidence is refused until the node
registers again), tam-block (an outbox delivery to the TAM admin API, so it is retried and survives a crash), notify
(a ``node.appraisal_failed`` event with the findings). Quarantine, revoke and tam-block act once per episode: again
only after an operator's release or a new registration.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from veritee.appraisal.findings import Finding
from veritee.appraisal.node_state import NodeEvent, NodeInput, NodeState, next_state
from veritee.service.verifier_config import RemediationAction, VerifierConfig
from veritee.service.verifier_events import emit_event, enqueue_tam_block
from veritee.store.verifier_models import VerifierNode

__all__ = ["ORDER", "remediate", "tam_device_id"]

ORDER = (RemediationAction.QUARANTINE, RemediationAction.REVOKE, RemediationAction.TAM_BLOCK, RemediationAction.NOTIFY)

TAM_DEVICE_ATTRIBUTE = "tam_device_id"


def tam_device_id(node: VerifierNode) -> str:
    """The node's device id at the TAM: its ``tam_device_id`` attribute, else its node id."""
    value = (node.attributes or {}).get(TAM_DEVICE_ATTRIBUTE)
    return str(value) if value else node.node_id


def _summary(findings: Sequence[Finding]) -> list[str]:
    return list(dict.fromkeys(item.id for item in findings if item.fails))


def remediate(
    session: Session, node: VerifierNode, *, config: VerifierConfig, at: datetime, findings: Sequence[Finding]
) -> list[str]:
    """Apply the configured actions to a node whose appraisal just failed; returns the actions taken."""
    taken: list[str] = []
    failing = _summary(findings)
    for action in ORDER:
        if action not in config.remediation:
            continue
        previous = NodeState(node.state)
        if action is RemediationAction.QUARANTINE:
            transition = next_state(previous, NodeInput.QUARANTINE)
            if transition.state is previous:
                continue
            node.state = transition.state
            if transition.event is not None:
                emit_event(
                    session,
                    node_id=node.node_id,
                    kind=transition.event,
                    previous_state=previous,
                    state=transition.state,
                    at=at,
                    webhooks=config.webhooks,
                    detail={"reason": "appraisal failed", "findings": failing},
                )
        elif action is RemediationAction.REVOKE:
            if node.ak_revoked_at is not None:
                continue
            node.ak_revoked_at = at
            node.lease_owner = None
            node.lease_until = None
            emit_event(
                session,
                node_id=node.node_id,
                kind=NodeEvent.REVOKED,
                previous_state=previous,
                state=previous,
                at=at,
                webhooks=config.webhooks,
                detail={"reason": "appraisal failed", "findings": failing},
            )
        elif action is RemediationAction.TAM_BLOCK:
            if node.tam_blocked_at is not None or config.tam_url is None:
                continue
            node.tam_blocked_at = at
            enqueue_tam_block(
                session,
                event=None,
                tam_url=config.tam_url,
                device_id=tam_device_id(node),
                reason=f"veritee: node {node.node_id} failed attestation ({', '.join(failing)})",
                at=at,
            )
        else:
            emit_event(
                session,
                node_id=node.node_id,
                kind=NodeEvent.APPRAISAL_FAILED,
                previous_state=previous,
                state=previous,
                at=at,
                webhooks=config.webhooks,
                detail={"findings": failing},
            )
        taken.append(action.value)
    return taken
