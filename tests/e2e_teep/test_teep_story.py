"""TEEP over HTTP end to end, one story per database (SQLite and PostgreSQL via ``db_url``).

The TAM (uvicorn on a free loopback port, HTTPS from a private CA, its admin API driven over HTTPS too) manages a
small fleet of devices that are real TEEP Agents on the software TEE, each in its own state directory, reached
through the real Broker. Chapters, in order (each builds on the state the previous ones left):

1. the catalog refuses a tampered envelope and one signed by an untrusted key, changing nothing in the database;
2. a device enrols on first contact, attests (evidence signed by its manufacturer's key) and gets a TC installed;
3. a device whose attestation fails gets nothing although the policy targets it, and the TAM records the failure;
4. a TC whose manifest carries its personalization data as a dependency is installed; the data lands in the TC's
   security domain only: another TC's domain cannot read it (SoftTee per-domain API), and it is never on disk in
   the clear;
5. a newer version uploaded is installed at the next session, while malformed TEEP bodies posted in the middle of
   that session get HTTP 4xx and change nothing in the database (snapshots before / after);
6. rollback is refused: an older version uploaded, then the newest withdrawn, and the device is never sent a lower
   sequence number, nor after its TC was removed (the TAM keeps its anti-rollback floor);
7. undeploying removes the TC (and its personalization data) from the device; a newer version brings it back.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from e2e_support import (
    APP,
    APP_MANIFEST,
    APP_TEXT,
    CONFIG,
    OTHER,
    OTHER_MANIFEST,
    OTHER_TEXT,
    SECRET,
    Interposer,
    SoftDevice,
    Tam,
    app_envelope,
    envelope,
    running_tam,
)
from tam_support import TEEP_TYPE, Keys, public_pem, snapshot, tamper_manifest

from veritee.errors import VerificationError
from veritee.service.broker import SessionEnd, SessionOutcome
from veritee.service.tee_domains import IsolationError


def test_a_fleet_lives_through_teep_over_http(db_url: str, tmp_path: Path) -> None:
    keys = Keys()
    with running_tam(db_url, tmp_path, keys) as tam:
        catalog_refuses_tampered_and_untrusted_envelopes(tam)
        alpha = SoftDevice(tmp_path / "alpha", tam, attestation_key=keys.attester)
        rogue = SoftDevice(tmp_path / "rogue", tam, attestation_key=None)
        enrols_attests_and_installs(tam, alpha)
        failing_attestation_gets_nothing(tam, rogue)
        personalization_reaches_only_its_domain(tam, alpha)
        update_goes_through_malformed_bodies(tam, alpha)
        rollback_is_refused(tam, alpha)
        undeploy_removes_and_a_newer_version_returns(tam, alpha)
        assert rogue.holds() == {} and tam.components(rogue) == {}  # nothing, to the end


def installed(outcome: SessionOutcome, *manifests: tuple[bytes, ...]) -> bool:
    return outcome.ok and outcome.installed == manifests and outcome.exchanges == 3


def nothing_sent(outcome: SessionOutcome) -> bool:
    """QueryRequest, QueryResponse, then 204: the TAM had nothing to send."""
    return outcome.ok and outcome.exchanges == 2 and outcome.ended_by is SessionEnd.TAM_DONE and not outcome.events[1:]


# --- 1. the catalog -----------------------------------------------------------------------------------------------
def catalog_refuses_tampered_and_untrusted_envelopes(tam: Tam) -> None:
    keys = tam.keys
    assert tam.admin.add_signer("vendor", public_pem(keys.signer))["thumbprint"] == keys.signer.thumbprint().hex()
    tam.admin.upload_tc(envelope(keys, OTHER, OTHER_MANIFEST, 1, b"other v1"))
    assert tam.admin.upload_tc(app_envelope(keys, 2, b"app v2"))["sequence_number"] == 2
    before = snapshot(tam.db)
    with pytest.raises(VerificationError):  # the manifest edited after signing (HTTP 422)
        tam.admin.upload_tc(tamper_manifest(app_envelope(keys, 5, b"app v5")))
    with pytest.raises(VerificationError):  # signed by a key that is no TC signer
        tam.admin.upload_tc(envelope(Keys(signer=keys.stranger), APP, APP_MANIFEST, 6, b"app v6"))
    assert snapshot(tam.db) == before
    assert [(tc["component_id"], tc["sequence_number"]) for tc in tam.admin.list_tcs()] == [
        (APP_TEXT, 2),
        (OTHER_TEXT, 1),
    ]
    tam.admin.add_deployment(OTHER_TEXT, "all")
    tam.admin.add_deployment(APP_TEXT, "attr:site=paris")


# --- 2. enrol, attest, install ------------------------------------------------------------------------------------
def enrols_attests_and_installs(tam: Tam, alpha: SoftDevice) -> None:
    assert tam.admin.list_devices() == []
    assert installed(alpha.session(), OTHER_MANIFEST)  # enrolled on first contact, attested, OTHER deployed to all
    view = tam.admin.device(alpha.thumbprint)
    assert view["attestation_status"] == "affirming" and view["attestation"]["passed"] is True
    assert view["last_error"] is None and view["last_seen_at"] is not None
    assert tam.components(alpha) == {OTHER_TEXT: (1, True)}
    assert alpha.holds() == {OTHER: b"other v1"}


# --- 3. failing attestation ---------------------------------------------------------------------------------------
def failing_attestation_gets_nothing(tam: Tam, rogue: SoftDevice) -> None:
    assert nothing_sent(rogue.session())
    view = tam.admin.device(rogue.thumbprint)  # enrolled, but its evidence is signed by a key nobody trusts
    assert view["attestation_status"] == "contraindicated" and view["attestation"]["passed"] is False
    assert view["last_error"].startswith("attestation failed")
    tam.admin.update_device(rogue.thumbprint, attributes={"site": "paris"})
    plan = tam.admin.device_plan(rogue.thumbprint)  # the policy wants both TCs on it ...
    assert sorted(i["component_id"] for i in plan["install"]) == [APP_TEXT, OTHER_TEXT]
    assert nothing_sent(rogue.session())  # ... the attestation gate stops them
    assert tam.admin.device(rogue.thumbprint)["attestation_status"] == "contraindicated"
    assert tam.components(rogue) == {} and rogue.holds() == {} and rogue.tee().domains() == []


# --- 4. personalization data --------------------------------------------------------------------------------------
def personalization_reaches_only_its_domain(tam: Tam, alpha: SoftDevice) -> None:
    tam.admin.update_device(alpha.thumbprint, attributes={"site": "paris"})
    assert installed(alpha.session(), APP_MANIFEST)
    assert alpha.holds() == {APP: b"app v2", CONFIG: SECRET, OTHER: b"other v1"}
    assert tam.components(alpha) == {APP_TEXT: (2, True), OTHER_TEXT: (1, True)}
    tee = alpha.tee()
    app_domain, other_domain = tee.domain_of(APP), tee.domain_of(OTHER)
    assert app_domain == tee.domain_of(CONFIG) == "app" and other_domain not in (None, "app")
    assert tee.domain("app").read(CONFIG) == SECRET  # the TC's own domain reads its personalization data
    assert other_domain is not None
    with pytest.raises(IsolationError):
        tee.domain(other_domain).read(CONFIG)  # another TC's domain cannot
    with pytest.raises(IsolationError):
        tee.domain(other_domain).read(APP)
    assert CONFIG not in tee.domain(other_domain).components()
    for path in alpha.layout.root.rglob("*"):  # and it is never stored in the clear
        assert not path.is_file() or SECRET not in path.read_bytes(), path


# --- 5. update, with malformed bodies in the middle of the session ------------------------------------------------
def update_goes_through_malformed_bodies(tam: Tam, alpha: SoftDevice) -> None:
    tam.admin.upload_tc(app_envelope(tam.keys, 3, b"app v3"))
    answers: list[int] = []
    unchanged: list[bool] = []

    def inject(genuine: bytes) -> None:
        """Before the Agent's QueryResponse reaches the TAM, post broken copies of it (and garbage)."""
        before = snapshot(tam.db)
        forged = [genuine[:-1] + bytes([genuine[-1] ^ 1]), genuine[: len(genuine) // 2], b"\xa0", b"\xff\x00"]
        with httpx.Client(verify=tam.pki.client_context(), timeout=10) as client:
            for body in forged:
                response = client.post(tam.url, content=body, headers={"Content-Type": TEEP_TYPE})
                assert response.headers["content-type"] == "application/problem+json"
                answers.append(response.status_code)
        unchanged.append(snapshot(tam.db) == before)

    outcome = alpha.session(transport=Interposer(tam.pki.client_context(), inject))
    assert answers == [422, 400, 400, 400] and unchanged == [True]  # a broken signature, truncated, not TEEP
    assert installed(outcome, APP_MANIFEST)  # the session kept waiting for the genuine QueryResponse
    assert alpha.holds()[APP] == b"app v3"
    assert tam.components(alpha) == {APP_TEXT: (3, True), OTHER_TEXT: (1, True)}


# --- 6. rollback --------------------------------------------------------------------------------------------------
def rollback_is_refused(tam: Tam, alpha: SoftDevice) -> None:
    tam.admin.upload_tc(app_envelope(tam.keys, 1, b"app v1"))  # an older version: kept in the catalog ...
    assert nothing_sent(alpha.session())  # ... never sent
    [newest] = [tc for tc in tam.admin.list_tcs(APP_TEXT) if tc["sequence_number"] == 3]
    tam.admin.delete_tc(newest["id"])  # withdrawn: the catalog's newest (2) is now below the device's (3)
    plan = tam.admin.device_plan(alpha.thumbprint)
    assert plan["install"] == [] and [s["reason"] for s in plan["skipped"]] == ["device-has-newer"]
    assert nothing_sent(alpha.session())
    assert alpha.holds()[APP] == b"app v3" and tam.components(alpha)[APP_TEXT] == (3, True)


# --- 7. undeploy, and back -----------------------------------------------------------------------------------------
def undeploy_removes_and_a_newer_version_returns(tam: Tam, alpha: SoftDevice) -> None:
    [deployment] = tam.admin.list_deployments(APP_TEXT)
    tam.admin.delete_deployment(deployment["id"])
    outcome = alpha.session()
    assert outcome.ok and outcome.unlinked == (APP_MANIFEST,) and outcome.installed == ()
    assert alpha.holds() == {OTHER: b"other v1"}  # the app and its personalization data are gone
    assert tam.components(alpha) == {APP_TEXT: (3, False), OTHER_TEXT: (1, True)}  # 3 stays: the floor

    tam.admin.add_deployment(APP_TEXT, "attr:site=paris")  # wanted again, but the catalog's newest is 2 < 3
    plan = tam.admin.device_plan(alpha.thumbprint)
    assert plan["install"] == [] and [s["reason"] for s in plan["skipped"]] == ["device-had-this-or-newer"]
    assert nothing_sent(alpha.session())
    assert alpha.holds() == {OTHER: b"other v1"}

    tam.admin.upload_tc(app_envelope(tam.keys, 4, b"app v4", config_sequence=2))
    assert installed(alpha.session(), APP_MANIFEST)
    assert alpha.holds() == {APP: b"app v4", CONFIG: SECRET, OTHER: b"other v1"}
    assert tam.components(alpha) == {APP_TEXT: (4, True), OTHER_TEXT: (1, True)}
    assert tam.admin.device(alpha.thumbprint)["last_error"] is None
