"""The shared e2e-swtpm bundle (real swtpm quote, RHEL 9 event log, IMA list) with Keylime's own policies."""

from __future__ import annotations

import json
import re

import pytest
from appraisal_support import bundle_files, evidence, keylime_policy

from veritee.appraisal import Appraisal, Check, Evidence, NodeState, appraise
from veritee.appraisal.policy import (
    CompiledPolicy,
    compile_policy,
    create_policy_from_evidence,
    dump_policy,
    load_policy,
)
from veritee.appraisal.policy.model import PolicySet
from veritee.ima import ImaState, replay_incremental
from veritee.tpm.alg import HashAlg
from veritee.tpm.attest import TpmsClockInfo


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return bundle_files()


@pytest.fixture(scope="module")
def policy(files: dict[str, bytes]) -> CompiledPolicy:
    return keylime_policy(files)


def _ids(appraisal: Appraisal) -> list[str]:
    return [f.id for f in appraisal.findings if f.fails]


def test_bundle_passes_with_keylime_policies(files: dict[str, bytes], policy: CompiledPolicy) -> None:
    result = appraise(evidence(files), policy)
    assert result.passed, [f.message for f in result.findings]
    assert not [f for f in result.findings if f.fails]
    assert result.checks == frozenset(Check)
    assert result.ima_state is not None and result.ima_state.next_line == 826
    assert result.pcrs[HashAlg.SHA256][10].hex().startswith("c4a06563")
    assert result.boot_summary is not None and result.boot_summary.secure_boot is True
    assert result.node_state.clock is not None and result.node_state.ima == result.ima_state


def test_changed_ima_digest_gives_template_hash_and_policy_findings(
    files: dict[str, bytes], policy: CompiledPolicy
) -> None:
    altered = dict(files)
    text = files["ascii_runtime_measurements"].decode()
    old = "sha1:98092c53c80882d555bfd54cd4d5c03f0885f391 /etc/ld.so.cache"
    assert old in text
    altered["ascii_runtime_measurements"] = text.replace(old, "sha1:" + "ab" * 20 + " /etc/ld.so.cache").encode()
    result = appraise(evidence(altered), policy)
    assert not result.passed
    by_id = {f.id: f for f in result.findings}
    assert "ima.template_hash_mismatch" in by_id
    assert by_id["ima.template_hash_mismatch"].detail["line"] == 4
    assert "ima.digest_mismatch" in by_id
    assert by_id["ima.digest_mismatch"].detail["path"] == "/etc/ld.so.cache"
    assert "/etc/ld.so.cache" in by_id["ima.digest_mismatch"].message
    assert "ima.pcr_mismatch" in by_id  # the SHA-256 bank replays the altered template data
    # the quote and the boot log are untouched
    assert not [f for f in result.findings if f.component.value in ("quote", "boot") and f.fails]


def test_removed_policy_digest_is_named(files: dict[str, bytes], policy: CompiledPolicy) -> None:
    document = json.loads(files["runtime_policy.json"])
    assert document["digests"]["/bin/sh"] == ["c90333979f56f38bbd41b81806015b0de502f3cc"]
    document["digests"]["/bin/sh"] = []
    altered = dict(files, **{"runtime_policy.json": json.dumps(document).encode()})
    result = appraise(evidence(altered), keylime_policy(altered))
    assert _ids(result) == ["ima.digest_mismatch"]
    assert result.findings[-1].detail["path"] == "/bin/sh"
    del document["digests"]["/bin/sh"]
    altered = dict(files, **{"runtime_policy.json": json.dumps(document).encode()})
    result = appraise(evidence(altered), keylime_policy(altered))
    assert _ids(result) == ["ima.not_in_policy"]
    assert "/bin/sh" in result.findings[-1].message


def test_changed_kernel_cmdline_in_boot_policy(files: dict[str, bytes]) -> None:
    refstate = json.loads(files["mb_refstate.json"])
    refstate["kernels"][0]["kernel_cmdline"] = refstate["kernels"][0]["kernel_cmdline"].replace("quiet", "verbose")
    altered = dict(files, **{"mb_refstate.json": json.dumps(refstate).encode()})
    result = appraise(evidence(altered), keylime_policy(altered))
    assert _ids(result) == ["boot.kernel_cmdline_mismatch"]
    assert "quiet" in result.findings[-1].message and "PCR 8" in result.findings[-1].message


def test_wrong_nonce(files: dict[str, bytes], policy: CompiledPolicy) -> None:
    altered = dict(files, **{"nonce.hex": b"00" * 20})
    result = appraise(evidence(altered), policy)
    assert _ids(result) == ["quote.nonce_mismatch"]


def test_tampered_quote(files: dict[str, bytes], policy: CompiledPolicy) -> None:
    quote = bytearray(files["quote.msg"])
    quote[-40] ^= 0x01  # inside the pcrDigest
    result = appraise(evidence(dict(files, **{"quote.msg": bytes(quote)})), policy)
    assert "quote.signature_invalid" in _ids(result)
    assert not result.passed


def test_pcr_value_that_does_not_match_the_log(files: dict[str, bytes], policy: CompiledPolicy) -> None:
    # An event digest of PCR 1 changed in the log: the quote is fine, the log no longer replays to it.
    log = files["binary_bios_measurements"]
    ev = evidence(files)
    from veritee.eventlog import parse

    target = next(e for e in parse(log).events if e.pcr == 1 and HashAlg.SHA256 in e.digests)
    digest = target.digests[HashAlg.SHA256]
    assert log.count(digest) == 1
    altered_log = log.replace(digest, bytes(32))
    result = appraise(
        Evidence(ev.ak_public, ev.quote, ev.signature, ev.pcrs, ev.nonce, altered_log, ev.ima_log), policy
    )
    mismatches = [f for f in result.findings if f.id == "boot.pcr_mismatch"]
    assert [f.detail["pcr"] for f in mismatches] == [1]
    assert "PCR 1" in mismatches[0].message
    assert _ids(result) == ["boot.pcr_mismatch"]


