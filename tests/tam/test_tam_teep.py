"""TEEP sessions through TeepEndpoint.handle (the bytes an HTTP POST carries) with a real TEEP Agent: enrolment,
attestation, install, update, delete, rollback, failing attestation, forged and malformed messages, single-use
tokens. The full life cycle and the forged-message test run on SQLite and PostgreSQL (``db``); the others exercise
the same repository functions (tested on both in test_tam_service.py) on SQLite only, to keep the suite fast."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from tam_support import (
    APP,
    APP_MANIFEST,
    APP_TEXT,
    DEVICE,
    Device,
    Keys,
    SoftQuoter,
    make_service,
    open_db,
    public_pem,
    snapshot,
)

from veritee import cbor
from veritee.appraisal.ear import EAR_PROFILE, VerifierId, attestation_result, sign_jwt
from veritee.appraisal.findings import Check
from veritee.appraisal.policy import compile_policy
from veritee.errors import (
    DecodeError,
    SignatureError,
    UntrustedSignerError,
    VeriteeError,
)
from veritee.service.tam import TamService
from veritee.service.tam_attest import AttestationConfig, EatPolicy, LocalAppraiser
from veritee.service.tam_policy import SkipReason
from veritee.service.tam_teep import (
    SessionCapacityError,
    TeepEndpoint,
    TokenReusedError,
    UnknownSessionError,
    message_token,
)
from veritee.service.tee_evidence import PlatformEvidenceAgent
from veritee.store import tam_repo as repo
from veritee.store.db import Database
from veritee.store.tam_models import TeepToken
from veritee.teep.agent import TeepAgent
from veritee.teep.codes import DataItem
from veritee.teep.cose_wrap import peek_message, sign_message
from veritee.teep.events import UpdateApplied
from veritee.teep.messages import QueryRequest, QueryResponse, decode_message
from veritee.teep.tam import TamState


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_db(db_url)
    yield database
    database.dispose()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    database = open_db(f"sqlite:///{tmp_path / 'tam.db'}")
    yield database
    database.dispose()


@pytest.fixture
def keys() -> Keys:
    return Keys()


def tam(db: Database, keys: Keys, **changes: object) -> tuple[TamService, TeepEndpoint]:
    service = make_service(db, keys, **changes)
    service.add_signer("vendor", public_pem(keys.signer), exist_ok=True)
    return service, TeepEndpoint(service)


def test_enrol_attest_install_update_delete_and_no_rollback(db: Database, keys: Keys) -> None:
    service, endpoint = tam(db, keys)
    service.upload_tc(keys.envelope(1, b"v1"))
    service.add_deployment(APP_TEXT, "attr:site=paris")
    device = Device(keys)

    sent, _ = device.session(endpoint.handle)  # first contact: enrolled and attested, but not targeted yet
    assert sent == 1 and device.installed() == {}
    view = service.device(device.thumbprint)
    assert view.attestation_status == "affirming" and view.attestation is not None
    assert view.attestation["mode"] == "background-check" and view.attestation["ueid"] == DEVICE.ueid.hex()
    assert view.attestation["oemid"] == "894823" and view.last_seen_at is not None

    service.update_device(view.id, attributes={"site": "paris"})
    sent, events = device.session(endpoint.handle)
    assert sent == 2 and device.installed() == {APP: b"v1"}
    assert any(isinstance(e, UpdateApplied) and e.installed == (APP_MANIFEST,) for e in events)
    assert service.device(view.id).installed == {APP_TEXT: 1}

    assert device.session(endpoint.handle)[0] == 1  # up to date: QueryRequest, then 204

    service.upload_tc(keys.envelope(2, b"v2"))
    assert device.session(endpoint.handle)[0] == 2 and device.installed() == {APP: b"v2"}
    assert service.device(view.id).installed == {APP_TEXT: 2}

    service.undeploy(APP_TEXT)
    assert device.session(endpoint.handle)[0] == 2 and device.installed() == {}
    [component] = service.device(view.id).components
    assert (component.installed, component.sequence_number) == (False, 2)

    service.add_deployment(APP_TEXT, "all")  # the device refuses sequence numbers at or below its record: 2
    assert device.session(endpoint.handle)[0] == 1 and device.installed() == {}
    assert [s.reason for s in endpoint.preview(view.id).skipped] == [SkipReason.ROLLBACK_FLOOR]
    service.upload_tc(keys.envelope(3, b"v3"))
    assert device.session(endpoint.handle)[0] == 2 and device.installed() == {APP: b"v3"}

    v3 = next(v for v in service.list_tcs() if v.sequence_number == 3)
    service.delete_tc(v3.id)  # withdrawn: the newest is now 2, below what the device has
    assert device.session(endpoint.handle)[0] == 1 and device.installed() == {APP: b"v3"}
    assert [s.reason for s in endpoint.preview(view.id).skipped] == [SkipReason.DEVICE_NEWER]

    with db.transaction() as s:
        tokens = s.scalars(select(TeepToken)).all()
        assert tokens and all(t.used_at is not None for t in tokens)  # every token answered exactly once
        assert {t.device_id for t in tokens if t.device_id is not None} == {view.id}


def test_failing_attestation_gets_nothing_and_is_recorded(sqlite_db: Database, keys: Keys) -> None:
    service, endpoint = tam(sqlite_db, keys)
    service.upload_tc(keys.envelope(1, b"v1"))
    service.add_deployment(APP_TEXT, "all")

    rogue = Device(keys, attestation_key=keys.stranger)  # evidence signed by a key nobody trusts
    assert rogue.session(endpoint.handle)[0] == 1 and rogue.installed() == {}
    view = service.device(rogue.thumbprint)
    assert view.attestation_status == "contraindicated" and view.installed == {}
    assert view.last_error is not None and view.last_error.startswith("attestation failed")
    assert view.attestation is not None and view.attestation["passed"] is False

    strict_service, strict = tam(sqlite_db, keys, attestation=AttestationConfig(
        attester_keys=(keys.attester.public(),), policy=EatPolicy(hwmodels=frozenset({b"another model"}))))  # fmt: skip
    other = Device(keys)
    assert other.session(strict.handle)[0] == 1 and other.installed() == {}
    other_view = strict_service.device(other.thumbprint)
    assert other_view.attestation_status == "contraindicated"
    assert other_view.attestation is not None and "hwmodel" in other_view.attestation["reason"]

    mute = Device(keys)  # an Agent that cannot attest answers with an Error: recorded, and it gets nothing
    mute.agent = TeepAgent(replace(mute.config(), attestation_key=None, device=None), mute.store)
    assert mute.session(endpoint.handle)[0] == 1 and mute.installed() == {}
    mute_view = service.device(mute.thumbprint)
    assert mute_view.attestation_status == "none"
    assert mute_view.last_error is not None and "PERMANENT_ERROR" in mute_view.last_error

    service.block_device(other.thumbprint, "quarantined")  # attests fine, but blocked: nothing deployed
    assert other.session(endpoint.handle)[0] == 1 and other.installed() == {}
    assert service.device(other.thumbprint).attestation_status == "affirming"
    service.unblock_device(other.thumbprint)
    assert other.session(endpoint.handle)[0] == 2 and other.installed() == {APP: b"v1"}


def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def test_forged_and_malformed_messages_change_nothing(db: Database, keys: Keys) -> None:
    service, endpoint = tam(db, keys)
    service.upload_tc(keys.envelope(1, b"v1"))
    service.add_deployment(APP_TEXT, "all")
    device = Device(keys)
    assert device.agent is not None
    request = endpoint.handle(b"")
    assert request is not None
    _, response = device.agent.receive(request, time.time())
    assert response is not None
    token = message_token(response)
    before = snapshot(db)

    with pytest.raises(DecodeError):
        endpoint.handle(b"\xff\x00garbage")
    with pytest.raises(SignatureError):
        endpoint.handle(_flip_last_byte(response))  # the genuine message with a broken signature
    stranger = QueryResponse(token=token, selected_version=0)
    with pytest.raises(UntrustedSignerError):  # a signer nobody registered, presenting no key
        endpoint.handle(sign_message(stranger, keys.stranger))
    with pytest.raises(UnknownSessionError):
        endpoint.handle(sign_message(QueryResponse(token=b"\x01" * 16), keys.stranger))
    with pytest.raises(DecodeError):
        endpoint.handle(cbor.encode(cbor.CBORTag(18, [b"", {}, b"", b""])))
    assert snapshot(db) == before

    update = endpoint.handle(response)  # the session kept waiting for the genuine answer
    assert update is not None
    _, success = device.agent.receive(update, time.time())
    assert success is not None and endpoint.handle(success) is None
    assert device.installed() == {APP: b"v1"}
    with pytest.raises(UnknownSessionError):
        endpoint.handle(response)  # a replay: that token was answered


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(min_size=1, max_size=200))
def test_random_bodies_get_typed_errors_and_change_nothing(sqlite_db: Database, keys: Keys, body: bytes) -> None:
    _service, endpoint = tam(sqlite_db, keys)
    before = snapshot(sqlite_db)
    with pytest.raises(VeriteeError):
        endpoint.handle(body)
    assert snapshot(sqlite_db) == before


def test_tokens_are_single_use_across_replicas_and_expire(sqlite_db: Database, keys: Keys) -> None:
    clock = [time.time()]
    service, endpoint = tam(sqlite_db, keys, clock=lambda: clock[0], token_lifetime=60.0)
    service.upload_tc(keys.envelope(1, b"v1"))
    service.add_deployment(APP_TEXT, "all")
    device = Device(keys)
    assert device.agent is not None

    request = endpoint.handle(b"")
    assert request is not None
    _, response = device.agent.receive(request, clock[0])
    assert response is not None
    with sqlite_db.transaction() as s:  # another replica accepted this token first
        assert repo.consume_teep_token(s, message_token(request).hex(), service.now())
    before = snapshot(sqlite_db)
    with pytest.raises(TokenReusedError):
        endpoint.handle(response)
    assert snapshot(sqlite_db) == before

    request = endpoint.handle(b"")
    assert request is not None
    _, response = device.agent.receive(request, clock[0])
    assert response is not None
    clock[0] += 61
    with pytest.raises(UnknownSessionError):
        endpoint.handle(response)
    assert len(endpoint.sessions) == 0
    assert device.installed() == {}


def test_devices_must_be_registered_when_enrolment_is_off(sqlite_db: Database, keys: Keys) -> None:
    service, endpoint = tam(sqlite_db, keys, enroll_on_first_contact=False)
    service.upload_tc(keys.envelope(1, b"v1"))
    service.add_deployment(APP_TEXT, "all")
    device = Device(keys)
    with pytest.raises(UntrustedSignerError):
        device.session(endpoint.handle)
    assert service.list_devices() == []

    quiet = Device(keys, present_key=False)
    service.register_device(quiet.agent_key, name="pre-registered")
    assert quiet.session(endpoint.handle)[0] == 2 and quiet.installed() == {APP: b"v1"}
    assert service.device(quiet.thumbprint).name == "pre-registered"


# --- passport mode and platform evidence (the gate's logic is covered in test_tam_attest.py) ------------------
def _passport_response(request: bytes, keys: Keys, agent_key: object, *, nonce: bytes | None = None) -> bytes:
    query = decode_message(peek_message(request).payload)
    assert isinstance(query, QueryRequest) and query.challenge is not None
    assert query.data_item_requested & DataItem.ATTESTATION
    result = attestation_result((), {Check.QUOTE}, verifier_id=VerifierId("veritee", "test"), policy_id="p",
                                nonce=nonce or query.challenge)  # fmt: skip
    ear = sign_jwt(result, keys.verifier.key)  # type: ignore[arg-type]
    response = QueryResponse(
        token=query.token,
        selected_version=0,
        attestation_payload=ear.encode("ascii"),
        attestation_payload_format=f"application/eat+jwt; eat_profile={EAR_PROFILE}",
    )
    return sign_message(response, agent_key, present_key=True)  # type: ignore[arg-type]


def test_passport_mode_accepts_a_fresh_ear_from_a_trusted_verifier(sqlite_db: Database, keys: Keys) -> None:
    attestation = AttestationConfig(verifier_keys=(keys.verifier.public(),))
    service, endpoint = tam(sqlite_db, keys, attestation=attestation)
    service.upload_tc(keys.envelope(1, b"v1"))
    service.add_deployment(APP_TEXT, "all")
    device = Device(keys)
    assert device.agent is not None

    request = endpoint.handle(b"")
    assert request is not None
    stale = _passport_response(request, keys, device.agent_key, nonce=b"another session!")
    assert endpoint.handle(stale) is None
    view = service.device(device.thumbprint)
    assert view.attestation_status == "contraindicated" and view.attestation is not None
    assert view.attestation["mode"] == "passport"

    request = endpoint.handle(b"")
    assert request is not None
    update = endpoint.handle(_passport_response(request, keys, device.agent_key))
    assert update is not None
    _, success = device.agent.receive(update, time.time())
    assert success is not None and endpoint.handle(success) is None
    assert device.installed() == {APP: b"v1"}
    assert service.device(device.thumbprint).attestation_status == "affirming"


def test_platform_evidence_in_the_eat_is_appraised(sqlite_db: Database, keys: Keys) -> None:
    policy = compile_policy(None, None, name="quote-only")
    attestation = AttestationConfig(attester_keys=(keys.attester.public(),), platform=LocalAppraiser(policy),
                                    policy=EatPolicy(require_platform_evidence=True))  # fmt: skip
    service, endpoint = tam(sqlite_db, keys, attestation=attestation)
    service.upload_tc(keys.envelope(1, b"v1"))
    service.add_deployment(APP_TEXT, "all")

    def tpm_device(quoter: SoftQuoter) -> Device:
        device = Device(keys)
        device.agent = PlatformEvidenceAgent(device.config(), device.store, platform=quoter)
        return device

    replayed = tpm_device(SoftQuoter(wrong_nonce=True))
    assert replayed.session(endpoint.handle)[0] == 1 and replayed.installed() == {}
    view = service.device(replayed.thumbprint)
    assert view.attestation is not None and view.attestation["platform"]["status"] == "contraindicated"

    plain = Device(keys)  # no platform evidence, but the policy requires it
    assert plain.session(endpoint.handle)[0] == 1 and plain.installed() == {}

    genuine = tpm_device(SoftQuoter())
    assert genuine.session(endpoint.handle)[0] == 2 and genuine.installed() == {APP: b"v1"}
    view = service.device(genuine.thumbprint)
    assert view.attestation is not None and view.attestation["platform"]["status"] == "affirming"
    assert view.attestation["platform"]["policy_id"] == policy.policy_id


def test_session_state_lives_in_memory_by_token(sqlite_db: Database, keys: Keys) -> None:
    _service, endpoint = tam(sqlite_db, keys, max_sessions=2)
    first = endpoint.handle(b"")
    endpoint.handle(b"")
    assert first is not None and len(endpoint.sessions) == 2
    before = snapshot(sqlite_db)
    with pytest.raises(SessionCapacityError):
        endpoint.handle(b"")  # full (and nothing has expired): refused before anything is stored
    assert snapshot(sqlite_db) == before
    entry = endpoint.sessions.take(message_token(first), time.time())
    assert entry is not None and entry.session.state is TamState.AWAIT_QUERY_RESPONSE
