"""PCR replay of real logs against the values their origin projects assert, and every workaround replay applies."""

from __future__ import annotations

import dataclasses

import pytest
from eventlog_support import (
    EXPECTED_LOGS,
    KEYLIME_1153,
    KEYLIME_SB,
    SHA1,
    SHA256,
    LogBuilder,
    expected_pcrs,
    extend,
    load,
    log_bytes,
    read_pcrs_yaml,
)

from helpers import shared_path
from veritee.errors import DigestMismatchError
from veritee.eventlog import EventLog, EventType, parse, replay, reset_value, verify_pcrs
from veritee.eventlog.replay import EBS_FAILURE, EBS_INVOCATION, EBS_SUCCESS
from veritee.tpm.alg import HashAlg

#: PCRs an expectation lists that no firmware log can reproduce, and why (asserted, not skipped: see below).
NOT_IN_FIRMWARE_LOG = {("sb_cert_eventlog", 10): "PCR10 is extended by IMA, whose measurements are in another log"}


def test_every_shared_log_is_covered() -> None:
    names = {path.name for path in shared_path("tpm", "eventlogs").iterdir()}
    assert names == set(EXPECTED_LOGS.values()) | {KEYLIME_SB, KEYLIME_1153}


@pytest.mark.parametrize("name", sorted(EXPECTED_LOGS))
def test_replay_matches_every_asserted_pcr(name: str) -> None:
    log = load(EXPECTED_LOGS[name])
    result = replay(log)
    extended = {event.pcr for event in log.events if event.type != EventType.EV_NO_ACTION}
    checked = 0
    for alg, values in expected_pcrs(name).items():
        assert alg in log.algorithms, f"{name}: bank {alg.label} asserted but absent from the log"
        for pcr, value in values.items():
            if (name, pcr) in NOT_IN_FIRMWARE_LOG:
                # The origin passes this PCR only because go-attestation skips PCRs without events.
                assert pcr not in extended and pcr not in result.pcrs[alg]
                assert value != reset_value(alg, pcr)
                continue
            if pcr in extended:
                assert result.pcrs[alg][pcr] == value, f"{name} {alg.label} PCR{pcr}"
            else:
                assert pcr not in result.pcrs[alg]
                assert result.value(alg, pcr) == value, f"{name} {alg.label} PCR{pcr} (reset value)"
            checked += 1
    assert checked >= 8
    # The same check as one call, the way the appraisal layer uses it.
    verify_pcrs(log, expected_pcrs(name))


def test_keylime_log_replays_to_the_swtpm_pcrs() -> None:
    log = load(KEYLIME_SB)
    assert shared_path("tpm", "e2e-swtpm", "binary_bios_measurements").read_bytes() == log_bytes(KEYLIME_SB)
    quoted = read_pcrs_yaml(shared_path("tpm", "e2e-swtpm", "pcrs.yaml"))
    result = replay(log)
    assert log.algorithms == (SHA256,)
    for pcr in [*range(10), 14]:
        assert result.value(SHA256, pcr) == quoted[SHA256][pcr], f"PCR{pcr}"
        # The log carries no SHA-1 digests and the swtpm's SHA-1 bank was never extended by the firmware events.
        assert quoted[SHA1][pcr] == bytes(20)
    assert 10 not in result.pcrs[SHA256]  # IMA's PCR
    assert result.notes == []
    verify_pcrs(log, {SHA256: {pcr: v for pcr, v in quoted[SHA256].items() if pcr != 10}})


def test_issue1153_log_parses_and_replays() -> None:
    log = load(KEYLIME_1153)
    assert len(log.events) == 102
    result = replay(log)
    assert set(result.pcrs[SHA256]) == {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 14}
    assert result.extended_events == 101


def test_startup_locality_sets_pcr0_and_is_noted() -> None:
    log = load(EXPECTED_LOGS["GdcHost"])
    result = replay(log)
    assert result.startup_locality == 3
    assert "PCR0 initialised for StartupLocality 3 (EV_NO_ACTION event 1 at offset 65)" in result.notes
    without = dataclasses.replace(log, events=tuple(e for e in log.events if e.index != 1))
    plain = replay(without)
    assert plain.startup_locality is None
    assert plain.pcrs[SHA256][0] != expected_pcrs("GdcHost")[SHA256][0]
    assert plain.pcrs[SHA256][1] == expected_pcrs("GdcHost")[SHA256][1]


def test_startup_locality_after_a_pcr0_measurement_is_ignored() -> None:
    builder = LogBuilder(banks=[SHA256])
    builder.add(0, EventType.EV_S_CRTM_VERSION, b"v\x00")
    builder.add(0, EventType.EV_NO_ACTION, b"StartupLocality\x00\x03", digests={SHA256: bytes(32)})
    result = replay(parse(builder.build()))
    assert result.startup_locality is None
    assert result.pcrs[SHA256][0] == extend(SHA256, bytes(32), SHA256.digest(b"v\x00"))


def _strip_ebs(name: str) -> tuple[EventLog, dict[HashAlg, dict[int, bytes]]]:
    log = load(EXPECTED_LOGS[name])
    texts = (EBS_INVOCATION, EBS_SUCCESS, EBS_FAILURE)
    events = tuple(e for e in log.events if not (e.pcr == 5 and e.data in texts))
    assert len(events) < len(log.events)
    return dataclasses.replace(log, events=events), expected_pcrs(name)


