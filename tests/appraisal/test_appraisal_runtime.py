"""IMA appraisal against runtime policies: signatures, keys and buffers, excludes, boot_aggregate, violations, and the
fast replay compared with veritee.ima's."""

from __future__ import annotations

import hashlib
import struct

import pytest
from appraisal_support import SoftTpm, bundle_files, ima_buf_line, ima_ng_line, ima_sig_line, keylime_policy, pcr10
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from hypothesis import given, settings
from hypothesis import strategies as st

from veritee.appraisal import Appraisal, appraise
from veritee.appraisal.ima_replay import KnownLine, build_known_lines, replay_lines
from veritee.appraisal.policy import RuntimePolicy, SigningKey, compile_policy, ima_keyid
from veritee.errors import DigestMismatchError
from veritee.ima import ImaState, replay_incremental, split_lines
from veritee.tpm.alg import HashAlg


@pytest.fixture(scope="module")
def tpm() -> SoftTpm:
    return SoftTpm()


def _run(tpm: SoftTpm, lines: list[tuple[str, bytes]], policy: RuntimePolicy, **pcrs: bytes) -> Appraisal:
    text = "".join(line + "\n" for line, _ in lines)
    quoted = {10: pcr10([data for _, data in lines])}
    quoted.update({int(k[3:]): v for k, v in pcrs.items()})
    return appraise(tpm.evidence(quoted, ima_log=text), compile_policy(None, policy))


def _failing(result: Appraisal) -> list[str]:
    return [f.id for f in result.findings if f.fails]


def _ima_signature(key: rsa.RSAPrivateKey, digest: bytes) -> bytes:
    signature = key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
    return struct.pack(">BBBIH", 3, 2, 4, ima_keyid(key.public_key()), len(signature)) + signature


@pytest.fixture(scope="module")
def signer() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _keys(key: rsa.RSAPrivateKey) -> tuple[SigningKey, ...]:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return (SigningKey(".ima", ima_keyid(key.public_key()), der),)


def test_plain_policy_pass_and_fail(tpm: SoftTpm) -> None:
    good = ima_ng_line("/usr/bin/ok", hashlib.sha256(b"ok").digest())
    bad = ima_ng_line("/usr/bin/evil", hashlib.sha256(b"evil").digest())
    policy = RuntimePolicy(digests={"/usr/bin/ok": (hashlib.sha256(b"ok").digest(),)})
    assert _run(tpm, [good], policy).passed
    result = _run(tpm, [good, bad], policy)
    assert _failing(result) == ["ima.not_in_policy"]
    assert result.findings[0].detail == {
        "line": 1,
        "path": "/usr/bin/evil",
        "digest": "sha256:" + hashlib.sha256(b"evil").hexdigest(),
    }


def test_digest_of_any_algorithm_matches_by_value(tpm: SoftTpm) -> None:
    sha1 = hashlib.sha1(b"x").digest()
    policy = RuntimePolicy(digests={"/x": (hashlib.sha256(b"x").digest(), sha1)})
    assert _run(tpm, [ima_ng_line("/x", sha1, "sha1")], policy).passed


def test_ima_sig_signature_decides_then_digest(tpm: SoftTpm, signer: rsa.RSAPrivateKey) -> None:
    digest = hashlib.sha256(b"signed binary").digest()
    line = ima_sig_line("/usr/bin/signed", digest, _ima_signature(signer, digest))
    assert _run(tpm, [line], RuntimePolicy(signing_keys=_keys(signer))).passed
    # signed over another digest: the signature fails and the digest is not allowed either
    forged = ima_sig_line("/usr/bin/signed", digest, _ima_signature(signer, hashlib.sha256(b"other").digest()))
    result = _run(tpm, [forged], RuntimePolicy(signing_keys=_keys(signer)))
    assert _failing(result) == ["ima.signature_invalid"]
    assert "/usr/bin/signed" in result.findings[0].message
    # ... unless the policy allows that digest
    assert _run(tpm, [forged], RuntimePolicy(digests={"/usr/bin/signed": (digest,)}, signing_keys=_keys(signer))).passed
    # a key the policy does not know
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    result = _run(tpm, [line], RuntimePolicy(signing_keys=_keys(stranger)))
    assert _failing(result) == ["ima.signature_invalid"]
    # no keys at all: signatures are ignored, the digest decides (Keylime's behaviour)
    assert _failing(_run(tpm, [line], RuntimePolicy())) == ["ima.not_in_policy"]


