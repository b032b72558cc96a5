"""The fleet benchmark's software nodes: their credential activation, IMA timeline and evidence are the real thing."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from node_support import Logs

from helpers import shared_path
from veritee import ima
from veritee.appraisal import Appraisal, Evidence, NodeState, appraise
from veritee.appraisal.policy import CompiledPolicy
from veritee.errors import KeyFormatError, UnsupportedAlgorithmError
from veritee.service.node_wire import Challenge, CredentialChallenge
from veritee.tpm.alg import HashAlg
from veritee.tpm.credential import make_credential, parse_encryption_key
from veritee.tpm.pcrs import parse_tpm2tools_pcr_blob

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.fleet_nodes import (  # noqa: E402  (bench/ is at the repository root)
    FleetCa,
    ImaTimeline,
    SoftwareNode,
    Tamper,
    activate_credential,
)

SELECTION = {"sha256": [*range(11), 14]}


@pytest.fixture(scope="module")
def timeline(e2e_logs: Logs) -> ImaTimeline:
    return ImaTimeline(e2e_logs.ima_log)


def _node(e2e_logs: Logs, timeline: ImaTimeline, lines: int, tamper: Tamper = Tamper.NONE) -> SoftwareNode:
    _, banks = parse_tpm2tools_pcr_blob((shared_path("tpm", "e2e-swtpm") / "quote.pcrs").read_bytes())
    boot = {i: v for i, v in banks[HashAlg.SHA256].items() if i != 10}
    return SoftwareNode("n1", boot, e2e_logs.event_log, timeline, lines, tamper=tamper)


def test_activation_opens_only_its_own_credential(e2e_logs: Logs, timeline: ImaTimeline) -> None:
    node = _node(e2e_logs, timeline, 10)
    request = node.registration(FleetCa())
    assert parse_encryption_key(request.ek_public).name_alg is HashAlg.SHA256
    secret = os.urandom(32)
    blob, encrypted = make_credential(request.ek_public, node.ak_name, secret)
    assert node.activate(CredentialChallenge("c", blob, encrypted)) == secret
    other = _node(e2e_logs, timeline, 10)
    blob, encrypted = make_credential(request.ek_public, other.ak_name, secret)  # bound to another AK
    with pytest.raises(ValueError, match="integrity"):
        node.activate(CredentialChallenge("c", blob, encrypted))
    blob, encrypted = make_credential(other.ek_public, node.ak_name, secret)  # encrypted to another EK
    with pytest.raises(ValueError, match="integrity"):
        activate_credential(node.ek_key, node.ek_x, node.ak_name, blob, encrypted)
    with pytest.raises((KeyFormatError, UnsupportedAlgorithmError)):
        make_credential(node.ak_public, node.ak_name, secret)  # an AK is no storage key


def test_timeline_pcr10_is_the_replay(e2e_logs: Logs, timeline: ImaTimeline) -> None:
    for count in (0, 1, 400, 826, 900):
        text = timeline.text(0, count)
        assert text.count("\n") == count
        assert timeline.value(count) == ima.replay(ima.parse(text), banks=(HashAlg.SHA256,))[HashAlg.SHA256]
    assert "boot_aggregate" not in timeline.text(826, 2000)


def _round(node: SoftwareNode, policy: CompiledPolicy, state: NodeState | None) -> Appraisal:
    offset = state.ima.next_line if state is not None and state.ima is not None else 0
    challenge = Challenge(os.urandom(32), SELECTION, offset, True)
    evidence = node.answer(challenge)
    _, banks = parse_tpm2tools_pcr_blob(evidence.pcrs)
    return appraise(
        Evidence(
            node.ak_public,
            evidence.quote,
            evidence.signature,
            banks,
            challenge.nonce,
            evidence.event_log,
            evidence.ima_entries,
            state.ima if state is not None else None,
        ),
        policy,
        previous=state,
    )


def test_rounds_pass_and_tampering_fails(e2e_logs: Logs, timeline: ImaTimeline, keylime_policy: CompiledPolicy) -> None:
    node = _node(e2e_logs, timeline, 820)
    state = None
    for _ in range(5):  # past the end of the bundle's list: approved lines measured again
        result = _round(node, keylime_policy, state)
        assert result.passed, [f.id for f in result.findings if f.fails]
        state = result.node_state
    assert state is not None and state.ima is not None and state.ima.next_line == 828
    edited = _node(e2e_logs, timeline, 50, Tamper.IMA_ENTRY_CHANGED)
    assert "ima.template_hash_mismatch" in _round(edited, keylime_policy, None).ids()
