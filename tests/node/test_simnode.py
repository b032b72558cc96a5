"""Simulated nodes: a swtpm whose quoted PCRs are what its logs replay to."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from node_support import Logs

from helpers import shared_path
from swtpm_harness import start_swtpm
from veritee import eventlog, ima
from veritee.errors import DecodeError, DigestMismatchError, ValidationError
from veritee.service.simnode import UNAPPROVED_BINARY, SimulatedNode
from veritee.tpm.alg import HashAlg, extend
from veritee.tpm.attest import PcrSelection, TpmsAttest
from veritee.tpm.device import AkAlg, TpmDevice
from veritee.tpm.pcrs import pcr_composite_digest

pytestmark = pytest.mark.swtpm

SELECTION = {"sha1": [*range(11), 14], "sha256": [*range(11), 14]}


def _replayed(event_log: bytes, ima_text: str) -> dict[str, dict[int, bytes]]:
    """What the logs say the PCRs hold, computed by the parsers (not by the simulated node)."""
    replay = eventlog.replay(eventlog.parse(event_log))
    ima_pcrs = ima.replay(ima.parse(ima_text), banks=(HashAlg.SHA1, HashAlg.SHA256))
    out: dict[str, dict[int, bytes]] = {}
    for alg in (HashAlg.SHA1, HashAlg.SHA256):
        bank = {pcr: replay.value(alg, pcr) for pcr in SELECTION[alg.label] if pcr != ima.IMA_PCR}
        bank[ima.IMA_PCR] = ima_pcrs[alg]
        out[alg.label] = dict(sorted(bank.items()))
    return out


def _pcrs_yaml(path: Path) -> dict[str, dict[int, bytes]]:
    """tpm2_pcrread's YAML output (the e2e bundle's pcrs.yaml), read without a YAML library."""
    out: dict[str, dict[int, bytes]] = {}
    bank: dict[int, bytes] = {}
    for line in path.read_text().splitlines():
        if line.strip().endswith(":") and not line.strip()[0].isdigit():
            bank = out.setdefault(line.strip()[:-1], {})
        elif ":" in line:
            index, value = line.split(":", 1)
            bank[int(index)] = bytes.fromhex(value.strip().removeprefix("0x"))
    return out


def test_quoted_pcrs_equal_the_replay_of_the_logs(sim_node: SimulatedNode, e2e_logs: Logs) -> None:
    expected = _replayed(e2e_logs.event_log, e2e_logs.ima_log)
    assert sim_node.pcrs(SELECTION) == expected
    # ... and equal what the e2e bundle's author read from their swtpm after doing the same with tpm2-tools
    assert sim_node.pcrs(SELECTION) == _pcrs_yaml(shared_path("tpm", "e2e-swtpm", "pcrs.yaml"))
    # a quote covers exactly those values
    with TpmDevice(sim_node.tcti) as tpm:
        ak = tpm.create_ak(AkAlg.ECC_P256_ECDSA_SHA256)
        quote = tpm.quote(ak, {"sha256": SELECTION["sha256"]}, b"nonce")
    attest = TpmsAttest.unpack(quote.attest)
    banks = {HashAlg.SHA256: expected["sha256"]}
    digest = pcr_composite_digest(HashAlg.SHA256, [PcrSelection.of(HashAlg.SHA256, SELECTION["sha256"])], banks)
    assert attest.attested.pcr_digest == digest  # type: ignore[union-attr]
    assert sim_node.event_log_path.read_bytes() == e2e_logs.event_log
    assert sim_node.ima_log_path.read_text() == e2e_logs.ima_log
    assert sim_node.ima_lines == 826


@pytest.mark.parametrize("name", ["GdcHost", "Rhel8GCE"])
def test_real_machines_pcrs_from_their_logs(tmp_path: Path, name: str) -> None:
    """go-tpm-tools' PCR values of real machines: GdcHost started its TPM from locality 3 (PCR 0 starts at 3)."""
    expected = json.loads(shared_path("tpm", "expected", "gotpmtools_expected_pcrs.json").read_text())[name]
    files = {"GdcHost": "gotpmtools_gdc-host-baremetal.bin", "Rhel8GCE": "gotpmtools_rhel8-gce-secureboot.bin"}
    log = shared_path("tpm", "eventlogs", files[name]).read_bytes()
    with SimulatedNode.create(start_swtpm(tmp_path / "tpm"), tmp_path / "node", event_log=log, ima_log=None) as node:
        selection = {bank: [int(i) for i in values] for bank, values in expected["pcrs"].items()}
        got = node.pcrs(selection)
        assert not node.ima_log_path.exists()
    want = {bank: {int(i): bytes.fromhex(v) for i, v in values.items()} for bank, values in expected["pcrs"].items()}
    assert got == want


