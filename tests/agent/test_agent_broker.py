"""The Broker against a real TAM over HTTP on loopback: full TEEP sessions into the software TEE."""

from __future__ import annotations

from agent_tam import TEEP, LoopbackTam
from agent_world import APP, APP_MANIFEST, OTHER, OTHER_MANIFEST, PAYLOAD, Keys

from veritee.service.broker import Broker, SessionEnd
from veritee.service.tee import SoftTee
from veritee.suit.builder import DependencySpec
from veritee.teep.agent import TeepAgent
from veritee.teep.codes import ErrorCode
from veritee.teep.events import ErrorReceived, SuccessReceived, UpdateApplied


def broker(url: str, keys: Keys, tee: SoftTee, **options: object) -> Broker:
    return Broker(url, TeepAgent(keys.agent_config(), tee), timeout=5, **options)  # type: ignore[arg-type]


def test_request_ta_installs_the_component_over_http(keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str) -> None:
    with broker(url, keys, tee) as b:
        outcome = b.request_ta(APP)
    assert outcome.ok and outcome.ended_by is SessionEnd.TAM_DONE
    assert outcome.exchanges == 3  # open -> QueryRequest; QueryResponse -> Update; Success -> 204
    assert outcome.installed == (APP_MANIFEST,)
    assert tee.read(APP) == PAYLOAD
    assert tee.installed_manifest(APP_MANIFEST) is not None
    assert any(isinstance(e, SuccessReceived) for e in tam.events)
    # the TAM's verifier saw evidence bound to its challenge and to the Agent's key
    assert tam.evidence[0].nonce == tam.challenges[0]
    assert tam.evidence[0].cnf_kid == keys.agent.public().thumbprint()


def test_binding_headers_of_every_request(keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str) -> None:
    with broker(url, keys, tee) as b:
        b.request_ta(APP)
    first, *rest = tam.requests
    assert first.body == b""
    assert first.headers["accept"] == TEEP
    assert "content-type" not in first.headers
    assert first.headers["content-length"] == "0"
    assert rest and all(r.body for r in rest)
    for record in rest:
        assert record.headers["accept"] == TEEP
        assert record.headers["content-type"] == TEEP
    assert all(r.headers["user-agent"].startswith("veritee-teep-broker/") for r in tam.requests)


def test_policy_check_with_nothing_to_do_is_two_exchanges(keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str) -> None:
    with broker(url, keys, tee) as b:
        outcome = b.request_policy_check()
    assert outcome.ok and outcome.exchanges == 2 and outcome.installed == ()
    assert tee.read(APP) is None


def test_sessions_repeat_and_unrequest_unlinks(keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str) -> None:
    with broker(url, keys, tee) as b:
        assert b.request_ta(APP).installed == (APP_MANIFEST,)
        assert b.request_policy_check().exchanges == 2  # the same Agent serves another session
        outcome = b.unrequest_ta(APP_MANIFEST)
    assert outcome.ok and outcome.unlinked == (APP_MANIFEST,)
    assert tee.read(APP) is None and tee.read(APP_MANIFEST) is None
    assert tee.installed_manifest(APP_MANIFEST) is not None  # the anti-rollback record outlives the unlink


def test_a_manifest_of_another_domain_cannot_replace_a_component(
    keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str
) -> None:
    with broker(url, keys, tee) as b:
        b.request_ta(APP)
        generation = tee.generation
        # a validly signed manifest of another Trusted Component (another domain) that targets APP's component id
        tam.catalog[OTHER] = keys.envelope(1, b"evil", component=APP, manifest_id=OTHER_MANIFEST)
        outcome = b.request_ta(OTHER)
    assert not outcome.ok
    assert [e.code for e in outcome.errors_sent] == [ErrorCode.MANIFEST_PROCESSING_FAILED]
    assert "domain" in outcome.failed_updates[0].reason
    assert tee.read(APP) == PAYLOAD and tee.generation == generation
    received = [e for e in tam.events if isinstance(e, ErrorReceived)]
    assert received and received[-1].code is ErrorCode.MANIFEST_PROCESSING_FAILED


def test_tam_pushes_an_update_by_policy(keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str) -> None:
    tam.push = [keys.envelope(1, b"pushed", component=OTHER, manifest_id=OTHER_MANIFEST)]
    with broker(url, keys, tee) as b:
        outcome = b.request_policy_check()
    assert outcome.installed == (OTHER_MANIFEST,)
    assert tee.read(OTHER) == b"pushed"
    assert tee.domain_of(OTHER) != tee.domain_of(APP) or tee.domain_of(APP) is None
    applied = [e for e in outcome.events if isinstance(e, UpdateApplied)]
    assert applied and applied[0].installed == (OTHER_MANIFEST,)


def test_a_personalization_manifest_with_its_ta_as_dependency(
    keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str
) -> None:
    personal, personal_manifest = (b"TEEP-Device", b"personalization", b"app"), (b"TEEP-Device", b"manifests", b"p")
    tam.catalog[personal] = keys.envelope(
        1,
        b"personal data",
        component=personal,
        manifest_id=personal_manifest,
        dependencies=(DependencySpec(keys.envelope(1), APP_MANIFEST, integrated_key="#ta"),),
    )
    with broker(url, keys, tee) as b:
        outcome = b.request_ta(personal)
    assert outcome.ok and outcome.installed == (personal_manifest,)
    assert tee.read(APP) == PAYLOAD and tee.read(personal) == b"personal data"
    assert tee.domain_of(APP) != tee.domain_of(personal)  # the dependency is a trust domain of its own
    assert tee.references(APP_MANIFEST) == {personal_manifest}  # the reference count survived the TEEP Update
