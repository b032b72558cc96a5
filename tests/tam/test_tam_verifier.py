"""The TAM's remote appraisal against the real platform verifier: its one-shot ``POST /v1/verify`` served by uvicorn,
a TPM-quoting TEEP Agent (tee_evidence.PlatformEvidenceAgent) in a TEEP session, the EAR checked with the verifier's
key. And the verifier's remediation call, ``POST /admin/devices/{id}/block``, as it sends it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tam_support import APP, APP_TEXT, Device, Keys, ServerThread, SoftQuoter, make_service, open_db, public_pem

from veritee.cose import CoseKey
from veritee.service.tam_attest import AttestationConfig, EatPolicy, HttpAppraiser
from veritee.service.tam_teep import TeepEndpoint
from veritee.service.tee_evidence import PlatformEvidenceAgent
from veritee.service.verifier_config import VerifierConfig
from veritee.service.verifier_service import VerifierService
from veritee.store.db import Database
from veritee.web.tam_app import create_tam_app
from veritee.web.verifier_app import create_verifier_app


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = open_db(f"sqlite:///{tmp_path / 'both.db'}")
    yield database
    database.dispose()


def test_platform_evidence_is_appraised_by_the_platform_verifier(db: Database) -> None:
    ear_key = ec.generate_private_key(ec.SECP256R1())
    verifier = VerifierService(db, VerifierConfig(ear_key=ear_key, allow_uncertified_ek=True, remediation=frozenset()))
    keys = Keys()
    with ServerThread(create_verifier_app(verifier, background=False)) as server:
        remote = HttpAppraiser(f"{server.url}/v1/verify", (CoseKey(ear_key.public_key()),))
        attestation = AttestationConfig(attester_keys=(keys.attester.public(),), platform=remote,
                                        policy=EatPolicy(require_platform_evidence=True))  # fmt: skip
        service = make_service(db, keys, attestation=attestation)
        service.add_signer("vendor", public_pem(keys.signer))
        service.upload_tc(keys.envelope(1, b"v1"))
        service.add_deployment(APP_TEXT, "all")
        endpoint = TeepEndpoint(service)

        def tpm_device(quoter: SoftQuoter) -> Device:
            device = Device(keys)
            device.agent = PlatformEvidenceAgent(device.config(), device.store, platform=quoter)
            return device

        genuine = tpm_device(SoftQuoter())
        assert genuine.session(endpoint.handle)[0] == 2 and genuine.installed() == {APP: b"v1"}
        platform = service.device(genuine.thumbprint).attestation
        assert platform is not None and platform["platform"]["status"] == "affirming"
        assert platform["platform"]["verifier"] == f"{server.url}/v1/verify"

        replayed = tpm_device(SoftQuoter(wrong_nonce=True))
        assert replayed.session(endpoint.handle)[0] == 1 and replayed.installed() == {}
        view = service.device(replayed.thumbprint)
        assert view.attestation is not None and view.attestation["platform"]["status"] == "contraindicated"
        assert view.attestation["platform"]["findings"] == ["quote.nonce_mismatch"]


def test_the_verifiers_block_call_stops_deployments(db: Database) -> None:
    keys = Keys()
    service = make_service(db, keys)
    service.add_signer("vendor", public_pem(keys.signer))
    service.upload_tc(keys.envelope(1, b"v1"))
    service.add_deployment(APP_TEXT, "all")
    device = Device(keys)
    service.register_device(device.agent_key, name="node-7")
    token = service.create_admin_token("verifier")
    with ServerThread(create_tam_app(service)) as server, httpx.Client(base_url=server.url) as client:
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "veritee-1"}
        for _ in range(2):  # delivered at least once: a repeat is harmless
            response = client.post(
                f"/admin/devices/{device.thumbprint}/block", json={"reason": "PCR 7"}, headers=headers
            )
            assert response.status_code == 200 and response.json()["blocked"]
        assert client.post("/admin/devices/node-7/block", json={"reason": "x"}, headers=headers).status_code == 200
    endpoint = TeepEndpoint(service)
    assert device.session(endpoint.handle)[0] == 1 and device.installed() == {}
