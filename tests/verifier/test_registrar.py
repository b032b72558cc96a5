"""Registration: EK certificate chain and key, restricted AK, MakeCredential bound to the AK, activation."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi.testclient import TestClient
from verifier_support import ServiceFactory, SoftNode, TestCa, enroll

from veritee.appraisal.node_state import NodeState
from veritee.errors import (
    ConflictError,
    KeyFormatError,
    NotFoundError,
    UntrustedSignerError,
    ValidationError,
)
from veritee.service.node_wire import ActivationRequest
from veritee.service.verifier_config import EvidenceRefusedError, WrongSecretError
from veritee.service.verifier_events import events_since
from veritee.tpm.constants import AK_ATTRIBUTES, ObjectAttributes
from veritee.tpm.public import TpmtPublic
from veritee.web.verifier_app import create_verifier_app


def test_register_and_activate(make_service: ServiceFactory, ca: TestCa) -> None:
    service = make_service()
    node = SoftNode("node-1", ca)
    challenge = service.register(node.registration(attributes={"rack": "r1"}))
    assert service.admin.node("node-1")["activated"] is False
    with pytest.raises(EvidenceRefusedError):
        service.challenge("node-1")  # not attested before it proves its AK
    assert service.activate("node-1", node.activate_credential(challenge)) is NodeState.REGISTERED
    shown = service.admin.node("node-1")
    assert shown["activated"] and shown["attributes"] == {"rack": "r1"} and shown["mode"] == "push"
    assert shown["ak_name"] == node.ak.name().hex() and shown["ek_certified"]
    assert [e.kind.value for e in events_since(service.db, 0)] == ["node.registered"]
    assert [r["kind"] for r in service.admin.history("node-1")] == ["registration"]
    service.challenge("node-1")


def test_wrong_secret_spends_the_challenge_and_never_trusts(make_service: ServiceFactory, ca: TestCa) -> None:
    service = make_service()
    node = SoftNode("node-1", ca)
    challenge = service.register(node.registration())
    good = node.activate_credential(challenge)
    with pytest.raises(WrongSecretError):
        service.activate("node-1", ActivationRequest(good.challenge_id, bytes(len(good.secret))))
    with pytest.raises(WrongSecretError):  # spent: even the right secret does not work any more
        service.activate("node-1", good)
    assert service.admin.node("node-1")["activated"] is False
    with pytest.raises(EvidenceRefusedError):
        service.challenge("node-1")
    assert service.admin.admission("node-1", "web").allow is False
    enroll(service, node)  # registering again works
    assert service.admin.node("node-1")["activated"] is True


def test_a_credential_opens_only_for_the_ak_it_was_made_for(make_service: ServiceFactory, ca: TestCa) -> None:
    service = make_service()
    node = SoftNode("node-1", ca)
    challenge = service.register(node.registration())
    impostor = dataclasses.replace(node, ak_key=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ValueError, match="not bound to this AK"):
        impostor.activate_credential(challenge)


def test_ek_certificate_from_another_ca_is_refused(make_service: ServiceFactory, ca: TestCa) -> None:
    service = make_service()
    node = SoftNode("node-1", TestCa("another manufacturer"))
    with pytest.raises(UntrustedSignerError, match="not issued by a configured CA"):
        service.register(node.registration())
    with pytest.raises(NotFoundError):
        service.admin.node("node-1")


def test_ek_certificate_must_certify_the_ek_sent(make_service: ServiceFactory, ca: TestCa) -> None:
    service = make_service()
    node = SoftNode("node-1", ca)
    other = SoftNode("node-2", ca)
    request = dataclasses.replace(node.registration(), ek_cert=other.ek_cert)
    with pytest.raises(UntrustedSignerError, match="another key"):
        service.register(request)


def test_expired_ek_certificate_is_refused(make_service: ServiceFactory, ca: TestCa) -> None:
    service = make_service()
    node = SoftNode("node-1", ca)
    node.ek_cert = ca.issue(node.ek_key.public_key(), expired=True)
    with pytest.raises(UntrustedSignerError, match="valid from"):
        service.register(node.registration())


def test_ek_certificate_is_required_unless_configured_otherwise(make_service: ServiceFactory, ca: TestCa) -> None:
    node = SoftNode("node-1", ca)
    request = dataclasses.replace(node.registration(), ek_cert=None)
    with pytest.raises(ValidationError, match="certificate is required"):
        make_service().register(request)
    lenient = make_service(allow_uncertified_ek=True)
    lenient.activate("node-1", node.activate_credential(lenient.register(request)))
    assert lenient.admin.node("node-1")["ek_certified"] is False


def test_ak_must_be_a_restricted_signing_key(make_service: ServiceFactory, ca: TestCa) -> None:
    service = make_service()
    node = SoftNode("node-1", ca)
    loose = TpmtPublic.from_public_key(
        node.ak_key.public_key(), object_attributes=AK_ATTRIBUTES & ~ObjectAttributes.RESTRICTED
    )
    with pytest.raises(KeyFormatError, match="RESTRICTED"):
        service.register(dataclasses.replace(node.registration(), ak_public=loose.to_tpm2b()))


@pytest.mark.parametrize("node_id", ["", "a/b", "x" * 201, "-lead", "sp ace"])
def test_node_ids_are_url_safe(make_service: ServiceFactory, ca: TestCa, node_id: str) -> None:
    with pytest.raises(ValidationError, match="node_id"):
        make_service().register(SoftNode(node_id, ca).registration())


def test_reregistration_needs_the_same_ek_and_keeps_the_old_ak_until_activation(
    make_service: ServiceFactory, ca: TestCa
) -> None:
    service = make_service()
    node = SoftNode("node-1", ca)
    enroll(service, node)
    with pytest.raises(ConflictError, match="another EK"):
        service.register(SoftNode("node-1", ca).registration())
    old_ak = service.admin.node("node-1")["ak_name"]
    renewed = dataclasses.replace(node, ak_key=ec.generate_private_key(ec.SECP256R1()))
    challenge = service.register(renewed.registration())
    assert service.admin.node("node-1")["ak_name"] == old_ak  # a registration request alone changes nothing
    service.admin.revoke("node-1")
    service.activate("node-1", renewed.activate_credential(challenge))
    shown = service.admin.node("node-1")
    assert shown["ak_name"] == renewed.ak.name().hex() and not shown["ak_revoked"]
    assert [r["kind"] for r in service.admin.history("node-1")] == ["registration", "admin", "registration"]


def test_http_registration_and_403_for_a_wrong_secret(make_service: ServiceFactory, ca: TestCa) -> None:
    service = make_service()
    client = TestClient(create_verifier_app(service, background=False))
    node = SoftNode("node-1", ca)
    response = client.post("/v1/nodes", json=node.registration().to_json())
    assert response.status_code == 201, response.text
    from veritee.service.node_wire import CredentialChallenge

    activation = node.activate_credential(CredentialChallenge.from_json(response.json()))
    wrong = ActivationRequest(activation.challenge_id, b"\x00" * 32).to_json()
    refused = client.post("/v1/nodes/node-1/activate", json=wrong)
    assert refused.status_code == 403 and refused.json()["error"] == "WrongSecretError"
    assert client.get("/v1/nodes/node-1/challenge").status_code == 403
    response = client.post("/v1/nodes", json=node.registration().to_json())
    activation = node.activate_credential(CredentialChallenge.from_json(response.json()))
    ok = client.post("/v1/nodes/node-1/activate", json=activation.to_json())
    assert ok.status_code == 200 and ok.json() == {"state": "registered"}
    assert client.post("/v1/nodes", content=b"{not json").status_code == 400
    assert client.post("/v1/nodes", json={"node_id": "x"}).status_code == 400
