"""The HTTP API: push rounds, the event stream, Prometheus metrics, admission, operator endpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from verifier_support import ServiceFactory, SoftNode, TestCa, enroll

from helpers import shared_path
from veritee.service.node_wire import Challenge, NodeEvidence
from veritee.service.verifier_service import VerifierService
from veritee.web.verifier_app import create_verifier_app

ADMIN = {"Authorization": "Bearer admin-secret"}


@pytest.fixture
def service(make_service: ServiceFactory) -> VerifierService:
    return make_service()


@pytest.fixture
def client(service: VerifierService) -> Iterator[TestClient]:
    with TestClient(create_verifier_app(service, background=False)) as test_client:
        yield test_client


def push_round(client: TestClient, node: SoftNode) -> dict[str, object]:
    challenge = client.get(f"/v1/nodes/{node.node_id}/challenge")
    assert challenge.status_code == 200, challenge.text
    evidence = node.answer(Challenge.from_json(challenge.json()))
    reply = client.post(f"/v1/nodes/{node.node_id}/evidence", json=evidence.to_json())
    assert reply.status_code == 200, reply.text
    body: dict[str, object] = reply.json()
    return body


def read_events(client: TestClient, **params: object) -> list[dict[str, object]]:
    with client.stream("GET", "/v1/events", params={"wait": 0.2, **params}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = "".join(response.iter_text())
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if fields:
            data = json.loads(fields["data"])
            assert fields["event"] == data["kind"] and int(fields["id"]) == data["id"]
            events.append(data)
    return events


def test_push_rounds_over_http(client: TestClient, service: VerifierService, ca: TestCa) -> None:
    node = SoftNode("node-1", ca)
    node.measure("/usr/bin/env")
    enroll(service, node)
    verdict = push_round(client, node)
    assert verdict["state"] == "trusted" and verdict["passed"] is True and verdict["findings"] == []
    node.measure("/usr/bin/top")
    challenge = Challenge.from_json(client.get("/v1/nodes/node-1/challenge").json())
    assert challenge.ima_offset == 1
    evidence = node.answer(challenge)
    assert client.post("/v1/nodes/node-1/evidence", json=evidence.to_json()).status_code == 200
    again = client.post("/v1/nodes/node-1/evidence", json=evidence.to_json())  # the nonce is spent
    assert again.status_code == 422 and again.json()["error"] == "FreshnessError"
    assert client.post("/v1/nodes/nobody/evidence", json=evidence.to_json()).status_code == 404
    assert client.post("/v1/nodes/node-1/evidence", json={"nonce": "***"}).status_code == 400
    records = client.get("/v1/nodes/node-1/history").json()["records"]
    assert [r["kind"] for r in records] == ["appraisal", "appraisal", "registration"]
    assert client.get("/v1/nodes/node-1/history/verify").json()["intact"] is True


def test_the_event_log_is_kept_and_asked_for_again_when_it_is_gone(make_service: ServiceFactory, ca: TestCa) -> None:
    event_log = shared_path("tpm", "e2e-swtpm", "binary_bios_measurements").read_bytes()
    node = SoftNode("node-1", ca)
    node.boot(event_log)
    first = make_service()
    enroll(first, node)
    client = TestClient(create_verifier_app(first, background=False))
    assert push_round(client, node)["passed"] is True
    assert push_round(client, node)["passed"] is True
    assert [c.want_event_log for c in node.challenges] == [True, False]  # kept: not sent again
    with first.db.transaction() as session:
        session.execute(text("DELETE FROM verifier_event_logs"))
    restarted = make_service(replica_id="replica-2")  # a fresh cache, and the kept log is gone from the database
    client = TestClient(create_verifier_app(restarted, background=False))
    challenge = Challenge.from_json(client.get("/v1/nodes/node-1/challenge").json())
    assert challenge.want_event_log is False
    reply = client.post("/v1/nodes/node-1/evidence", json=node.answer(challenge).to_json())
    assert reply.status_code == 409 and reply.json()["error"] == "NodeRebootedError"
    assert push_round(client, node)["passed"] is True
    assert node.challenges[-1].want_event_log is True
    lean = make_service(replica_id="replica-3", keep_evidence=False)
    client = TestClient(create_verifier_app(lean, background=False))
    for _ in range(3):
        assert push_round(client, node)["passed"] is True
    assert [c.want_event_log for c in node.challenges[-2:]] == [True, True]  # nothing kept: sent every round


def test_event_stream(client: TestClient, service: VerifierService, ca: TestCa) -> None:
    nodes = [SoftNode(f"node-{i}", ca) for i in range(2)]
    for node in nodes:
        enroll(service, node)
        push_round(client, node)
    events = read_events(client, since=0)
    assert [(e["node_id"], e["kind"]) for e in events] == [
        ("node-0", "node.registered"), ("node-0", "node.trusted"),
        ("node-1", "node.registered"), ("node-1", "node.trusted"),
    ]  # fmt: skip
    assert [e["kind"] for e in read_events(client, since=0, node="node-1", limit=1)] == ["node.registered"]
    resumed = client.stream("GET", "/v1/events", params={"wait": 0.2}, headers={"Last-Event-ID": str(events[1]["id"])})
    with resumed as response:
        assert "node-1" in "".join(response.iter_text()) and response.status_code == 200
    assert read_events(client) == []  # without since / Last-Event-ID: only what comes next
    assert client.get("/v1/events", headers={"Last-Event-ID": "x"}).status_code == 400


def test_metrics(client: TestClient, service: VerifierService, ca: TestCa) -> None:
    node = SoftNode("node-1", ca)
    enroll(service, node)
    push_round(client, node)

    def broken(_n: SoftNode, _c: Challenge, evidence: NodeEvidence) -> NodeEvidence:
        return NodeEvidence(evidence.nonce, evidence.quote[:-1] + b"\x00", evidence.signature, evidence.pcrs, None,
                            evidence.ima_offset, evidence.ima_entries)  # fmt: skip

    node.answer_hook = broken
    push_round(client, node)
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'veritee_attestations_total{result="passed"} 1.0' in text
    assert 'veritee_attestations_total{result="failed"} 1.0' in text
    assert 'veritee_nodes{state="untrusted"} 1.0' in text and 'veritee_nodes{state="trusted"} 0.0' in text
    assert "veritee_attestation_duration_seconds_count 2.0" in text


def test_admission(client: TestClient, service: VerifierService, ca: TestCa) -> None:
    node = SoftNode("node-1", ca)
    enroll(service, node, **{"admission.workloads": "web-*, batch"})

    def admit(workload: str, name: str = "node-1") -> dict[str, object]:
        body: dict[str, object] = client.get("/v1/admission", params={"node": name, "workload": workload}).json()
        return body

    assert admit("web-1") == {"allow": False, "reason": "the node is registered"}
    push_round(client, node)
    assert admit("web-1")["allow"] is True and "trusted" in str(admit("web-1")["reason"])
    assert admit("batch")["allow"] is True
    refused = admit("db")
    assert refused["allow"] is False and "not among" in str(refused["reason"])
    assert admit("web-1", "ghost")["allow"] is False
    assert client.get("/v1/admission").status_code == 422  # node is required


def test_operator_endpoints(client: TestClient, service: VerifierService, ca: TestCa) -> None:
    node = SoftNode("node-1", ca)
    enroll(service, node)
    push_round(client, node)
    assert client.post("/v1/nodes/node-1/quarantine").status_code == 401
    assert client.post("/v1/nodes/node-1/quarantine", headers={"Authorization": "Bearer nope"}).status_code == 401
    reply = client.post("/v1/nodes/node-1/quarantine", json={"reason": "maintenance"}, headers=ADMIN)
    assert reply.json() == {"node_id": "node-1", "state": "quarantined"}
    assert push_round(client, node)["state"] == "quarantined"  # still appraised, still quarantined
    assert client.post("/v1/nodes/node-1/release", headers=ADMIN).json()["state"] == "registered"
    assert client.post("/v1/nodes/node-1/release", headers=ADMIN).status_code == 400  # not quarantined now
    assert push_round(client, node)["state"] == "trusted"
    listed = client.get("/v1/nodes", params={"state": "trusted"}).json()["nodes"]
    assert [n["node_id"] for n in listed] == ["node-1"]
    assert (
        client.patch("/v1/nodes/node-1", json={"group": "gpu", "interval_s": 5}, headers=ADMIN).json()["group"] == "gpu"
    )
    assert client.patch("/v1/nodes/node-1", json={"bogus": 1}, headers=ADMIN).status_code == 400
    assert client.post("/v1/nodes/node-1/revoke", headers=ADMIN).json()["ak_revoked"] is True
    assert client.get("/v1/nodes/node-1/challenge").status_code == 403
    assert client.delete("/v1/nodes/node-1", headers=ADMIN).status_code == 204
    assert client.get("/v1/nodes/node-1").status_code == 404
    assert client.get("/v1/ear-key").json()["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
