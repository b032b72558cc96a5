"""TPM-backed platform evidence in the Agent's EAT (claim -70001), with swtpm, end to end over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_tam import LoopbackTam
from agent_world import APP, APP_MANIFEST, DEVICE, PAYLOAD, Keys

from swtpm_harness import start_swtpm
from veritee.errors import FreshnessError, StorageError, ValidationError
from veritee.service.broker import Broker
from veritee.service.tee import SoftTee
from veritee.service.tee_evidence import (
    PLATFORM_EVIDENCE_CLAIM,
    PlatformEvidence,
    PlatformEvidenceAgent,
    TpmPlatform,
    decode_platform_evidence,
    quote_nonce,
    verify_platform_evidence,
)
from veritee.service.tee_tpm import TpmSealedMasterKey
from veritee.teep.codes import ErrorCode
from veritee.teep.eat import EatClaims, make_teep_claims
from veritee.teep.events import ErrorReceived
from veritee.tpm.alg import HashAlg
from veritee.tpm.device import TpmCommandError
from veritee.tpm.swtpm import SwtpmProcess


@pytest.fixture(scope="module")
def swtpm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwtpmProcess]:
    with start_swtpm(tmp_path_factory.mktemp("tpm")) as process:
        yield process


@pytest.mark.swtpm
def test_the_tam_verifies_a_tpm_quote_over_its_challenge(
    swtpm: SwtpmProcess, tmp_path: Path, keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str
) -> None:
    platform = TpmPlatform.load_or_create(swtpm.tcti, tmp_path / "ak.cbor")
    verified = []

    def verifier(claims: EatClaims, challenge: bytes) -> None:
        evidence = decode_platform_evidence(claims)
        assert evidence is not None
        verified.append(verify_platform_evidence(evidence, challenge, expected_ak_name=platform.ak.name))

    tam.on_evidence = verifier
    agent = PlatformEvidenceAgent(keys.agent_config(), tee, platform=platform)
    with Broker(url, agent, timeout=10) as broker:
        outcome = broker.request_ta(APP)
    assert outcome.installed == (APP_MANIFEST,)
    (quote,) = verified
    assert quote.attest.extra_data == tam.challenges[0]  # the TEEP challenge is the quote's qualifying data
    assert sorted(quote.pcrs[HashAlg.SHA256]) == list(range(8))
    # the same evidence does not pass for another challenge (no replay into another session)
    evidence = decode_platform_evidence(tam.evidence[0])
    assert evidence is not None
    with pytest.raises(FreshnessError):
        verify_platform_evidence(evidence, b"another challenge of 32 bytes...")
    with pytest.raises(ValidationError, match="registered"):
        verify_platform_evidence(evidence, tam.challenges[0], expected_ak_name=b"\x00\x0b" + bytes(32))


@pytest.mark.swtpm
def test_the_ak_is_created_once_and_kept_private(swtpm: SwtpmProcess, tmp_path: Path) -> None:
    first = TpmPlatform.load_or_create(swtpm.tcti, tmp_path / "keys" / "ak.cbor")
    again = TpmPlatform.load_or_create(swtpm.tcti, tmp_path / "keys" / "ak.cbor")
    assert first.ak == again.ak
    assert (tmp_path / "keys" / "ak.cbor").stat().st_mode & 0o777 == 0o600
    challenge = bytes(range(100))  # longer than a TPM nonce: the quote carries its SHA-256
    quote = verify_platform_evidence(again.evidence(challenge), challenge)
    assert quote.attest.extra_data == quote_nonce(challenge) == HashAlg.SHA256.digest(challenge)


@pytest.mark.swtpm
def test_a_failing_tpm_is_answered_with_a_temporary_error(
    tmp_path: Path, keys: Keys, tee: SoftTee, tam: LoopbackTam, url: str
) -> None:
    with start_swtpm(tmp_path / "tpm") as process:
        platform = TpmPlatform.load_or_create(process.tcti, tmp_path / "ak.cbor")
    agent = PlatformEvidenceAgent(keys.agent_config(), tee, platform=platform)  # the TPM is gone now
    with Broker(url, agent, timeout=10) as broker:
        outcome = broker.request_ta(APP)
    assert [e.code for e in outcome.errors_sent] == [ErrorCode.TEMPORARY_ERROR]
    assert "platform evidence" in outcome.errors_sent[0].reason
    assert any(isinstance(e, ErrorReceived) and e.code is ErrorCode.TEMPORARY_ERROR for e in tam.events)
    assert tee.read(APP) is None


@pytest.mark.swtpm
def test_a_tpm_sealed_master_key_opens_only_on_its_tpm(swtpm: SwtpmProcess, tmp_path: Path, keys: Keys) -> None:
    sealed = tmp_path / "keys" / "master.sealed"
    tee = SoftTee(tmp_path / "tee", TpmSealedMasterKey(swtpm.tcti, sealed))
    keys.install(tee, keys.envelope(1)).raise_for_failure()
    assert sealed.stat().st_mode & 0o777 == 0o600
    key = TpmSealedMasterKey(swtpm.tcti, sealed).load()
    assert key not in sealed.read_bytes()
    assert SoftTee(tmp_path / "tee", TpmSealedMasterKey(swtpm.tcti, sealed)).read(APP) == PAYLOAD
    with start_swtpm(tmp_path / "other", unique_ek=True) as other, pytest.raises(TpmCommandError):
        SoftTee(tmp_path / "tee", TpmSealedMasterKey(other.tcti, sealed))  # another TPM cannot unseal it
    sealed.write_bytes(b"\x82\x41\x00\x41\x00")
    with pytest.raises(StorageError):
        TpmSealedMasterKey(swtpm.tcti, sealed).load()


def test_platform_evidence_claim_shape(keys: Keys) -> None:
    good = {"ak": b"a", "attest": b"b", "sig": b"c", "pcrs": b"d"}
    assert PlatformEvidence.from_cbor(good).to_cbor() == good
    for bad in ({**good, "extra": b"x"}, {"ak": b"a"}, {**good, "sig": ""}, {**good, "pcrs": b""}, [1, 2], None):
        with pytest.raises(ValidationError):
            PlatformEvidence.from_cbor(bad)
    claims = make_teep_claims(
        agent_key=keys.agent,
        ueid=DEVICE.ueid,
        oemid=DEVICE.oemid,
        hwmodel=DEVICE.hwmodel,
        hwversion=DEVICE.hwversion,
        manifests=DEVICE.manifests,
        nonce=bytes(16),
        iat=int(time.time()),
    )
    assert decode_platform_evidence(claims) is None
    with_claim = EatClaims({**claims.claims, PLATFORM_EVIDENCE_CLAIM: {"ak": 1}})
    with pytest.raises(ValidationError):
        decode_platform_evidence(with_claim)
    assert quote_nonce(bytes(64)) == bytes(64) and len(quote_nonce(bytes(65))) == 32