def test_run_time_measurements_extend_pcr10_and_append_lines(sim_node: SimulatedNode) -> None:
    before = sim_node.pcrs({"sha1": [10], "sha256": [10]})
    line = sim_node.measure("/usr/bin/approved", b"binary")
    unapproved = sim_node.run_unapproved_binary()
    assert UNAPPROVED_BINARY in unapproved
    lines = sim_node.ima_log_path.read_text().splitlines()
    assert lines[-2:] == [line, unapproved]
    assert sim_node.ima_lines == 828
    new = ima.parse("\n".join(lines[-2:]) + "\n", start_line=826)
    assert [entry.path for entry in new] == ["/usr/bin/approved", UNAPPROVED_BINARY]
    assert new[0].file_digest == hashlib.sha256(b"binary").digest()
    after = sim_node.pcrs({"sha1": [10], "sha256": [10]})
    for alg in (HashAlg.SHA1, HashAlg.SHA256):
        value = before[alg.label][10]
        for entry in new:
            value = extend(alg, value, entry.template_digest(alg))
        assert after[alg.label][10] == value
    # the whole list still replays to PCR 10
    assert ima.replay(ima.parse(sim_node.ima_log_path.read_text()))[HashAlg.SHA256] == after["sha256"][10]


def test_tampering_changes_a_pcr_and_no_log(sim_node: SimulatedNode, e2e_logs: Logs) -> None:
    before = sim_node.pcrs({"sha256": [0, 4]})
    sim_node.tamper_pcr(4)
    after = sim_node.pcrs({"sha256": [0, 4]})
    assert after["sha256"][0] == before["sha256"][0]
    tampered = HashAlg.SHA256.digest(b"veritee: tampered")
    assert after["sha256"][4] == extend(HashAlg.SHA256, before["sha256"][4], tampered)
    assert sim_node.event_log_path.read_bytes() == e2e_logs.event_log
    with pytest.raises(DigestMismatchError) as raised:
        eventlog.verify_pcrs(eventlog.parse(e2e_logs.event_log), {HashAlg.SHA256: after["sha256"]})
    assert "PCR4" in str(raised.value)


def test_boot_again_resets_the_pcrs(sim_node: SimulatedNode, e2e_logs: Logs) -> None:
    sim_node.run_unapproved_binary()
    sim_node.tamper_pcr(0)
    sim_node.boot(e2e_logs.event_log, e2e_logs.ima_log)
    assert sim_node.pcrs(SELECTION) == _replayed(e2e_logs.event_log, e2e_logs.ima_log)
    assert sim_node.ima_lines == 826


def test_bad_input_is_refused_before_the_tpm_is_touched(sim_node: SimulatedNode, e2e_logs: Logs) -> None:
    before = sim_node.pcrs(SELECTION)
    with pytest.raises(DecodeError):
        sim_node.boot(e2e_logs.event_log[:-7], None)
    with pytest.raises(DecodeError):
        sim_node.boot(None, "10 zz ima-ng sha1:00 /x\n")
    for path in ("relative", "/with space", "/new\nline"):
        with pytest.raises(ValidationError):
            sim_node.measure(path, b"x")
    with pytest.raises(ValidationError):
        sim_node.measure("/x", b"x", pcr=24)
    assert sim_node.pcrs(SELECTION) == before
    assert sim_node.ima_log_path.read_text() == e2e_logs.ima_log
