"""Policies in the verifier: per node, per group, default; compiled once per version and shared; learned from a
known-good node (``policy create --from-node``); the one-shot ``POST /v1/verify``."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner
from verifier_support import ServiceFactory, SoftNode, TestCa, enroll, file_digest

from helpers import shared_path
from veritee.appraisal.ear import verify_jwt
from veritee.appraisal.policy import PolicySet, RuntimePolicy, load_policy
from veritee.cli import verifier as verifier_cli
from veritee.errors import PolicyError
from veritee.service.verifier_admin import learn_policy
from veritee.service.verifier_policies import put_group, put_policy
from veritee.service.verifier_service import VerifierService
from veritee.web.verifier_app import create_verifier_app


def runtime(*paths: str) -> RuntimePolicy:
    return RuntimePolicy(digests={path: (file_digest(path),) for path in paths})


def push(service: VerifierService, node: SoftNode) -> dict[str, object]:
    return service.push_evidence(node.node_id, node.answer(service.challenge(node.node_id)))


def ids(verdict: dict[str, object]) -> list[str]:
    findings = verdict["findings"]
    assert isinstance(findings, list)
    return [item["id"] for item in findings]


def test_node_group_and_default_policies_compiled_once(make_service: ServiceFactory, ca: TestCa) -> None:
    service = make_service()
    put_policy(service.db, PolicySet("default", None, runtime("/a", "/b")))
    put_policy(service.db, PolicySet("strict", None, runtime("/a")))
    put_group(service.db, "gpu", policy_name="strict", interval_s=None)
    nodes = [SoftNode(f"node-{i}", ca) for i in range(4)]
    for node in nodes:
        node.measure("/a")
        node.measure("/b")
        enroll(service, node)
    service.admin.assign("node-1", group="gpu", policy=None, interval_s=None, fields=["group"])
    service.admin.assign("node-2", group=None, policy="strict", interval_s=None, fields=["policy"])
    service.policies.invalidate()
    verdicts = [push(service, node) for node in nodes for _ in range(2)]
    assert [v["passed"] for v in verdicts] == [True, True, False, False, False, False, True, True]
    assert "ima.not_in_policy" in ids(verdicts[2])
    assert service.policies.compilations == 2  # one per policy version, however many nodes and rounds
    put_policy(service.db, PolicySet("default", None, runtime("/a", "/b", "/c")))  # version 2
    service.policies.invalidate()
    before = service.admin.node("node-0")["last_policy_id"]
    push(service, nodes[0])
    assert service.admin.node("node-0")["last_policy_id"] != before
    assert service.policies.compilations == 3


def test_an_assigned_policy_that_does_not_exist_is_an_error(make_service: ServiceFactory, ca: TestCa) -> None:
    service = make_service()
    node = SoftNode("node-0", ca)
    enroll(service, node)
    service.admin.assign("node-0", group=None, policy="missing", interval_s=None, fields=["policy"])
    service.policies.invalidate()
    with pytest.raises(PolicyError, match="does not exist"):
        push(service, node)


def test_learn_a_policy_from_a_known_good_node(make_service: ServiceFactory, ca: TestCa, tmp_path: Path) -> None:
    service = make_service()
    good = SoftNode("good", ca)
    for path in ("/usr/bin/a", "/usr/bin/b"):
        good.measure(path)
    enroll(service, good)
    with pytest.raises(PolicyError, match="no evidence kept"):
        learn_policy(service.db, "good", name="learned")
    push(service, good)
    good.measure("/usr/bin/c")
    push(service, good)  # the second round only sent the new line; the kept list has all three
    learned = learn_policy(service.db, "good", name="learned")
    assert learned.runtime is not None and sorted(learned.runtime.digests) == ["/usr/bin/a", "/usr/bin/b", "/usr/bin/c"]
    url = str(service.db.engine.url.render_as_string(hide_password=False))
    out = tmp_path / "learned.json"
    result = CliRunner().invoke(
        verifier_cli.app,
        ["policy-from", "good", "--db", url, "--out", str(out), "--name", "learned", "--install", "--json"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["version"] == 1
    assert load_policy(out.read_text()).runtime == learned.runtime
    service.admin.assign("good", group=None, policy="learned", interval_s=None, fields=["policy"])
    other = SoftNode("other", ca)
    other.measure("/usr/bin/a")
    other.measure("/usr/bin/evil")
    enroll(service, other)
    service.admin.assign("other", group=None, policy="learned", interval_s=None, fields=["policy"])
    service.policies.invalidate()
    assert push(service, good)["passed"] is True
    verdict = push(service, other)
    assert verdict["state"] == "untrusted" and ids(verdict) == ["ima.not_in_policy"]
    missing = CliRunner().invoke(verifier_cli.app, ["policy-from", "ghost", "--db", url, "--install", "--json"])
    assert missing.exit_code == 2 and json.loads(missing.output)["error"]["type"] == "NotFoundError"


def _bundle_request(tamper: bool = False) -> dict[str, object]:
    root = shared_path("tpm", "e2e-swtpm")

    def b64(name: str) -> str:
        return base64.b64encode((root / name).read_bytes()).decode()

    entries = (root / "ascii_runtime_measurements").read_text()
    if tamper:
        entries = entries.replace("/usr/bin/", "/usr/bin/x", 1)
    return {
        "evidence": {
            "nonce": base64.b64encode(bytes.fromhex((root / "nonce.hex").read_text().strip())).decode(),
            "quote": b64("quote.msg"),
            "signature": b64("quote.sig"),
            "pcrs": b64("quote.pcrs"),
            "event_log": b64("binary_bios_measurements"),
            "ima": {"offset": 0, "entries": entries},
            "ak_public": b64("ak.pub"),
        },
        "runtime_policy": json.loads((root / "runtime_policy.json").read_text()),
        "boot_policy": json.loads((root / "mb_refstate.json").read_text()),
    }


def test_one_shot_verification_of_the_e2e_bundle(make_service: ServiceFactory) -> None:
    service = make_service()
    client = TestClient(create_verifier_app(service, background=False))
    reply = client.post("/v1/verify", json=_bundle_request())
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["passed"] is True and [f["severity"] for f in body["findings"]] in (
        [],
        ["info"] * len(body["findings"]),
    )
    result = verify_jwt(body["ear"], service.ear_key.public_key())
    assert result.submods["platform"].status.label == "affirming"
    again = client.post("/v1/verify", json=_bundle_request())
    assert again.json()["passed"] is True and service.policies.compilations == 1  # same policy: not recompiled
    tampered = client.post("/v1/verify", json=_bundle_request(tamper=True)).json()
    assert tampered["passed"] is False
    assert "ima.template_hash_mismatch" in [f["id"] for f in tampered["findings"]]
    no_policy = _bundle_request()
    no_policy["runtime_policy"] = no_policy["boot_policy"] = None
    assert client.post("/v1/verify", json=no_policy).json()["passed"] is True
    offset = _bundle_request()
    offset["evidence"]["ima"]["offset"] = 3  # type: ignore[index]
    assert client.post("/v1/verify", json=offset).status_code == 400
    bad_policy = _bundle_request()
    bad_policy["runtime_policy"] = {"digests": "nope"}
    assert client.post("/v1/verify", json=bad_policy).status_code == 400
    assert client.post("/v1/verify", json={"evidence": 1}).status_code == 400
