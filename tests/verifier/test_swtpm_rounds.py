"""Rounds with a real swtpm: registration with its EK certificate, the e2e-swtpm boot and IMA logs in its PCRs,
the Keylime policies of that bundle; a good node passes, each tampering gives its finding and state."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from swtpm_node import E2eLogs, SwtpmNode, e2e_logs, replay_boot
from verifier_support import ServiceFactory

from swtpm_harness import start_swtpm
from veritee.appraisal.ear import verify_jwt
from veritee.appraisal.node_state import NodeState
from veritee.appraisal.policy import PolicySet
from veritee.eventlog import parse as parse_event_log
from veritee.service.node_wire import ActivationRequest, Challenge, CredentialChallenge, NodeEvidence
from veritee.service.verifier_config import NodeRebootedError
from veritee.service.verifier_events import events_since
from veritee.service.verifier_policies import parse_boot_policy, parse_runtime_policy, put_policy
from veritee.service.verifier_service import VerifierService
from veritee.tpm.alg import HashAlg
from veritee.tpm.device import TpmCommandError, TpmDevice
from veritee.tpm.swtpm import SwtpmProcess
from veritee.web.verifier_app import create_verifier_app

pytestmark = pytest.mark.swtpm

FIRST = 300  # IMA lines measured before the node registers


@pytest.fixture(scope="module")
def module_db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """SQLite only here: these tests are about the TPM and the appraisal; storage runs on both databases elsewhere."""
    return f"sqlite:///{tmp_path_factory.mktemp('verifier') / 'veritee.db'}"


@pytest.fixture(scope="module")
def logs() -> E2eLogs:
    return e2e_logs()


@pytest.fixture(scope="module")
def swtpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwtpmProcess]:
    with start_swtpm(tmp_path_factory.mktemp("tpm")) as process:
        yield process


@pytest.fixture(scope="module")
def node(swtpm: SwtpmProcess, logs: E2eLogs) -> Iterator[SwtpmNode]:
    """One booted node for the module: the e2e boot log and the first IMA lines in its PCRs."""
    with TpmDevice(swtpm.tcti) as device:
        replay_boot(device, logs.event_log)
        booted = SwtpmNode("tpm-node", device, logs.event_log)
        booted.measure(logs.ima_lines[:FIRST])
        yield booted


def _service(make_service: ServiceFactory, swtpm: SwtpmProcess, logs: E2eLogs) -> VerifierService:
    service = make_service(ek_ca_certs=(swtpm.ca_cert_pem,))
    policy = PolicySet("default", parse_boot_policy(logs.refstate), parse_runtime_policy(logs.runtime_policy))
    put_policy(service.db, policy)
    return service


def _enroll(service: VerifierService, node: SwtpmNode) -> None:
    challenge = service.register(node.registration())
    assert service.activate(node.node_id, node.activate(challenge)) is NodeState.REGISTERED


def push_round(service: VerifierService, node: SwtpmNode) -> tuple[Challenge, dict[str, object]]:
    """One push round (asking again once when the verifier wants a full round after a reboot)."""
    for _ in range(2):
        challenge = service.challenge(node.node_id)
        try:
            return challenge, service.push_evidence(node.node_id, node.answer(challenge))
        except NodeRebootedError:
            continue
    raise AssertionError("the verifier asked for a full round twice")


def ids(verdict: dict[str, object]) -> list[str]:
    findings = verdict["findings"]
    assert isinstance(findings, list)
    return [item["id"] for item in findings]


def test_registration_with_the_swtpm_ek_certificate(
    make_service: ServiceFactory, swtpm: SwtpmProcess, node: SwtpmNode
) -> None:
    service = make_service(ek_ca_certs=(swtpm.ca_cert_pem,))
    client = TestClient(create_verifier_app(service, background=False))
    reply = client.post("/v1/nodes", json=node.registration().to_json())
    assert reply.status_code == 201, reply.text
    challenge = CredentialChallenge.from_json(reply.json())
    wrong = client.post(
        "/v1/nodes/tpm-node/activate", json=ActivationRequest(challenge.challenge_id, b"x" * 32).to_json()
    )
    assert wrong.status_code == 403
    assert client.get("/v1/admission", params={"node": "tpm-node", "workload": "w"}).json()["allow"] is False
    reply = client.post("/v1/nodes", json=node.registration().to_json())
    activation = node.activate(CredentialChallenge.from_json(reply.json()))  # TPM2_ActivateCredential
    ok = client.post("/v1/nodes/tpm-node/activate", json=activation.to_json())
    assert ok.status_code == 200 and ok.json() == {"state": "registered"}


def test_a_credential_for_another_ak_does_not_activate(
    make_service: ServiceFactory, swtpm: SwtpmProcess, node: SwtpmNode
) -> None:
    service = make_service(ek_ca_certs=(swtpm.ca_cert_pem,))
    challenge = service.register(node.registration())
    other = SwtpmNode("other", node.device, None)  # a second AK in the same TPM
    with pytest.raises(TpmCommandError):
        other.activate(challenge)
    assert service.admin.node("tpm-node")["activated"] is False


def test_good_node_passes_incrementally(
    make_service: ServiceFactory, swtpm: SwtpmProcess, node: SwtpmNode, logs: E2eLogs
) -> None:
    service = _service(make_service, swtpm, logs)
    _enroll(service, node)
    start = len(node.ima_lines)
    challenge, verdict = push_round(service, node)
    assert (challenge.ima_offset, challenge.want_event_log) == (0, True)
    assert verdict["passed"] is True and verdict["state"] == "trusted", ids(verdict)
    offsets = []
    for batch in range(3):  # new lines each round: only they are asked for and appraised
        more = logs.ima_lines[len(node.ima_lines) : len(node.ima_lines) + 40 + batch]
        node.measure(more)
        challenge, verdict = push_round(service, node)
        offsets.append(challenge.ima_offset)
        assert challenge.want_event_log is False  # the verifier kept the boot log
        assert verdict["passed"] is True, ids(verdict)
    assert offsets[0] == start and offsets == sorted(offsets) and offsets[-1] < len(node.ima_lines)
    assert service.admin.node("tpm-node")["ima_next_line"] == len(node.ima_lines)
    claims = verify_jwt(str(verdict["ear"]), service.ear_key.public_key())
    assert claims.submods["tpm-node"].status.label == "affirming"
    assert service.admin.admission("tpm-node", "any").allow
    kinds = [event.kind.value for event in events_since(service.db, 0)]
    assert kinds == ["node.registered", "node.trusted"]


def _tamper_ima_line(_node: SwtpmNode, challenge: Challenge, evidence: NodeEvidence) -> NodeEvidence:
    lines = evidence.ima_entries.splitlines()
    fields = lines[len(lines) // 2].split(" ")
    fields[3] = fields[3][:-1] + ("0" if fields[3][-1] != "0" else "1")  # the file digest: another file ran
    lines[len(lines) // 2] = " ".join(fields)
    return NodeEvidence(evidence.nonce, evidence.quote, evidence.signature, evidence.pcrs, evidence.event_log,
                        evidence.ima_offset, "".join(line + "\n" for line in lines))  # fmt: skip


def _with_log(evidence: NodeEvidence, log: bytes) -> NodeEvidence:
    return NodeEvidence(evidence.nonce, evidence.quote, evidence.signature, evidence.pcrs, log, evidence.ima_offset,
                        evidence.ima_entries)  # fmt: skip


def _tamper_boot_digest(_node: SwtpmNode, challenge: Challenge, evidence: NodeEvidence) -> NodeEvidence:
    """Another kernel: the SHA-256 digest of the last PCR 4 event is changed."""
    assert evidence.event_log is not None
    event = [e for e in parse_event_log(evidence.event_log).events if e.pcr == 4][-1]
    digest = event.digests[HashAlg.SHA256]
    at = evidence.event_log.index(digest)
    return _with_log(evidence, evidence.event_log[:at] + bytes(32) + evidence.event_log[at + 32 :])


def _tamper_boot_data(_node: SwtpmNode, challenge: Challenge, evidence: NodeEvidence) -> NodeEvidence:
    """The last event's data says something else than what was measured."""
    assert evidence.event_log is not None
    log = bytearray(evidence.event_log)
    log[-40] ^= 0x01
    return _with_log(evidence, bytes(log))


