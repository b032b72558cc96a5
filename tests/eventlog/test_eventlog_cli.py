"""``veritee eventlog replay|show|summary`` through Typer's test runner."""

from __future__ import annotations

import json
from pathlib import Path

from eventlog_support import EXPECTED_LOGS, KEYLIME_SB, SHA256, expected_pcrs, log_path
from typer.testing import CliRunner

from veritee.cli import eventlog as cli

RUNNER = CliRunner()


def test_module_contract() -> None:
    assert cli.NAME == "eventlog"
    result = RUNNER.invoke(cli.app, ["--help"])
    assert result.exit_code == 0
    for command in ("replay", "show", "summary"):
        assert command in result.stdout


def test_replay_json() -> None:
    result = RUNNER.invoke(cli.app, ["replay", str(log_path(EXPECTED_LOGS["GdcHost"])), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"pcrs", "events", "notes", "extended"}
    assert payload["events"] == 159 and payload["extended"] == 157
    expected = {str(pcr): value.hex() for pcr, value in expected_pcrs("GdcHost")[SHA256].items()}
    assert payload["pcrs"] == {"sha256": expected}
    assert payload["notes"] == ["PCR0 initialised for StartupLocality 3 (EV_NO_ACTION event 1 at offset 65)"]


def test_replay_table() -> None:
    result = RUNNER.invoke(cli.app, ["replay", str(log_path(EXPECTED_LOGS["Debian10GCE"]))])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "legacy-sha1 log, 25 events (25 extended), banks: sha1"
    assert "sha1    PCR  0: 0f2d3a2a1adaa479aeeca8f5df76aadc41b862ea" in lines
    assert any(line.startswith("note: ExitBootServices events missing") for line in lines)


def test_show_json_and_table() -> None:
    path = str(log_path(KEYLIME_SB))
    result = RUNNER.invoke(cli.app, ["show", path, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["format"] == "crypto-agile" and payload["algorithms"] == ["sha256"]
    events = payload["events"]
    assert len(events) == 99
    assert events[0]["kind"] == "SpecIdEvent"
    shim = events[29]
    assert shim["type"] == "EV_EFI_BOOT_SERVICES_APPLICATION" and shim["description"].startswith("PciRoot(0x0)")
    assert shim["digests"]["sha256"] == "27b12463e599b3147635f272e3722960e443def60fef088eba600697017529f2"
    assert {e["data_check"] for e in events[1:]} <= {"match", "not-applicable"}
    table = RUNNER.invoke(cli.app, ["show", path])
    assert table.exit_code == 0
    assert "  29 PCR  4 EV_EFI_BOOT_SERVICES_APPLICATION   PciRoot(0x0)/Pci(0x2,0x3)" in table.stdout


def test_summary_json_and_table() -> None:
    path = str(log_path(KEYLIME_SB))
    result = RUNNER.invoke(cli.app, ["summary", path, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["secure_boot"] is True and len(payload["dbx"]) == 371
    assert payload["kernel_cmdlines"][0].endswith("console=tty0 console=ttyS0")
    assert [a["variable"] for a in payload["authorities"]] == ["db", "SbatLevel", "vendor_db"]
    table = RUNNER.invoke(cli.app, ["summary", str(log_path(EXPECTED_LOGS["ArchLinuxWorkstation"]))])
    assert table.exit_code == 0
    assert "Secure Boot: disabled" in table.stdout
    assert "note: event 3 SecureBoot: zero-length SecureBoot variable: Secure Boot not enabled" in table.stdout


def test_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.bin"
    broken.write_bytes(log_path(KEYLIME_SB).read_bytes()[:5000])
    result = RUNNER.invoke(cli.app, ["replay", str(broken), "--json"])
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "EventLogError" and "runs past the end of the log" in error["message"]
    missing = RUNNER.invoke(cli.app, ["show", str(tmp_path / "absent.bin")])
    assert missing.exit_code == 2
    assert "cannot read" in missing.output