def test_supplied_pcr_value_changed(files: dict[str, bytes], policy: CompiledPolicy) -> None:
    ev = evidence(files)
    pcrs = {alg: dict(bank) for alg, bank in ev.pcrs.items()}
    pcrs[HashAlg.SHA256][7] = bytes(32)
    result = appraise(Evidence(ev.ak_public, ev.quote, ev.signature, pcrs, ev.nonce, ev.event_log, ev.ima_log), policy)
    ids = _ids(result)
    assert "quote.pcr_digest_mismatch" in ids
    assert [f.detail["pcr"] for f in result.findings if f.id == "boot.pcr_mismatch"] == [7]


def test_every_finding_is_returned_together(files: dict[str, bytes]) -> None:
    refstate = json.loads(files["mb_refstate.json"])
    refstate["kernels"][0]["kernel_cmdline"] = "nothing"
    text = files["ascii_runtime_measurements"].decode()
    text = text.replace(
        "c90333979f56f38bbd41b81806015b0de502f3cc /bin/sh", "c90333979f56f38bbd41b81806015b0de502f3cd /bin/sh"
    )
    altered = dict(
        files,
        **{
            "mb_refstate.json": json.dumps(refstate).encode(),
            "nonce.hex": b"11" * 20,
            "ascii_runtime_measurements": text.encode(),
        },
    )
    ids = set(_ids(appraise(evidence(altered), keylime_policy(altered))))
    assert {
        "quote.nonce_mismatch",
        "boot.kernel_cmdline_mismatch",
        "ima.template_hash_mismatch",
        "ima.digest_mismatch",
        "ima.pcr_mismatch",
    } <= ids


def test_policy_created_from_the_bundle_passes_it(files: dict[str, bytes]) -> None:
    boot, runtime = create_policy_from_evidence(
        files["binary_bios_measurements"], files["ascii_runtime_measurements"].decode()
    )
    assert boot is not None and runtime is not None
    # through our document format and back, as `veritee policy create` writes it
    loaded = load_policy(dump_policy(PolicySet("bundle", boot, runtime)))
    assert loaded.boot == boot and loaded.runtime == runtime
    compiled = compile_policy(loaded.boot, loaded.runtime, name="bundle")
    result = appraise(evidence(files), compiled)
    assert result.passed, [f.message for f in result.findings]
    assert result.checks == frozenset(Check)
    # ... and it is strict: the kernel file digest (which Keylime's example does not check with Secure Boot) is pinned
    assert boot.kernels is not None and boot.kernels[0].vmlinuz is not None
    assert result.boot_summary is not None
    assert re.fullmatch(boot.kernels[0].cmdline or "", result.boot_summary.kernel_cmdlines[0])


def test_incremental_rounds(files: dict[str, bytes], policy: CompiledPolicy) -> None:
    full = evidence(files)
    assert full.ima_log is not None
    lines = full.ima_log.splitlines(keepends=True)
    _, state = replay_incremental("".join(lines[:500]), ImaState.initial((HashAlg.SHA256,)))
    assert state.next_line == 500
    ev = Evidence(full.ak_public, full.quote, full.signature, full.pcrs, full.nonce, None, "".join(lines[500:]), state)
    result = appraise(ev, policy)
    assert _ids(result) == ["evidence.missing"]  # the boot policy wants the event log
    assert result.ima_state is not None and result.ima_state.next_line == 826
    # lines measured after the quote wait for the next round
    extra = "10 " + "11" * 20 + " ima-ng sha1:" + "22" * 20 + " /usr/bin/late\n"
    ev = Evidence(
        full.ak_public, full.quote, full.signature, full.pcrs, full.nonce, full.event_log, full.ima_log + extra
    )
    result = appraise(ev, policy)
    assert result.passed and result.ima_state is not None and result.ima_state.next_line == 826


def test_replay_and_rollback_against_previous_round(files: dict[str, bytes], policy: CompiledPolicy) -> None:
    first = appraise(evidence(files), policy)
    clock = first.node_state.clock
    assert clock is not None
    again = appraise(evidence(files), policy, previous=first.node_state)
    assert "quote.replayed" in _ids(again)
    later = TpmsClockInfo(clock.clock, clock.reset_count + 1, clock.restart_count, True)
    rolled = appraise(evidence(files), policy, previous=NodeState(clock=later))
    assert "quote.rolled_back" in _ids(rolled)
    earlier = TpmsClockInfo(clock.clock - 1000, clock.reset_count, clock.restart_count, True)
    assert appraise(evidence(files), policy, previous=NodeState(clock=earlier)).passed


def test_same_log_next_round_reuses_the_decoded_log(files: dict[str, bytes], policy: CompiledPolicy) -> None:
    first = appraise(evidence(files), policy)
    assert first.node_state.boot is not None
    state = NodeState(boot=first.node_state.boot)
    second = appraise(evidence(files), policy, previous=state)
    assert second.passed and second.node_state.boot is first.node_state.boot
    # a different log is decoded afresh and judged on its own
    ev = evidence(files)
    assert ev.event_log is not None
    altered = ev.event_log.replace(b"quiet", b"QUIET")
    result = appraise(
        Evidence(ev.ak_public, ev.quote, ev.signature, ev.pcrs, ev.nonce, altered, ev.ima_log), policy, previous=state
    )
    assert "boot.kernel_cmdline_mismatch" in _ids(result) or "boot.event_data_mismatch" in _ids(result)
    assert result.node_state.boot is not first.node_state.boot