def test_ima_buf_keys_and_buffers(tpm: SoftTpm) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    key_line = ima_buf_line(".ima", der)
    buffer_line = ima_buf_line("kernel_version", b"6.1.0")
    allowed = RuntimePolicy(
        keyrings={".ima": (hashlib.sha256(der).digest(),)},
        buffers={"kernel_version": (hashlib.sha256(b"6.1.0").digest(),)},
    )
    assert _run(tpm, [key_line, buffer_line], allowed).passed
    result = _run(tpm, [key_line, buffer_line], RuntimePolicy())
    assert _failing(result) == ["ima.buffer_not_allowed", "ima.buffer_not_allowed"]
    assert [f.detail["kind"] for f in result.findings] == ["keyring", "buffer"]
    ignored = RuntimePolicy(ignored_keyrings=("*",), buffers=allowed.buffers)
    assert _run(tpm, [key_line, buffer_line], ignored).passed
    assert _run(tpm, [key_line, buffer_line], RuntimePolicy(ignored_keyrings=(".ima",), buffers=allowed.buffers)).passed


def test_excludes_match_at_the_start_of_the_path(tpm: SoftTpm) -> None:
    lines = [ima_ng_line("/tmp/scratch", bytes(32)), ima_ng_line("/var/tmp/scratch", bytes(32))]
    result = _run(tpm, lines, RuntimePolicy(excludes=("/tmp/.*", "/opt/")))
    assert _failing(result) == ["ima.not_in_policy"]
    assert result.findings[0].detail["path"] == "/var/tmp/scratch"


def test_boot_aggregate_from_quoted_pcrs(tpm: SoftTpm) -> None:
    boot_pcrs = {f"pcr{i}": hashlib.sha256(bytes([i])).digest() for i in range(8)}
    aggregate = hashlib.sha256(b"".join(boot_pcrs[f"pcr{i}"] for i in range(8))).digest()
    assert _run(tpm, [ima_ng_line("boot_aggregate", aggregate)], RuntimePolicy(), **boot_pcrs).passed
    result = _run(tpm, [ima_ng_line("boot_aggregate", bytes(32))], RuntimePolicy(), **boot_pcrs)
    assert _failing(result) == ["ima.boot_aggregate_mismatch"]
    # the policy may list it (Keylime's generated policies do)
    allowed = RuntimePolicy(digests={"boot_aggregate": (bytes(32),)})
    assert _run(tpm, [ima_ng_line("boot_aggregate", bytes(32))], allowed, **boot_pcrs).passed


def test_violation_is_a_warning_and_wrong_pcr_an_error(tpm: SoftTpm) -> None:
    violation = "10 " + "00" * 20 + " ima-ng sha1:" + "00" * 20 + " /var/log/busy"
    data = b"\xff" * 32  # what the kernel extends for a violation; pcr10() hashes it again, so do it by hand
    value = hashlib.sha256(bytes(32) + data).digest()
    ev = tpm.evidence({10: value}, ima_log=violation + "\n")
    result = appraise(ev, compile_policy(None, RuntimePolicy()))
    assert result.passed and [f.id for f in result.findings] == ["ima.tomtou"]
    other = ima_ng_line("/x", bytes(32), pcr=11)
    ok = ima_ng_line("/y", bytes(32))
    ev = tpm.evidence({10: pcr10([ok[1]])}, ima_log=other[0] + "\n" + ok[0] + "\n")
    result = appraise(ev, compile_policy(None, RuntimePolicy(digests={"/x": (bytes(32),), "/y": (bytes(32),)})))
    assert _failing(result) == ["ima.wrong_pcr"]


