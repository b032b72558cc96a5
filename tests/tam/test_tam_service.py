"""TamService and the repository on SQLite and PostgreSQL: signers, catalog upload, devices, deployments, tokens."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from tam_support import (
    APP_MANIFEST,
    APP_TEXT,
    APP_UUID_TEXT,
    OTHER,
    OTHER_MANIFEST,
    OTHER_TEXT,
    Keys,
    make_service,
    new_key,
    open_db,
    public_pem,
    snapshot,
    tamper_manifest,
)

from veritee import cbor
from veritee.cose import sign1
from veritee.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    DecodeError,
    DigestMismatchError,
    NotFoundError,
    PolicyError,
    SignatureError,
    UntrustedSignerError,
    ValidationError,
)
from veritee.service.tam import TamService
from veritee.store import tam_repo as repo
from veritee.store.db import Database
from veritee.store.tam_models import AdminToken
from veritee.suit.model import SuitDigest


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_db(db_url)
    yield database
    database.dispose()


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def service(db: Database, keys: Keys) -> TamService:
    tam = make_service(db, keys)
    tam.add_signer("vendor", public_pem(keys.signer))
    return tam


def test_signers_are_stored_once_and_only_unused_ones_are_deleted(service: TamService, keys: Keys) -> None:
    [vendor] = service.list_signers()
    assert vendor.thumbprint == keys.signer.thumbprint().hex() and "PRIVATE" not in vendor.public_key_pem
    with pytest.raises(ConflictError):
        service.add_signer("again", public_pem(keys.signer))
    assert service.add_signer("again", public_pem(keys.signer), exist_ok=True).id == vendor.id
    other = service.add_signer("other", public_pem(keys.stranger))
    service.upload_tc(keys.envelope(1, b"v1"))
    with pytest.raises(ConflictError):
        service.delete_signer(vendor.id)
    service.delete_signer(other.id)
    with pytest.raises(NotFoundError):
        service.delete_signer(other.id)
    assert [s.name for s in service.list_signers()] == ["vendor"]
    service.delete_tc(service.list_tcs()[0].id)
    service.delete_signer(vendor.id)
    with pytest.raises(ConfigError):
        service.upload_tc(keys.envelope(2, b"v2"))


def test_upload_records_the_version_and_what_identifies_it(service: TamService, keys: Keys) -> None:
    envelope = keys.envelope(3, b"trusted app v3", manifest_id=APP_MANIFEST)
    view = service.upload_tc(envelope, "third")
    assert (view.component_id, view.sequence_number, view.description) == (APP_TEXT, 3, "third")
    assert view.manifest_id == "TEEP-Device/manifests/0x8d82573a926d4754935332dc29997f74"
    assert view.image_digest == str(SuitDigest.compute(b"trusted app v3"))
    assert view.size == len(envelope) and service.tc_envelope(view.id) == envelope
    assert service.tc(view.id) == view
    assert [v.id for v in service.list_tcs(APP_UUID_TEXT)] == [view.id]
    with pytest.raises(ConflictError):
        service.upload_tc(keys.envelope(3, b"another v3"))
    with pytest.raises(ConflictError):
        service.upload_tc(keys.envelope(1, b"o1", component=OTHER, manifest_id=APP_MANIFEST))
    with pytest.raises(ConflictError):
        service.upload_tc(keys.envelope(2, b"v2", manifest_id=OTHER_MANIFEST))


def _tampered_signature(envelope: bytes) -> bytes:
    body = dict(cbor.decode(envelope))
    wrapper = cbor.decode(body[2])
    sign1 = cbor.decode(wrapper[1])
    value = list(sign1.value)
    value[3] = bytes([value[3][0] ^ 1]) + value[3][1:]
    wrapper[1] = cbor.encode(cbor.CBORTag(18, value))
    body[2] = cbor.encode(wrapper)
    return cbor.encode(body)


def test_tampered_untrusted_or_malformed_envelopes_are_refused_with_nothing_stored(
    db: Database, service: TamService, keys: Keys
) -> None:
    genuine = keys.envelope(1, b"v1")
    before = snapshot(db)
    with pytest.raises(DigestMismatchError):
        service.upload_tc(tamper_manifest(genuine))
    with pytest.raises(SignatureError):
        service.upload_tc(_tampered_signature(genuine))
    with pytest.raises(UntrustedSignerError):
        service.upload_tc(keys.envelope(1, b"v1", signer=keys.stranger))
    with pytest.raises(DecodeError):
        service.upload_tc(genuine[:-3])
    with pytest.raises(ValidationError):
        service.upload_tc(keys.envelope(1, b"v1", manifest_id=None))
    assert snapshot(db) == before
    service.upload_tc(genuine)
    assert len(service.list_tcs()) == 1


def test_an_envelope_signed_by_a_delegated_key_is_recorded_under_the_delegating_signer(
    service: TamService, keys: Keys
) -> None:
    delegate = new_key()
    root = service.add_signer("second vendor", public_pem(keys.stranger))  # not the first signer stored
    claims = cbor.encode({8: {1: delegate.public().to_cose_key()}})
    cwt = sign1(claims, keys.stranger, protected={1: int(keys.stranger.default_alg())})
    body = dict(cbor.decode(keys.envelope(1, b"delegated v1", signer=delegate)))
    envelope = cbor.encode({1: cbor.encode([[cwt]]), **body})
    view = service.upload_tc(envelope)
    assert view.signer_id == root.id
    with pytest.raises(UntrustedSignerError):  # the same chain rooted at a key nobody trusts
        rogue = sign1(claims, new_key(), protected={1: int(keys.signer.default_alg())})
        service.upload_tc(cbor.encode({1: cbor.encode([[rogue]]), **body}))


def test_catalog_queries(db: Database, service: TamService, keys: Keys) -> None:
    for seq in (1, 4, 2):
        service.upload_tc(keys.envelope(seq, f"v{seq}".encode()))
    service.upload_tc(keys.envelope(7, b"o7", component=OTHER, manifest_id=OTHER_MANIFEST))
    with db.transaction() as s:
        newest = repo.newest_tcs(s)
        assert {c: t.sequence_number for c, t in newest.items()} == {APP_TEXT: 4, OTHER_TEXT: 7}
        assert list(repo.newest_tcs(s, [OTHER_TEXT])) == [OTHER_TEXT]
        digest = str(SuitDigest.compute(b"v2"))
        assert [t.sequence_number for t in repo.tcs_by_image_digest(s, APP_TEXT, digest)] == [2]
        found = repo.tc_by_manifest_digest(s, newest[APP_TEXT].manifest_digest)
        assert found is not None and found.sequence_number == 4
    withdrawn = next(v for v in service.list_tcs() if v.sequence_number == 4)
    service.delete_tc(withdrawn.id)
    assert [v.sequence_number for v in service.list_tcs(APP_TEXT)] == [1, 2]
    with pytest.raises(NotFoundError):
        service.delete_tc(withdrawn.id)


def test_devices_register_update_and_block(db: Database, service: TamService) -> None:
    agent_key, attester = new_key(), new_key()
    view = service.register_device(agent_key, name="node-1", attributes={"site": "paris"}, attestation_key=attester)
    thumbprint = agent_key.public().thumbprint().hex()
    assert view.key_thumbprint == thumbprint and view.has_attestation_key and view.attestation_status == "none"
    assert service.device(thumbprint.upper()) == service.device(str(view.id))
    updated = service.update_device(view.id, attributes={"rack": 3, "site": None, "secure": True}, name="n1")
    assert updated.attributes == {"rack": 3, "secure": True} and updated.name == "n1"
    with pytest.raises(ValidationError):
        service.update_device(view.id, attributes={"bad": [1, 2]})
    blocked = service.block_device(thumbprint, "quarantined by the verifier")
    assert blocked.blocked and blocked.blocked_reason == "quarantined by the verifier"
    assert not service.unblock_device(view.id).blocked
    with pytest.raises(ConflictError):
        service.register_device(agent_key)
    for ref in ("999", "f" * 64, "node-1"):
        with pytest.raises(NotFoundError):
            service.device(ref)
    assert service.device("n1").id == view.id  # a unique name names the device too
    twin = service.register_device(new_key(), name="n1")
    with pytest.raises(ValidationError):
        service.device("n1")
    assert service.device(twin.key_thumbprint).id == twin.id
    assert [d.id for d in service.list_devices()] == [view.id, twin.id]
    at = datetime(2030, 1, 1, tzinfo=UTC)
    with db.transaction() as s:  # a removed component keeps its sequence number: the device's anti-rollback floor
        repo.mark_installed(s, view.id, APP_TEXT, 4, "sha256:00", at)
        repo.mark_removed(s, view.id, APP_TEXT, at)
        repo.mark_removed(s, view.id, OTHER_TEXT, at)
    [component] = service.device(view.id).components
    assert (component.component_id, component.sequence_number, component.installed) == (APP_TEXT, 4, False)
    assert service.device(view.id).installed == {}


def test_deployments(service: TamService) -> None:
    first = service.add_deployment(APP_UUID_TEXT, "attr:site=paris", 2)
    assert (first.component_id, first.selector, first.min_sequence_number) == (APP_TEXT, "attr:site=paris", 2)
    with pytest.raises(ConflictError):
        service.add_deployment(APP_TEXT, "attr: site = paris")
    with pytest.raises(PolicyError):
        service.add_deployment(APP_TEXT, "rack:3")
    with pytest.raises(ValidationError):
        service.add_deployment(APP_TEXT, "all", -1)
    second = service.add_deployment(APP_TEXT, "device:1,2")
    service.add_deployment(OTHER_TEXT, "all")
    assert [d.id for d in service.list_deployments(APP_TEXT)] == [first.id, second.id]
    assert service.undeploy(APP_TEXT, "device:2,1") == [second.id]
    with pytest.raises(NotFoundError):
        service.undeploy(APP_TEXT, "device:1,2")
    assert service.undeploy(APP_TEXT) == [first.id]
    service.delete_deployment(service.list_deployments()[0].id)
    assert service.list_deployments() == []
    with pytest.raises(NotFoundError):
        service.delete_deployment(first.id)


def test_admin_and_teep_tokens(db: Database, service: TamService) -> None:
    token = service.create_admin_token("ci")
    assert service.authenticate(token) == "ci"
    with db.transaction() as s:
        stored = s.scalars(select(AdminToken)).one()
        assert stored.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert token not in repr(snapshot(db))
    for wrong in (None, "", token + "x", "vt_" + "A" * 43, "Bearer " + token):
        with pytest.raises(AuthError):
            service.authenticate(wrong)
    with pytest.raises(ConflictError):
        service.create_admin_token("ci")
    service.revoke_admin_token("ci")
    with pytest.raises(AuthError):
        service.authenticate(token)
    assert service.list_admin_tokens()[0]["revoked_at"] is not None
    with pytest.raises(NotFoundError):
        service.revoke_admin_token("nobody")

    now = datetime(2030, 1, 1, tzinfo=UTC)  # TEEP tokens: accepted once, until they expire
    with db.transaction() as s:
        repo.issue_teep_token(s, "aa", device_id=None, issued_at=now, expires_at=now + timedelta(seconds=60))
        repo.issue_teep_token(s, "bb", device_id=None, issued_at=now, expires_at=now + timedelta(seconds=60))
    with db.transaction() as s:
        assert repo.consume_teep_token(s, "aa", now + timedelta(seconds=1))
    with db.transaction() as s:
        assert not repo.consume_teep_token(s, "aa", now + timedelta(seconds=2))
        assert not repo.consume_teep_token(s, "zz", now)
        assert not repo.consume_teep_token(s, "bb", now + timedelta(seconds=61))
        assert repo.purge_teep_tokens(s, now + timedelta(seconds=61)) == 2
        assert repo.teep_tokens(s, ["aa", "bb"]) == []
