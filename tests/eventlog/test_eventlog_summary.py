"""Boot facts: every fact Keylime's measured-boot reference state asserts, the EFI app digests go-tpm-tools asserts,
the authority counts go-attestation asserts, and the other facts a boot policy reads."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from eventlog_support import (
    EXPECTED_LOGS,
    KEYLIME_1153,
    KEYLIME_SB,
    SHA1,
    SHA256,
    LogBuilder,
    expectations,
    expected_pcrs,
    extend,
    load,
)

from helpers import shared_path
from veritee.eventlog import EventType, SignatureEntry, parse, replay, summarize
from veritee.tpm.alg import HashAlg

KEYLIME_FV_APP = re.compile(r"FvVol\(\w{8}-\w{4}-\w{4}-\w{4}-\w{12}\)/FvFile\(\w{8}-\w{4}-\w{4}-\w{4}-\w{12}\)")


def _hex(value: bytes | None) -> str:
    assert value is not None
    return "0x" + value.hex()


def _keylime_entries(entries: tuple[SignatureEntry, ...] | None) -> list[dict[str, str]]:
    assert entries is not None
    return [{"SignatureOwner": str(entry.owner), "SignatureData": _hex(entry.data)} for entry in entries]


def test_every_fact_of_the_keylime_reference_state_reads_off_the_summary() -> None:
    refstate = json.loads(shared_path("tpm", "e2e-swtpm", "mb_refstate.json").read_text())
    summary = summarize(load(KEYLIME_SB))
    assert set(refstate) == {"has_secureboot", "scrtm_and_bios", "pk", "kek", "db", "dbx", "vendor_db", "mokdig",
                             "mokxdig", "kernels"}  # fmt: skip
    assert summary.secure_boot is refstate["has_secureboot"] is True
    scrtm_and_bios = refstate["scrtm_and_bios"][0]
    assert len(summary.scrtm_versions) == 1
    assert _hex(summary.scrtm_versions[0].digest(SHA256)) == scrtm_and_bios["scrtm"]["sha256"]
    assert [{"sha256": _hex(m.digest(SHA256))} for m in summary.firmware_blobs] == scrtm_and_bios["platform_firmware"]
    assert _keylime_entries(summary.pk) == refstate["pk"]
    assert _keylime_entries(summary.kek) == refstate["kek"]
    assert _keylime_entries(summary.db) == refstate["db"]
    assert _keylime_entries(summary.dbx) == refstate["dbx"] and len(refstate["dbx"]) == 371
    assert _keylime_entries(summary.authority_entries("vendor_db")) == refstate["vendor_db"]
    assert [{"sha256": _hex(summary.mok_lists["MokList"].digest())}] == refstate["mokdig"]
    assert [{"sha256": _hex(summary.mok_lists["MokListX"].digest())}] == refstate["mokxdig"]
    kernel = refstate["kernels"][0]
    apps = [app for app in summary.efi_apps if not KEYLIME_FV_APP.match(app.device_path)]
    assert apps == list(summary.boot_chain)
    assert _hex(apps[0].digest()) == kernel["shim_authcode_sha256"]
    assert _hex(apps[1].digest()) == kernel["grub_authcode_sha256"]
    assert _hex(apps[2].digest()) == kernel["kernel_authcode_sha256"]
    initrd = summary.ipl_file("initrd", "initramfs")
    assert initrd is not None and _hex(initrd.digest()) == kernel["initrd_plain_sha256"]
    assert re.escape(summary.kernel_cmdlines[0]) == kernel["kernel_cmdline"]
    # vmlinuz_plain_sha256 (asserted by Keylime when Secure Boot is off) is the PCR9 file event of the kernel.
    vmlinuz = summary.ipl_file("vmlinuz")
    assert (
        vmlinuz is not None
        and vmlinuz.pcr == 9
        and vmlinuz.description.endswith("vmlinuz-5.14.0-503.11.1.el9_5.x86_64")
    )
    raw = load(KEYLIME_SB).events[vmlinuz.index]
    assert raw.type == EventType.EV_IPL and raw.digests[SHA256] == vmlinuz.digest()


@pytest.mark.parametrize("name", ["Rhel8GCE", "Ubuntu2404AmdSevSnp", "Debian10GCE"])
def test_efi_app_digests_asserted_by_go_tpm_tools(name: str) -> None:
    expected = expectations()[name]["expected_efi_app_digests"]
    assert isinstance(expected, dict) and expected
    summary = summarize(load(EXPECTED_LOGS[name]))
    for bank, digests in expected.items():
        alg = HashAlg.from_label(bank)
        assert [app.digests[alg].hex() for app in summary.efi_apps] == digests, bank
    assert all(app.pcr == 4 and not app.before_boot_manager for app in summary.efi_apps)


def test_gdc_host_efi_apps_and_the_inconsistent_expectation() -> None:
    log = load(EXPECTED_LOGS["GdcHost"])
    summary = summarize(log)
    in_log = [e.digests[SHA256].hex() for e in log.events if e.type == EventType.EV_EFI_BOOT_SERVICES_APPLICATION]
    assert [app.digests[SHA256].hex() for app in summary.efi_apps] == in_log
    assert [app.before_boot_manager for app in summary.efi_apps] == [True, False, False]
    # The shared expectation for GdcHost lists go-tpm-tools' COS101 digests: none of them is in this log at all, so
    # no parser can produce them (the PCR4 value the same file asserts does replay from this log's digests).
    expected = expectations()["GdcHost"]["expected_efi_app_digests"]
    assert isinstance(expected, dict)
    every_digest = {d.hex() for e in log.events for d in e.digests.values()}
    assert not set(expected["sha256"]) & every_digest
    assert replay(log).pcrs[SHA256][4] == expected_pcrs("GdcHost")[SHA256][4]


@pytest.mark.parametrize(
    ("name", "secure_boot", "post_separator", "ebs"),
    [
        ("Rhel8GCE", True, 2, True),
        ("sb_cert_eventlog", True, 3, False),
        ("option_rom_eventlog", True, 2, True),
        ("Debian10GCE", True, 2, False),
        ("GlinuxNoSecureBootLaptop", False, 0, False),
        ("ArchLinuxWorkstation", False, 0, False),
        ("GdcHost", False, 0, True),
        ("Ubuntu2404AmdSevSnp", False, 0, True),
    ],
)
def test_secure_boot_authorities_and_exit_boot_services(
    name: str, secure_boot: bool, post_separator: int, ebs: bool
) -> None:
    summary = summarize(load(EXPECTED_LOGS[name]))
    assert summary.secure_boot is secure_boot
    assert len(summary.post_separator_authorities) == post_separator
    assert summary.exit_boot_services is ebs
    assert summary.data_mismatches == ()
    assert summary.pk is not None and summary.kek is not None and summary.db is not None


def test_arch_zero_length_secure_boot_is_not_enabled_and_noted() -> None:
    summary = summarize(load(EXPECTED_LOGS["ArchLinuxWorkstation"]))
    assert summary.secure_boot is False
    assert "event 3 SecureBoot: zero-length SecureBoot variable: Secure Boot not enabled" in summary.notes
    assert summary.kernel_cmdlines[0].startswith("initrd=\\intel-ucode.img")


def test_option_rom_driver_is_recognised() -> None:
    summary = summarize(load(EXPECTED_LOGS["option_rom_eventlog"]))
    assert [driver.pci_option_rom for driver in summary.efi_drivers] == [True]  # go-attestation: [PciMmioSource]
    assert summary.efi_drivers[0].pcr == 2
    assert summary.boot_order is not None and summary.boot_order[0] == 0x13
    assert summary.boot_options[0x13].description == "Windows Boot Manager"
    gdc = summarize(load(EXPECTED_LOGS["GdcHost"]))
    assert gdc.efi_drivers and not any(driver.pci_option_rom for driver in gdc.efi_drivers)


def test_separators_and_events_after_the_pcr7_separator() -> None:
    log = load(KEYLIME_SB)
    summary = summarize(log)
    assert summary.separators == {pcr: (0,) for pcr in range(8)}
    after = summary.events_after_pcr7_separator
    assert after and all(log.events[i].type == EventType.EV_EFI_VARIABLE_AUTHORITY for i in after)
    assert [a.variable for a in summary.authorities] == ["db", "SbatLevel", "vendor_db"]
    assert all(a.after_separator for a in summary.authorities)
    assert summary.sbat_level is not None and "shim,2" in summary.sbat_level
    assert summary.grub_commands[0].startswith("search --no-floppy")


def test_platform_facts_of_a_bare_metal_host() -> None:
    summary = summarize(load(EXPECTED_LOGS["GdcHost"]))
    assert summary.startup_locality == 3
    assert summary.dma_protection_disabled and not summary.uefi_debug_mode
    assert [m.description for m in summary.scrtm_contents] == ["Boot Guard Measured S-CRTM"]
    assert len(summary.firmware_blobs) == 4
    assert set(summary.variables) >= {"SecureBoot", "PK", "KEK", "db", "dbx", "DeployedMode", "AuditMode"}


@pytest.mark.parametrize("name", [EXPECTED_LOGS["Rhel8GCE"], KEYLIME_SB, KEYLIME_1153])
def test_event_digests_by_pcr_replay_to_the_pcrs(name: str) -> None:
    log = load(name)
    summary = summarize(log)
    result = replay(log)
    for alg in log.algorithms:
        for pcr, digests in summary.event_digests[alg].items():
            value = bytes(alg.digest_size)
            for digest in digests:
                value = extend(alg, value, digest)
            assert value == result.pcrs[alg][pcr]
    assert summary.sha256_by_pcr == summary.event_digests[SHA256]
    assert summarize(load(EXPECTED_LOGS["Debian10GCE"])).sha256_by_pcr == {}


def test_forged_event_data_is_reported() -> None:
    log = load(KEYLIME_SB)
    index = next(e.index for e in log.events if e.type == EventType.EV_EFI_VARIABLE_DRIVER_CONFIG)
    events = list(log.events)
    events[index] = dataclasses.replace(events[index], data=events[index].data[:-1] + b"\x00")  # SecureBoot=0
    summary = summarize(dataclasses.replace(log, events=tuple(events)))
    assert summary.data_mismatches == (index,)
    assert summary.secure_boot is False  # the forged value is decoded, but flagged: appraisal must not trust it
    assert any(f"event {index} (EV_EFI_VARIABLE_DRIVER_CONFIG, PCR7): data mismatch" in n for n in summary.notes)


def test_undecodable_events_are_skipped_with_a_note() -> None:
    builder = LogBuilder(banks=[SHA1, SHA256])
    builder.add(7, EventType.EV_EFI_VARIABLE_DRIVER_CONFIG, b"\x01\x02")
    builder.add(4, EventType.EV_SEPARATOR, b"\x00\x00\x00")
    builder.add(7, EventType.EV_SEPARATOR, b"\x01\x00\x00\x00")
    summary = summarize(parse(builder.build()))
    assert summary.secure_boot is None
    assert any(note.startswith("event 1 (EV_EFI_VARIABLE_DRIVER_CONFIG, PCR7) not decoded") for note in summary.notes)
    assert any(note.startswith("event 2 (EV_SEPARATOR, PCR4) not decoded") for note in summary.notes)
    assert "PCR7 separator carries the error value 1 (event 3)" in summary.notes
    assert summary.separators == {7: (1,)}
    assert "no SecureBoot variable measured in PCR7: Secure Boot state unknown" in summary.notes