def test_missing_exit_boot_services_events_are_injected_to_match_the_quote() -> None:
    stripped, quoted = _strip_ebs("Rhel8GCE")
    plain = replay(stripped)
    assert plain.pcrs[SHA256][5] != quoted[SHA256][5]
    assert any(note.startswith("ExitBootServices events missing: the log has no") for note in plain.notes)
    fixed = verify_pcrs(stripped, quoted)
    assert fixed.injected == (EBS_INVOCATION, EBS_SUCCESS)
    assert fixed.pcrs[SHA256][5] == quoted[SHA256][5] and fixed.pcrs[SHA1][5] == quoted[SHA1][5]
    appended = "appended 'Exit Boot Services Invocation' + 'Exit Boot Services Returned with Success'"
    assert any(appended in note for note in fixed.notes)


def test_exit_boot_services_events_in_an_unknown_order_are_not_invented() -> None:
    # This firmware measured Failure, Invocation, Success: none of the known variants reproduce it.
    stripped, quoted = _strip_ebs("Ubuntu2404AmdSevSnp")
    with pytest.raises(DigestMismatchError, match="PCR5 sha1"):
        verify_pcrs(stripped, quoted)


def test_logs_without_exit_boot_services_are_noted() -> None:
    for name in ("Debian10GCE", "GlinuxNoSecureBootLaptop", "ArchLinuxWorkstation", "sb_cert_eventlog"):
        notes = replay(load(EXPECTED_LOGS[name])).notes
        assert any(note.startswith("ExitBootServices events missing") for note in notes), name
    assert not any("ExitBootServices" in n for n in replay(load(EXPECTED_LOGS["Rhel8GCE"])).notes)


def test_verify_pcrs_names_the_mismatching_pcr() -> None:
    quoted = expected_pcrs("Rhel8GCE")
    quoted[SHA256][7] = bytes(32)
    with pytest.raises(DigestMismatchError, match="PCR7 sha256: log replays to 5fd54361"):
        verify_pcrs(load(EXPECTED_LOGS["Rhel8GCE"]), quoted)


def test_verify_pcrs_rejects_a_bank_the_log_cannot_replay() -> None:
    with pytest.raises(DigestMismatchError, match="no sha256 digests"):
        verify_pcrs(load(EXPECTED_LOGS["Debian10GCE"]), {SHA256: {0: bytes(32)}})


def test_reset_values() -> None:
    result = replay(load(EXPECTED_LOGS["Rhel8GCE"]))
    assert result.value(SHA256, 17) == b"\xff" * 32
    assert result.value(SHA1, 23) == bytes(20)
    assert result.value(SHA256, 10) == bytes(32)


def test_manual_replay_of_a_synthetic_log() -> None:
    builder = LogBuilder(banks=[SHA1, SHA256])
    builder.add(0, EventType.EV_S_CRTM_VERSION, b"fw\x00")
    builder.add(4, EventType.EV_SEPARATOR, bytes(4))
    builder.add(4, EventType.EV_EFI_ACTION, b"Calling EFI Application from Boot Option")
    builder.add(0, EventType.EV_NO_ACTION, b"ignored", digests={SHA1: bytes(20), SHA256: bytes(32)})
    result = replay(parse(builder.build()))
    for alg in (SHA1, SHA256):
        pcr4 = extend(alg, bytes(alg.digest_size), alg.digest(bytes(4)))
        pcr4 = extend(alg, pcr4, alg.digest(b"Calling EFI Application from Boot Option"))
        assert result.pcrs[alg][4] == pcr4
        assert result.pcrs[alg][0] == extend(alg, bytes(alg.digest_size), alg.digest(b"fw\x00"))
    assert result.extended_events == 3
    assert result.as_dict()["pcrs"] == {
        alg.label: {str(p): v.hex() for p, v in sorted(result.pcrs[alg].items())} for alg in (SHA1, SHA256)
    }


def test_an_event_without_a_bank_digest_drops_that_pcr_from_the_bank() -> None:
    builder = LogBuilder(banks=[SHA1, SHA256])
    builder.add(1, EventType.EV_EFI_ACTION, b"a")
    builder.add(2, EventType.EV_EFI_ACTION, b"b", digests={SHA256: SHA256.digest(b"b")})
    result = replay(parse(builder.build()))
    assert set(result.pcrs[SHA1]) == {1} and set(result.pcrs[SHA256]) == {1, 2}
    assert "event 2 (PCR2) has no sha1 digest: PCR2 left out of the sha1 bank" in result.notes


def test_events_for_pcrs_that_do_not_exist_are_skipped() -> None:
    builder = LogBuilder(banks=[SHA256])
    builder.add(24, EventType.EV_ACTION, b"x")
    builder.add(1, EventType.EV_ACTION, b"y")
    result = replay(parse(builder.build()))
    assert set(result.pcrs[SHA256]) == {1}
    assert any("names PCR 24, which does not exist" in note for note in result.notes)


def test_parse_notes_are_carried_into_replay_notes() -> None:
    data = LogBuilder(banks=[SHA256]).add(1, EventType.EV_ACTION, b"y").build() + bytes(64)
    notes = replay(parse(data)).notes
    assert notes[0].startswith("trailing padding ignored: 64 bytes of 0x00")
