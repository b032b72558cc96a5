"""Property tests: malformed stored state, evidence and request bodies give typed errors or failed rounds, never
anything else; a history record changed in any field no longer verifies."""

from __future__ import annotations

import contextlib
import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from verifier_support import SoftNode, TestCa, make_config

from veritee.appraisal.ear import VerifierId
from veritee.appraisal.node_state import NodeState
from veritee.errors import DecodeError, VeriteeError
from veritee.service.node_wire import Challenge, NodeEvidence
from veritee.service.verifier_codec import clock_from_json, ima_state_from_json, ima_state_to_json
from veritee.service.verifier_config import NodeRebootedError
from veritee.service.verifier_history import GENESIS, HistoryChainError, StoredRecord, canonical_record, verify_chain
from veritee.service.verifier_history import record_hash as chain_hash
from veritee.service.verifier_policies import EMPTY_POLICY
from veritee.service.verifier_rounds import BootLogCache, EarSigner, NodeSnapshot, appraise_round
from veritee.service.verifier_service import VerifierService
from veritee.store.db import Database, DatabaseConfig
from veritee.store.verifier_models import HistoryKind, NodeMode
from veritee.tpm.pcrs import parse_tpm2tools_pcr_blob
from veritee.web.verifier_app import create_verifier_app

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.text(max_size=20)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@given(json_values)
def test_stored_state_decodes_or_raises_decode_error(value: Any) -> None:
    for decoder in (clock_from_json, ima_state_from_json):
        with contextlib.suppress(DecodeError):
            decoder(value)


@given(st.integers(0, 10**6), st.binary(min_size=32, max_size=32), st.binary(min_size=20, max_size=20))
def test_ima_state_round_trips(line: int, sha256: bytes, sha1: bytes) -> None:
    from veritee.ima import ImaState
    from veritee.tpm.alg import HashAlg

    state = ImaState(line, {HashAlg.SHA256: sha256, HashAlg.SHA1: sha1}, {11: {HashAlg.SHA256: sha1 + sha1[:12],
                                                                            HashAlg.SHA1: sha1}})  # fmt: skip
    assert ima_state_from_json(ima_state_to_json(state)) == state


_ca = TestCa("fuzz CA")
_node = SoftNode("fuzz", _ca)
for _path in ("/bin/a", "/bin/b"):
    _node.measure(_path)
_signer = EarSigner(ec.generate_private_key(ec.SECP256R1()), VerifierId("veritee", "test"))
_snapshot = NodeSnapshot(
    node_id="fuzz", mode=NodeMode.PUSH, state=NodeState.TRUSTED, ak_public=_node.ak.to_tpm2b(), agent_url=None,
    policy_name=None, group_name=None, attributes={}, round=1, clock=None, ima=None, event_log_digest=None,
    boot_pcrs_digest=None, want_full=False,
)  # fmt: skip
_challenge = Challenge(b"n" * 32, {"sha256": [0, 1, 10]}, 0, True)
_good = _node.answer(_challenge)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["quote", "signature", "pcrs", "ima_entries", "event_log"]),
    st.integers(0, 10_000),
    st.binary(min_size=1, max_size=8),
)
def test_mutated_evidence_fails_the_round_with_findings(part: str, position: int, junk: bytes) -> None:
    value: Any = getattr(_good, part)
    if part == "ima_entries":
        text = str(value)
        at = position % (len(text) + 1)
        mutated: Any = text[:at] + junk.decode("latin-1") + text[at + 1 :]
    elif part == "event_log":
        mutated = junk
    else:
        data = bytes(value)
        at = position % (len(data) + 1)
        mutated = data[:at] + junk + data[at + len(junk) :]
    evidence = dataclasses.replace(_good, **{part: mutated})
    try:
        outcome = appraise_round(_snapshot, _challenge, evidence, EMPTY_POLICY, boot_logs=BootLogCache(lambda d: None),
                                 signer=_signer, now=datetime.now(UTC))  # fmt: skip
    except NodeRebootedError:
        pytest.fail("a full round does not ask for a full round")
    if mutated == value or (part == "pcrs" and _same_pcrs(value, mutated)):
        return  # nothing that matters changed (tpm2-tools PCR files have padding)
    if part == "event_log":
        assert outcome.findings and outcome.event_log_digest is None  # a log that does not replay is not kept
        return
    assert not outcome.passed and outcome.findings
    assert outcome.ima is None  # nothing was accepted: the next round starts from line 0 again


def _same_pcrs(a: bytes, b: bytes) -> bool:
    try:
        return parse_tpm2tools_pcr_blob(a) == parse_tpm2tools_pcr_blob(b)
    except VeriteeError:
        return False


def _records(count: int) -> list[StoredRecord]:
    records, prev = [], GENESIS
    for seq in range(1, count + 1):
        fields: dict[str, Any] = {
            "node_id": "n", "seq": seq, "at": datetime(2026, 1, 1, 0, 0, seq, tzinfo=UTC), "kind": "appraisal",
            "state": "trusted", "passed": True, "policy_id": "p", "findings": [{"id": "x"}], "ear": "e.j.s",
            "detail": {"k": seq},
        }  # fmt: skip
        body = canonical_record(**{**fields, "kind": HistoryKind.APPRAISAL, "state": NodeState.TRUSTED})
        digest = chain_hash(prev, body)
        records.append(StoredRecord(**fields, prev_hash=prev, record_hash=digest))
        prev = digest
    return records


@given(
    st.integers(0, 4),
    st.sampled_from(["seq", "at", "kind", "state", "passed", "policy_id", "findings", "ear", "detail", "prev_hash"]),
)
def test_any_changed_field_breaks_the_chain(index: int, name: str) -> None:
    records = _records(5)
    verify_chain("n", records, 5, records[-1].record_hash)
    changed: Any = {
        "seq": 99, "at": datetime(2030, 1, 1, tzinfo=UTC), "kind": "admin", "state": "untrusted", "passed": False,
        "policy_id": "q", "findings": [], "ear": None, "detail": {"k": -1}, "prev_hash": "f" * 64,
    }[name]  # fmt: skip
    records[index] = dataclasses.replace(records[index], **{name: changed})
    with pytest.raises(HistoryChainError) as caught:
        verify_chain("n", records, 5, records[-1].record_hash)
    assert caught.value.seq == index + 1


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    db = Database(DatabaseConfig(url=f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'v.db'}"))
    db.upgrade()
    service = VerifierService(db, make_config(_ca))
    service.activate("fuzz", _node.activate_credential(service.register(_node.registration())))
    return TestClient(create_verifier_app(service, background=False))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["/v1/nodes", "/v1/nodes/fuzz/activate", "/v1/nodes/fuzz/evidence", "/v1/verify"]),
    st.one_of(json_values, st.binary(max_size=40)),
)
def test_request_bodies_never_cause_a_server_error(client: TestClient, path: str, body: Any) -> None:
    if isinstance(body, bytes):
        response = client.post(path, content=body)
    else:
        response = client.post(path, json=body)
    assert response.status_code in (400, 403, 404, 409, 422), (response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json"


def test_evidence_for_a_nonce_never_issued_is_refused(client: TestClient) -> None:
    response = client.post("/v1/nodes/fuzz/evidence", json=_good.to_json())
    assert response.status_code == 422 and "not a pending challenge" in response.json()["detail"]
    assert NodeEvidence.from_json(_good.to_json()) == _good  # the body itself was well-formed
