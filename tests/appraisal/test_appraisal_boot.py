"""Boot policy rules (Keylime's example policy semantics) against the summaries of real event logs."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid

import pytest
from appraisal_support import SoftTpm, bundle_files

from helpers import shared_path
from veritee.appraisal import appraise
from veritee.appraisal.boot_stage import check_boot_policy
from veritee.appraisal.findings import Finding
from veritee.appraisal.policy import (
    BootPolicy,
    EfiSignature,
    FirmwareSpec,
    KernelSpec,
    compile_policy,
    import_keylime_refstate,
)
from veritee.eventlog import parse
from veritee.eventlog.summary import BootSummary, summarize
from veritee.tpm.alg import HashAlg


@pytest.fixture(scope="module")
def summary() -> BootSummary:
    return summarize(parse(bundle_files()["binary_bios_measurements"]))


@pytest.fixture(scope="module")
def base() -> BootPolicy:
    return import_keylime_refstate(bundle_files()["mb_refstate.json"])


def _check(summary: BootSummary, policy: BootPolicy) -> list[Finding]:
    compiled = compile_policy(policy, None).boot
    assert compiled is not None
    found: list[Finding] = []
    check_boot_policy(summary, compiled, found)
    return found


def _ids(found: list[Finding]) -> list[str]:
    return [f.id for f in found]


def _kernel(base: BootPolicy, **changes: object) -> BootPolicy:
    assert base.kernels is not None
    return dataclasses.replace(base, kernels=(dataclasses.replace(base.kernels[0], **changes),))  # type: ignore[arg-type]


def test_keylime_refstate_passes(summary: BootSummary, base: BootPolicy) -> None:
    assert _check(summary, base) == []


def test_secure_boot_state(summary: BootSummary, base: BootPolicy) -> None:
    assert _ids(_check(summary, dataclasses.replace(base, secure_boot=False))) == ["boot.secureboot_enabled"]
    nosb = summarize(parse(shared_path("tpm", "eventlogs", "gotpmtools_glinux-laptop-nosb.bin").read_bytes()))
    assert nosb.secure_boot is False
    found = _check(nosb, BootPolicy(secure_boot=True))
    assert _ids(found) == ["boot.secureboot_disabled"]
    assert "disabled" in found[0].message
    assert _check(nosb, BootPolicy(secure_boot=None)) == []


def test_key_databases(summary: BootSummary, base: BootPolicy) -> None:
    assert base.db is not None and base.dbx is not None and base.pk is not None
    found = _check(summary, dataclasses.replace(base, db=base.db[1:]))
    assert _ids(found) == ["boot.db_mismatch"]
    assert found[0].detail["entries"][0]["data"] == base.db[0].data.hex()
    assert _ids(_check(summary, dataclasses.replace(base, pk=()))) == ["boot.pk_mismatch"]
    extra = EfiSignature(owner=str(uuid.UUID(int=7)), data=bytes(32))
    found = _check(summary, dataclasses.replace(base, dbx=(*base.dbx, extra)))
    assert _ids(found) == ["boot.dbx_mismatch"]
    assert found[0].detail["missing"] == [bytes(32).hex()]
    # dropping required dbx entries from the policy is fine (the log holds more)
    assert _check(summary, dataclasses.replace(base, dbx=base.dbx[:10])) == []


def test_firmware(summary: BootSummary, base: BootPolicy) -> None:
    assert base.firmware is not None
    spec = base.firmware[0]
    wrong = {HashAlg.SHA256: bytes(32)}
    found = _check(summary, dataclasses.replace(base, firmware=(dataclasses.replace(spec, scrtm=wrong),)))
    assert _ids(found) == ["boot.scrtm_mismatch"]
    blobs = (spec.platform_firmware[0], wrong)
    found = _check(summary, dataclasses.replace(base, firmware=(dataclasses.replace(spec, platform_firmware=blobs),)))
    assert _ids(found) == ["boot.firmware_mismatch"]
    # another allowed firmware besides the right one is fine
    other = FirmwareSpec(scrtm=wrong, platform_firmware=())
    assert _check(summary, dataclasses.replace(base, firmware=(other, spec))) == []


def test_mok_lists(summary: BootSummary, base: BootPolicy) -> None:
    wrong = ({HashAlg.SHA256: bytes(32)},)
    assert _ids(_check(summary, dataclasses.replace(base, mok=wrong))) == ["boot.mok_mismatch"]
    assert _ids(_check(summary, dataclasses.replace(base, mokx=wrong))) == ["boot.mokx_mismatch"]


@pytest.mark.parametrize(
    ("field", "finding_id"),
    [
        ("shim", "boot.shim_mismatch"),
        ("grub", "boot.grub_mismatch"),
        ("kernel", "boot.kernel_mismatch"),
        ("initrd", "boot.initrd_mismatch"),
        ("vmlinuz", "boot.vmlinuz_mismatch"),
    ],
)
def test_boot_chain_items(summary: BootSummary, base: BootPolicy, field: str, finding_id: str) -> None:
    found = _check(summary, _kernel(base, **{field: hashlib.sha256(field.encode()).digest()}))
    assert _ids(found) == [finding_id]


def test_boot_chain_length_and_best_entry(summary: BootSummary, base: BootPolicy) -> None:
    assert base.kernels is not None
    good = base.kernels[0]
    shorter = dataclasses.replace(good, kernel=None)
    assert _ids(_check(summary, _kernel(base, kernel=None))) == ["boot.boot_apps_mismatch"]
    # of two wrong entries, the closer one is reported
    far = KernelSpec(shim=bytes(32), grub=bytes(32), kernel=bytes(32), initrd=bytes(32), cmdline="x")
    near = dataclasses.replace(good, cmdline="other")
    assert _ids(_check(summary, dataclasses.replace(base, kernels=(far, near)))) == ["boot.kernel_cmdline_mismatch"]
    # one right entry among wrong ones passes
    assert _check(summary, dataclasses.replace(base, kernels=(far, shorter, good))) == []


def test_generated_policy_reads_what_the_log_says(summary: BootSummary) -> None:
    from veritee.appraisal.policy import boot_policy_from_summary

    generated = boot_policy_from_summary(summary)
    assert _check(summary, generated) == []
    assert generated.kernels is not None and generated.kernels[0].cmdline is not None


def test_fixed_pcrs_and_missing_log() -> None:
    tpm = SoftTpm()
    value = hashlib.sha256(b"pcr").digest()
    policy = compile_policy(BootPolicy(secure_boot=None, expected_pcrs={HashAlg.SHA256: {7: value, 9: value}}), None)
    ev = tpm.evidence({7: value, 9: bytes(32)}, event_log=None)
    ids = [f.id for f in appraise(ev, policy).findings]
    assert ids == ["evidence.missing", "boot.pcr_value_mismatch"]  # fixed PCRs need only the quote
    files = bundle_files()
    ev = tpm.evidence({7: value, 9: bytes(32)}, event_log=files["binary_bios_measurements"])
    result = appraise(ev, policy)
    mismatches = [f for f in result.findings if f.id == "boot.pcr_value_mismatch"]
    assert [f.detail["pcr"] for f in mismatches] == [9]
    assert {f.detail["pcr"] for f in result.findings if f.id == "boot.pcr_mismatch"} == {7, 9}
    policy = compile_policy(BootPolicy(secure_boot=None, expected_pcrs={HashAlg.SHA256: {14: value}}), None)
    assert [f.id for f in appraise(tpm.evidence({14: value}), policy).findings] == ["evidence.missing"]
    result = appraise(tpm.evidence({0: value}), policy)
    assert [(f.id, f.detail.get("pcr")) for f in result.findings] == [
        ("evidence.missing", None),
        ("quote.pcr_missing", 14),
    ]


def test_boot_pcrs_must_be_quoted(base: BootPolicy) -> None:
    tpm = SoftTpm()
    log = bundle_files()["binary_bios_measurements"]
    result = appraise(tpm.evidence({10: bytes(32)}, event_log=log), compile_policy(base, None))
    missing = sorted(f.detail["pcr"] for f in result.findings if f.id == "quote.pcr_missing")
    assert missing == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14]
    assert "PCR 4 is extended by the event log but not quoted" in " ".join(f.message for f in result.findings)


def test_malformed_event_log(base: BootPolicy) -> None:
    tpm = SoftTpm()
    result = appraise(tpm.evidence({0: bytes(32)}, event_log=b"\x00" * 7), compile_policy(base, None))
    assert [f.id for f in result.findings if f.fails] == ["evidence.malformed"]
    assert result.findings[0].detail["part"] == "event_log"


@pytest.mark.parametrize(
    ("name", "log"),
    [("GdcHost", "gotpmtools_gdc-host-baremetal.bin"), ("Rhel8GCE", "gotpmtools_rhel8-gce-secureboot.bin")],
)
def test_other_machines_logs_against_their_pcrs(name: str, log: str) -> None:
    import json

    expected = json.loads(shared_path("tpm", "expected", "gotpmtools_expected_pcrs.json").read_text())[name]
    pcrs = {int(i): bytes.fromhex(v) for i, v in expected["pcrs"]["sha256"].items()}
    data = shared_path("tpm", "eventlogs", log).read_bytes()
    tpm = SoftTpm()
    result = appraise(tpm.evidence(pcrs, event_log=data), compile_policy(None, None))
    assert result.passed, [f.message for f in result.findings if f.fails]
    notes = [f.message for f in result.findings if f.id == "boot.log_note"]
    if name == "GdcHost":
        assert any("StartupLocality 3" in note for note in notes)
    # a policy generated from this log passes it, and a changed PCR 4 value is named
    from veritee.appraisal.policy import boot_policy_from_summary

    assert result.boot_summary is not None
    policy = compile_policy(boot_policy_from_summary(result.boot_summary), None)
    assert appraise(tpm.evidence(pcrs, event_log=data), policy).passed
    result = appraise(tpm.evidence({**pcrs, 4: bytes(32)}, event_log=data), policy)
    assert [(f.id, f.detail["pcr"]) for f in result.findings if f.fails] == [("boot.pcr_mismatch", 4)]