@pytest.mark.parametrize(
    ("hook", "finding"),
    [
        (_tamper_ima_line, "ima.template_hash_mismatch"),
        (_tamper_boot_digest, "boot.pcr_mismatch"),
        (_tamper_boot_data, "boot.event_data_mismatch"),
    ],
)
def test_tampered_logs_are_found_and_an_honest_round_recovers(
    make_service: ServiceFactory, swtpm: SwtpmProcess, node: SwtpmNode, logs: E2eLogs, hook: object, finding: str
) -> None:
    service = _service(make_service, swtpm, logs)
    _enroll(service, node)
    node.answer_hook = hook  # type: ignore[assignment]
    try:
        _, verdict = push_round(service, node)
    finally:
        node.answer_hook = None
    assert verdict["passed"] is False and verdict["state"] == "untrusted"
    assert finding in ids(verdict)
    assert service.admin.admission("tpm-node", "any").allow is False
    _, verdict = push_round(service, node)
    assert verdict["passed"] is True and verdict["state"] == "trusted", ids(verdict)
    kinds = [event.kind.value for event in events_since(service.db, 0)]
    assert kinds == ["node.registered", "node.untrusted", "node.recovered"]


def test_a_replayed_quote_is_refused(
    make_service: ServiceFactory, swtpm: SwtpmProcess, node: SwtpmNode, logs: E2eLogs
) -> None:
    service = _service(make_service, swtpm, logs)
    _enroll(service, node)
    recorded: list[NodeEvidence] = []

    def record(_node: SwtpmNode, _challenge: Challenge, evidence: NodeEvidence) -> NodeEvidence:
        recorded.append(evidence)
        return evidence

    node.answer_hook = record
    push_round(service, node)

    def replay(_node: SwtpmNode, challenge: Challenge, evidence: NodeEvidence) -> NodeEvidence:
        old = recorded[0]  # the old quote, offered as the answer to the new nonce
        return NodeEvidence(challenge.nonce, old.quote, old.signature, old.pcrs, None, challenge.ima_offset, "")

    node.answer_hook = replay
    try:
        _, verdict = push_round(service, node)
    finally:
        node.answer_hook = None
    assert verdict["state"] == "untrusted"
    assert {"quote.nonce_mismatch", "quote.replayed"} <= set(ids(verdict))


