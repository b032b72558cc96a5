"""``veritee eventlog``: TCG PC Client firmware event logs (binary_bios_measurements): replay, show, summary."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from veritee.errors import VeriteeError
from veritee.eventlog import (
    BootSummary,
    Event,
    EventLog,
    SignatureEntry,
    check_event_data,
    decode,
    parse,
    replay,
    summarize,
)

NAME = "eventlog"
app = typer.Typer(
    help="TCG PC Client firmware event logs (binary_bios_measurements): replay PCRs, list events, read boot facts.",
    no_args_is_help=True,
)


@app.callback()
def _group() -> None:
    """Firmware event logs."""


def _fail(message: str, kind: str, json_output: bool, code: int = 1) -> typer.Exit:
    if json_output:
        typer.echo(json.dumps({"error": {"type": kind, "message": message}}))
    else:
        typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _load(file: Path, json_output: bool) -> EventLog:
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc.strerror or exc}", "OSError", json_output, code=2) from None
    try:
        return parse(data)
    except VeriteeError as exc:
        raise _fail(str(exc), type(exc).__name__, json_output) from None


FILE_ARGUMENT = typer.Argument(..., help="A binary event log, e.g. /sys/kernel/security/tpm0/binary_bios_measurements.")
JSON_OPTION = typer.Option(False, "--json", help="Print machine-readable JSON.")


@app.command("replay")
def replay_command(file: Path = FILE_ARGUMENT, json_output: bool = JSON_OPTION) -> None:
    """Replay every bank of the log into PCR values (StartupLocality and missing-event workarounds noted)."""
    log = _load(file, json_output)
    result = replay(log)
    if json_output:
        payload = result.as_dict()
        payload["events"] = len(log.events)
        payload["extended"] = result.extended_events
        typer.echo(json.dumps(payload))
        return
    typer.echo(
        f"{log.format.value} log, {len(log.events)} events ({result.extended_events} extended), banks: "
        + ", ".join(alg.label for alg in log.algorithms)
    )
    for alg, values in result.pcrs.items():
        for pcr, value in sorted(values.items()):
            typer.echo(f"{alg.label:<7} PCR {pcr:>2}: {value.hex()}")
    for note in result.notes:
        typer.echo(f"note: {note}")


def _event_record(event: Event) -> dict[str, object]:
    record: dict[str, object] = {
        "index": event.index,
        "offset": event.offset,
        "pcr": event.pcr,
        "type": event.type_name,
        "digests": {alg.label: digest.hex() for alg, digest in event.digests.items()},
        "size": len(event.data),
    }
    try:
        decoded = decode(event)
    except VeriteeError as exc:
        record["error"] = str(exc)
        return record
    record["kind"] = type(decoded).__name__
    record["description"] = decoded.describe()
    notes = getattr(decoded, "notes", ())
    if notes:
        record["notes"] = list(notes)
    record["data_check"] = check_event_data(event).value
    return record


@app.command("show")
def show_command(file: Path = FILE_ARGUMENT, json_output: bool = JSON_OPTION) -> None:
    """List every event with its digests and decoded data."""
    log = _load(file, json_output)
    records = [_event_record(event) for event in log.events]
    if json_output:
        typer.echo(
            json.dumps(
                {
                    "format": log.format.value,
                    "algorithms": [alg.label for alg in log.algorithms],
                    "notes": list(log.notes),
                    "events": records,
                }
            )
        )
        return
    typer.echo(
        f"{log.format.value} log, {len(log.events)} events, banks: " + ", ".join(a.label for a in log.algorithms)
    )
    for record in records:
        text = record.get("description", f"undecodable: {record.get('error')}")
        typer.echo(f"{record['index']:>4} PCR {record['pcr']!s:>2} {record['type']:<34} {text}")
    for note in log.notes:
        typer.echo(f"note: {note}")


def _entries(entries: tuple[SignatureEntry, ...] | None) -> list[dict[str, str]] | None:
    if entries is None:
        return None
    return [
        {"kind": entry.kind.value, "owner": str(entry.owner) if entry.owner else "", "data": entry.data.hex()}
        for entry in entries
    ]


def _summary_dict(summary: BootSummary) -> dict[str, object]:
    return {
        "format": summary.format.value,
        "secure_boot": summary.secure_boot,
        "pk": _entries(summary.pk),
        "kek": _entries(summary.kek),
        "db": _entries(summary.db),
        "dbx": _entries(summary.dbx),
        "mok_lists": {name: {a.label: d.hex() for a, d in m.digests.items()} for name, m in summary.mok_lists.items()},
        "authorities": [
            {
                "event": auth.index,
                "variable": auth.variable,
                "after_separator": auth.after_separator,
                "entry": _entries((auth.entry,)) if auth.entry is not None else None,
            }
            for auth in summary.authorities
        ],
        "efi_apps": [
            {
                "event": app.index,
                "device_path": app.device_path,
                "digests": {a.label: d.hex() for a, d in app.digests.items()},
                "firmware_volume": app.firmware_volume,
            }
            for app in summary.efi_apps
        ],
        "kernel_cmdlines": list(summary.kernel_cmdlines),
        "grub_commands": list(summary.grub_commands),
        "ipl_files": [
            {"path": m.description, "digests": {a.label: d.hex() for a, d in m.digests.items()}}
            for m in summary.ipl_files
        ],
        "scrtm_versions": [{a.label: d.hex() for a, d in m.digests.items()} for m in summary.scrtm_versions],
        "firmware_blobs": [{a.label: d.hex() for a, d in m.digests.items()} for m in summary.firmware_blobs],
        "separators": {str(pcr): list(values) for pcr, values in summary.separators.items()},
        "events_after_pcr7_separator": list(summary.events_after_pcr7_separator),
        "exit_boot_services": summary.exit_boot_services,
        "startup_locality": summary.startup_locality,
        "data_mismatches": list(summary.data_mismatches),
        "notes": list(summary.notes),
    }


@app.command("summary")
def summary_command(file: Path = FILE_ARGUMENT, json_output: bool = JSON_OPTION) -> None:
    """Boot facts a measured-boot policy checks (Secure Boot, keys, boot chain, kernel command line, ...)."""
    log = _load(file, json_output)
    summary = summarize(log)
    if json_output:
        typer.echo(json.dumps(_summary_dict(summary)))
        return
    state = {True: "enabled", False: "disabled", None: "not measured"}[summary.secure_boot]
    typer.echo(f"Secure Boot: {state}")
    for label, entries in (("PK", summary.pk), ("KEK", summary.kek), ("db", summary.db), ("dbx", summary.dbx)):
        typer.echo(f"{label}: {'not measured' if entries is None else f'{len(entries)} entries'}")
    for app_record in summary.efi_apps:
        digest = app_record.digest()
        shown = digest.hex() if digest is not None else "-"
        typer.echo(f"EFI app (event {app_record.index}): {app_record.device_path or '(no path)'} sha256={shown}")
    for cmdline in summary.kernel_cmdlines:
        typer.echo(f"kernel command line: {cmdline}")
    typer.echo(f"ExitBootServices measured: {'yes' if summary.exit_boot_services else 'no'}")
    for note in summary.notes:
        typer.echo(f"note: {note}")