def test_log_hash_alg_is_checked(tpm: SoftTpm) -> None:
    line = ima_ng_line("/x", bytes(32))
    result = _run(tpm, [line], RuntimePolicy(digests={"/x": (bytes(32),)}, log_hash_alg=HashAlg.SHA256))
    assert _failing(result) == ["ima.log_hash_alg_mismatch"]


def test_pcr10_missing_from_the_quote(tpm: SoftTpm) -> None:
    line = ima_ng_line("/x", bytes(32))
    ev = tpm.evidence({0: bytes(32)}, ima_log=line[0] + "\n")
    result = appraise(ev, compile_policy(None, RuntimePolicy(digests={"/x": (bytes(32),)})))
    assert _failing(result) == ["quote.pcr_missing"]


def test_malformed_ima_line_names_the_line(tpm: SoftTpm) -> None:
    good = ima_ng_line("/x", bytes(32))
    ev = tpm.evidence({10: pcr10([good[1]])}, ima_log=good[0] + "\nthis is not an IMA line\n" + good[0] + "\n")
    policy = compile_policy(None, RuntimePolicy(digests={"/x": (bytes(32),)}))
    # the quote binds the first line only: the malformed one waits for the next round, which reports it
    first = appraise(ev, policy)
    assert first.passed and first.ima_state is not None and first.ima_state.next_line == 1
    ev = tpm.evidence({10: pcr10([good[1], good[1]])}, ima_log=good[0] + "\nthis is not an IMA line\n" + good[0] + "\n")
    result = appraise(ev, policy)
    assert _failing(result) == ["evidence.malformed"]
    assert result.findings[0].detail == {"part": "ima_log", "line": 1}
    assert result.ima_state is None


# --- the fast replay against veritee.ima's -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bundle_lines() -> tuple[list[str], dict[str, KnownLine]]:
    files = bundle_files()
    policy = keylime_policy(files)
    assert policy.runtime is not None
    return split_lines(files["ascii_runtime_measurements"].decode()), dict(policy.runtime.known_lines)


@settings(max_examples=40, deadline=None)
@given(
    start=st.integers(0, 825),
    stop=st.integers(0, 826),
    known_every=st.integers(1, 5),
    banks=st.sampled_from(
        [(HashAlg.SHA256,), (HashAlg.SHA1, HashAlg.SHA256), (HashAlg.SHA1,), (HashAlg.SHA384, HashAlg.SHA256)]
    ),
)
def test_fast_replay_equals_ima_replay(
    bundle_lines: tuple[list[str], dict[str, KnownLine]],
    start: int,
    stop: int,
    known_every: int,
    banks: tuple[HashAlg, ...],
) -> None:
    lines, known_all = bundle_lines
    # a table that knows only some lines, so both paths are exercised
    known = {line: value for i, (line, value) in enumerate(known_all.items()) if i % known_every == 0}
    _, state = replay_incremental("\n".join(lines[:start]) + "\n" if start else "", ImaState.initial(banks))
    # the quoted value: the reference replay stopped at ``stop`` lines (if after ``start``)
    target_state = state
    if stop > start:
        _, target_state = replay_incremental("\n".join(lines[start:stop]) + "\n", state)
    expect = dict(target_state.pcrs)
    outcome = replay_lines(lines[start:], state, known, expect)
    try:
        entries, reference = replay_incremental("\n".join(lines[start:]) + "\n", state, expect=expect)
    except DigestMismatchError:
        assert not outcome.matched
        return
    assert outcome.matched
    assert outcome.state == reference
    assert outcome.consumed == len(entries)
    assert not outcome.bad_template_hashes


def test_fast_table_covers_keylime_policy(bundle_lines: tuple[list[str], dict[str, KnownLine]]) -> None:
    lines, known = bundle_lines
    assert all(line in known for line in lines)
    rebuilt = build_known_lines({"/init": (bytes.fromhex("19f13b42c2745066347e76454788c0fe083643f3"),)}, HashAlg.SHA1)
    assert lines[1] in rebuilt