@pytest.mark.parametrize(("pcr", "finding"), [(9, "boot.pcr_mismatch"), (10, "ima.pcr_mismatch")])
def test_a_pcr_extended_outside_the_logs(
    make_service: ServiceFactory, tmp_path: Path, logs: E2eLogs, pcr: int, finding: str
) -> None:
    with start_swtpm(tmp_path) as swtpm, TpmDevice(swtpm.tcti) as device:
        replay_boot(device, logs.event_log)
        own = SwtpmNode("tpm-node", device, logs.event_log)
        own.measure(logs.ima_lines[:50])
        service = _service(make_service, swtpm, logs)
        _enroll(service, own)
        assert push_round(service, own)[1]["passed"] is True
        device.pcr_extend(pcr, {"sha1": os.urandom(20), "sha256": os.urandom(32)})  # nothing in any log
        challenge, verdict = push_round(service, own)
        assert finding in ids(verdict) and verdict["state"] == "untrusted"
        if pcr == 9:  # the boot changed with no log sent: the verifier asked for the log again
            assert challenge.want_event_log is True


def test_a_reboot_starts_the_ima_list_over(make_service: ServiceFactory, tmp_path: Path, logs: E2eLogs) -> None:
    with start_swtpm(tmp_path) as swtpm, TpmDevice(swtpm.tcti) as device:
        replay_boot(device, logs.event_log)
        own = SwtpmNode("tpm-node", device, logs.event_log)
        own.measure(logs.ima_lines[:80])
        service = _service(make_service, swtpm, logs)
        _enroll(service, own)
        assert push_round(service, own)[1]["passed"] is True
        swtpm.power_cycle()
        device.startup()
        replay_boot(device, logs.event_log)
        own.ima_lines = []
        own.measure(logs.ima_lines[:20])
        stale = service.challenge("tpm-node")  # made before the verifier knows of the reboot
        assert stale.ima_offset == 80
        with pytest.raises(NodeRebootedError):
            service.push_evidence("tpm-node", own.answer(stale))
        challenge, verdict = push_round(service, own)
        assert (challenge.ima_offset, challenge.want_event_log) == (0, True)
        assert verdict["passed"] is True and "quote.reset" in ids(verdict)
        assert service.admin.node("tpm-node")["ima_next_line"] == 20
