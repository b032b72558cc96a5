"""The log writer produces logs our parser reads back with the facts and PCRs put in."""

from __future__ import annotations

from veritee import eventlog
from veritee.eventlog.builder import LogBuilder, typical_boot_log
from veritee.tpm.alg import HashAlg, extend


def test_typical_boot_log_round_trips() -> None:
    data = typical_boot_log(kernel_cmdline="ro quiet ima_policy=tcb")
    log = eventlog.parse(data)
    assert log.format is eventlog.LogFormat.CRYPTO_AGILE
    assert log.algorithms == (HashAlg.SHA1, HashAlg.SHA256)
    summary = eventlog.summarize(log)
    assert summary.secure_boot is True
    assert summary.kernel_cmdlines == ("ro quiet ima_policy=tcb",)
    assert (
        eventlog.summarize(eventlog.parse(typical_boot_log(kernel_cmdline="x", secure_boot=False))).secure_boot is False
    )


def test_replay_equals_extending_by_hand() -> None:
    builder = LogBuilder([HashAlg.SHA256]).add(3, eventlog.EventType.EV_EFI_ACTION, b"a").add(3, 4, b"\0\0\0\0")
    replayed = eventlog.replay(eventlog.parse(builder.build())).pcrs[HashAlg.SHA256][3]
    expected = bytes(32)
    for data in (b"a", b"\0\0\0\0"):
        expected = extend(HashAlg.SHA256, expected, HashAlg.SHA256.digest(data))
    assert replayed == expected


def test_given_digests_are_written_as_given() -> None:
    digest = bytes(range(32))
    log = eventlog.parse(
        LogBuilder([HashAlg.SHA256]).add(4, 0x80000003, b"app", digests={HashAlg.SHA256: digest}).build()
    )
    assert log.events[-1].digests[HashAlg.SHA256] == digest


def test_every_event_of_the_typical_log_hashes_like_firmware_and_grub() -> None:
    summary = eventlog.summarize(eventlog.parse(typical_boot_log(kernel_cmdline="ro quiet")))
    assert summary.data_mismatches == ()
