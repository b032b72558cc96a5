"""Boot appraisal: the firmware event log against the quoted PCRs, then its summary against the boot policy.

The policy rules are those of Keylime's ``example`` measured-boot policy (see
:mod:`veritee.appraisal.policy.keylime`), each violation reported as its own finding:

* Secure Boot as required; every logged PK, KEK and db entry allowed; every required dbx entry present;
* the S-CRTM version and the exact sequence of platform firmware blobs (PCR 0) of one allowed firmware;
* MokList / MokListX digests (PCR 14), when measured;
* one allowed kernel entry for the whole chain: the PCR 4 boot applications (shim, grub, kernel, the kernel possibly
  twice), at most one initrd and one kernel file measured by grub (PCR 9; exactly one, with the entry's digest, when
  the entry names one), exactly one kernel command line (PCR 8) matching the entry's regular expression in full; no
  other file measured by grub than its configuration and boot entries;
* fixed PCR values, when the policy lists any.

When no kernel entry matches, the findings are those of the entry that comes closest (fewest mismatching items).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from veritee.appraisal.findings import Finding, finding
from veritee.appraisal.policy.compiled import CompiledBootPolicy, CompiledKernel, DigestPairs, SignatureKey
from veritee.errors import DecodeError, UnsupportedAlgorithmError
from veritee.eventlog import EventLog, EventType, parse
from veritee.eventlog.replay import Replay, replay
from veritee.eventlog.summary import BootSummary, Measurement, summarize
from veritee.eventlog.uefi import SignatureEntry, SignatureLists
from veritee.tpm.alg import HashAlg

__all__ = ["BootRecord", "appraise_boot", "check_boot_policy", "check_expected_pcrs", "load_boot_log"]

PcrBanks = Mapping[HashAlg, Mapping[int, bytes]]
_SHA256 = HashAlg.SHA256
_NO_ACTION = EventType.EV_NO_ACTION
_BOOT_PCRS = frozenset((*range(10), 14))


# The PCR 9 files Keylime's example policy accepts: full matches of the path grub logs with ``.*/loader/entries.*``,
# ``.*/grub.*``, ``.*/vmlinuz.*|grub_linuxefi Kernel`` (RHEL 8's linuxefi names what it measured) and
# ``.*/initrd.*|.*/initramfs.*|grub_linuxefi Initrd``. Without DOTALL, ``.*X.*`` fully matches a path exactly when
# the path contains X and no line break, which is how they are tested here (a regular expression scan costs more).
def _keylime_full_match(path: str, needles: tuple[str, ...], literal: str | None = None) -> bool:
    if path == literal:
        return True
    return "\n" not in path and any(needle in path for needle in needles)


def _is_initrd(path: str) -> bool:
    return _keylime_full_match(path, ("/initrd", "/initramfs"), "grub_linuxefi Initrd")


def _is_vmlinuz(path: str) -> bool:
    return _keylime_full_match(path, ("/vmlinuz",), "grub_linuxefi Kernel")


def _is_boot_config(path: str) -> bool:
    return _keylime_full_match(path, ("/loader/entries", "/grub"))


@dataclass(frozen=True, slots=True)
class BootRecord:
    """A decoded event log, kept in the node state: the same boot's log is not decoded again next round."""

    data: bytes  # the log as received: the next round's log is compared with it byte for byte
    log: EventLog
    replay: Replay
    summary: BootSummary
    extended: frozenset[int]
    #: Memo of the boot policy findings of this log's summary, by policy id (they depend on nothing else).
    policy_findings: dict[str, tuple[Finding, ...]] = field(default_factory=dict, compare=False, repr=False)
    #: The banks ``replay`` computed (None: every bank of the log); its notes cover every bank either way.
    replayed_banks: frozenset[HashAlg] | None = None

    @property
    def digest(self) -> bytes:
        """The SHA-256 of the log."""
        return hashlib.sha256(self.data).digest()


def load_boot_log(data: bytes, previous: BootRecord | None, *, banks: Collection[HashAlg] | None = None) -> BootRecord:
    """Decode, replay and summarise ``data``, or reuse ``previous`` when it is the same log (the same bytes).

    ``banks`` limits the replay to the banks a quote covers (see :func:`veritee.eventlog.replay.replay`).
    """
    if previous is not None and previous.data == data:
        return previous
    log = parse(data)
    return BootRecord(
        data=data,
        log=log,
        replay=replay(log, banks=banks),
        summary=summarize(log),
        extended=frozenset(event.pcr for event in log.events if event.type != _NO_ACTION),
        replayed_banks=None if banks is None else frozenset(banks),
    )


def appraise_boot(
    data: bytes,
    quoted: PcrBanks,
    policy: CompiledBootPolicy | None,
    findings: list[Finding],
    *,
    policy_id: str = "",
    previous: BootRecord | None = None,
) -> BootRecord | None:
    """Replay the log against the quoted PCRs and check its summary against ``policy``; append findings.

    With ``previous`` holding the same log, decoding is skipped and, for the same ``policy_id``, so is
    the summary's policy check; the comparison with the quoted PCRs is always done.
    """
    try:
        record = load_boot_log(data, previous, banks=tuple(quoted))
    except (DecodeError, UnsupportedAlgorithmError) as exc:
        findings.append(finding("evidence.malformed", f"event log cannot be decoded: {exc}", part="event_log"))
        return None
    replayed = _compare_pcrs(record, quoted, findings)
    if policy is not None:
        _require_quoted(record, quoted, findings)
    for note in replayed.notes:
        findings.append(finding("boot.log_note", f"event log replay: {note}"))
    if policy is not None:
        memo = record.policy_findings.get(policy_id) if policy_id else None
        if memo is None:
            found: list[Finding] = []
            check_boot_policy(record.summary, policy, found)
            memo = tuple(found)
            if policy_id:
                record.policy_findings[policy_id] = memo
        findings.extend(memo)
    return record


def _compare_pcrs(record: BootRecord, quoted: PcrBanks, findings: list[Finding]) -> Replay:
    """Every quoted PCR the log extends must be what the log replays to (the ExitBootServices workaround of
    :func:`veritee.eventlog.replay.replay` is tried when PCR 5 differs). Returns the replay compared."""
    result = record.replay
    banks = record.replayed_banks
    if banks is not None and any(alg not in banks for alg in quoted):  # the last round's quote had other banks
        result = replay(record.log, banks=tuple(quoted))
    if any(5 in bank and result.pcrs.get(alg, {}).get(5) not in (None, bytes(bank[5])) for alg, bank in quoted.items()):
        result = replay(record.log, reference=quoted, banks=tuple(quoted))
    for alg, bank in quoted.items():
        replayed = result.pcrs.get(alg)
        for pcr, value in sorted(bank.items()):
            if pcr not in record.extended:
                continue
            got = None if replayed is None else replayed.get(pcr)
            if got is None:
                message = f"PCR {pcr} ({alg.label}): the event log has no {alg.label} digests for it"
            elif got != bytes(value):
                message = (
                    f"PCR {pcr} ({alg.label}): the event log replays to {got.hex()}, the quote has {bytes(value).hex()}"
                )
            else:
                continue
            findings.append(
                finding(
                    "boot.pcr_mismatch",
                    message,
                    pcr=pcr,
                    bank=alg.label,
                    quoted=bytes(value).hex(),
                    replayed=None if got is None else got.hex(),
                )
            )
    return result


def _require_quoted(record: BootRecord, quoted: PcrBanks, findings: list[Finding]) -> None:
    """The boot policy reads events of PCRs 0-9 and 14 (as Keylime's example policy): each one the log extends must
    be quoted, or what the log says about it is not bound to the TPM."""
    for pcr in sorted(record.extended & _BOOT_PCRS):
        if not any(pcr in bank for bank in quoted.values()):
            findings.append(
                finding(
                    "quote.pcr_missing",
                    f"PCR {pcr} is extended by the event log but not quoted: its events are not bound to the TPM",
                    pcr=pcr,
                )
            )


# --- policy checks --------------------------------------------------------------------------------------------
def _matches(digests: Mapping[HashAlg, bytes], allowed: DigestPairs) -> bool:
    return any(pair in allowed for pair in digests.items())


def _hex(digests: Mapping[HashAlg, bytes]) -> str:
    value = digests.get(_SHA256)
    if value is None and digests:
        value = next(iter(digests.values()))
    return value.hex() if value is not None else "(no digest)"


def _sig(entry: SignatureEntry) -> SignatureKey:
    return (entry.owner, entry.data)


def _keys(
    name: str,
    finding_id: str,
    logged: tuple[SignatureEntry, ...] | None,
    allowed: frozenset[SignatureKey] | None,
    findings: list[Finding],
) -> None:
    if allowed is None:
        return
    if logged is None:
        findings.append(
            finding(finding_id, f"{name} was not measured (PCR 7): its contents cannot be checked", variable=name)
        )
        return
    bad = [entry for entry in logged if _sig(entry) not in allowed]
    if bad:
        findings.append(
            finding(
                finding_id,
                f"{name} holds {len(bad)} entr{'y' if len(bad) == 1 else 'ies'} the boot policy does not allow "
                f"(first: owner {bad[0].owner}, {bad[0].kind.value}, {len(bad[0].data)} bytes)",
                variable=name,
                entries=[{"owner": str(e.owner), "data": e.data.hex()} for e in bad],
            )
        )


def _all_allowed(lists: SignatureLists | None, allowed_raw: frozenset[bytes]) -> bool:
    """Whether every entry of ``lists`` is allowed, compared as stored bytes (no entry decoded): exactly when
    :func:`_keys` finds nothing to report."""
    return lists is not None and all(map(allowed_raw.__contains__, lists.raw_entries()))


def _all_present(lists: SignatureLists | None, policy: CompiledBootPolicy) -> bool:
    """Whether every dbx entry the policy requires is in ``lists``, compared as stored bytes: as one run when the
    log lists them in the policy's order, else one by one (``dbx_raw`` lacks the entries without an owner, which no
    list can hold: then the answer is no). Exactly when the full check finds nothing to report."""
    required, required_raw = policy.dbx, policy.dbx_raw
    if required is None or required_raw is None:
        return True
    if len(required_raw) != len(required):
        return False
    if not required_raw:
        return True
    if lists is None:
        return False
    if policy.dbx_run is not None and lists.contains_run(*policy.dbx_run):
        return True
    return required_raw.issubset(lists.raw_entries())


def check_boot_policy(summary: BootSummary, policy: CompiledBootPolicy, findings: list[Finding]) -> None:
    """Every rule of ``policy`` about the log (all but the fixed PCR values) against ``summary``; one finding per
    violation."""
    spec = policy.source
    if spec.secure_boot is True and summary.secure_boot is not True:
        state = "disabled" if summary.secure_boot is False else "not measured"
        findings.append(finding("boot.secureboot_disabled", f"Secure Boot is {state} (SecureBoot variable, PCR 7)"))
    elif spec.secure_boot is False and summary.secure_boot is True:
        findings.append(finding("boot.secureboot_enabled", "Secure Boot is enabled but the boot policy expects it off"))
    for index in summary.data_mismatches:
        findings.append(
            finding(
                "boot.event_data_mismatch",
                f"event {index}: its data does not hash to its logged digest",
                event=index,
            )
        )
    # The databases are compared as bytes; only a database that fails is decoded, for the finding's details.
    for name, finding_id, allowed, allowed_raw in (
        ("PK", "boot.pk_mismatch", policy.pk, policy.pk_raw),
        ("KEK", "boot.kek_mismatch", policy.kek, policy.kek_raw),
        ("db", "boot.db_mismatch", policy.db, policy.db_raw),
    ):
        if (
            allowed is not None
            and allowed_raw is not None
            and not _all_allowed(summary.signature_lists(name), allowed_raw)
        ):
            _keys(name, finding_id, _logged_entries(summary, name), allowed, findings)
    if policy.dbx is not None and not _all_present(summary.signature_lists("dbx"), policy):
        logged = frozenset((entry.owner, entry.data) for entry in summary.dbx or ())
        missing = policy.dbx - logged
        if missing:
            findings.append(
                finding(
                    "boot.dbx_mismatch",
                    f"dbx lacks {len(missing)} of the {len(policy.dbx)} revocation entries the boot policy requires"
                    + ("" if summary.dbx is not None else " (dbx was not measured)"),
                    missing=sorted(data.hex() for _, data in missing),
                )
            )
    if policy.firmware is not None:
        _check_firmware(summary, policy.firmware, findings)
    _check_mok(summary, "MokList", "boot.mok_mismatch", policy.mok, findings)
    _check_mok(summary, "MokListX", "boot.mokx_mismatch", policy.mokx, findings)
    if policy.kernels is not None:
        _check_kernels(summary, policy.kernels, findings)


def _logged_entries(summary: BootSummary, name: str) -> tuple[SignatureEntry, ...] | None:
    """The decoded entries of one database (only that one is decoded)."""
    if name == "PK":
        return summary.pk
    if name == "KEK":
        return summary.kek
    return summary.db


def check_expected_pcrs(policy: CompiledBootPolicy, quoted: PcrBanks, findings: list[Finding]) -> None:
    """The fixed PCR values of the boot policy against the quoted ones."""
    for alg, bank in policy.source.expected_pcrs.items():
        for pcr, value in sorted(bank.items()):
            got = quoted.get(alg, {}).get(pcr)
            if got is None:
                findings.append(
                    finding(
                        "quote.pcr_missing",
                        f"PCR {pcr} ({alg.label}) is fixed by the boot policy but not quoted",
                        pcr=pcr,
                    )
                )
            elif bytes(got) != value:
                findings.append(
                    finding(
                        "boot.pcr_value_mismatch",
                        f"PCR {pcr} ({alg.label}) is {bytes(got).hex()}, the boot policy expects {value.hex()}",
                        pcr=pcr,
                        bank=alg.label,
                    )
                )


def _check_firmware(
    summary: BootSummary, allowed: tuple[tuple[DigestPairs, tuple[DigestPairs, ...]], ...], findings: list[Finding]
) -> None:
    scrtms = summary.scrtm_versions
    blobs = summary.firmware_blobs

    def scrtm_ok(scrtm: DigestPairs) -> bool:
        return len(scrtms) == 1 and _matches(scrtms[0].digests, scrtm)

    def blobs_ok(expected: tuple[DigestPairs, ...]) -> bool:
        return len(blobs) == len(expected) and all(_matches(b.digests, e) for b, e in zip(blobs, expected, strict=True))

    if any(scrtm_ok(scrtm) and blobs_ok(expected) for scrtm, expected in allowed):
        return
    scrtm_known = any(scrtm_ok(scrtm) for scrtm, _ in allowed)
    blobs_known = any(blobs_ok(expected) for _, expected in allowed)
    if not scrtm_known:
        shown = ", ".join(f"{m.description!r} {_hex(m.digests)}" for m in scrtms) or "none"
        findings.append(
            finding(
                "boot.scrtm_mismatch",
                f"S-CRTM version (PCR 0) {shown} is not an allowed one ({len(scrtms)} measured, 1 expected)",
                measured=[_hex(m.digests) for m in scrtms],
            )
        )
    if not blobs_known or scrtm_known:
        findings.append(
            finding(
                "boot.firmware_mismatch",
                f"the {len(blobs)} platform firmware blob(s) measured in PCR 0 are not an allowed sequence"
                + (" for this S-CRTM version" if blobs_known else ""),
                measured=[_hex(m.digests) for m in blobs],
            )
        )


def _check_mok(
    summary: BootSummary, name: str, finding_id: str, allowed: DigestPairs | None, findings: list[Finding]
) -> None:
    measured = summary.mok_lists.get(name)
    if allowed is None or measured is None or _matches(measured.digests, allowed):
        return
    findings.append(
        finding(
            finding_id,
            f"{name} (PCR 14, event {measured.index}) has digest {_hex(measured.digests)}, not an allowed one",
            event=measured.index,
            digest=_hex(measured.digests),
        )
    )


def _kernel_problems(
    kernel: CompiledKernel,
    apps: list[bytes | None],
    initrds: list[Measurement],
    vmlinuzes: list[Measurement],
    cmdlines: tuple[str, ...],
) -> list[Finding]:
    spec = kernel.spec
    problems: list[Finding] = []
    steps = [
        (digest, finding_id, name)
        for digest, finding_id, name in (
            (spec.shim, "boot.shim_mismatch", "shim"),
            (spec.grub, "boot.grub_mismatch", "grub"),
            (spec.kernel, "boot.kernel_mismatch", "kernel"),
        )
        if digest is not None
    ]
    if spec.kernel is not None:
        accepted = [steps, [*steps, steps[-1]]]  # some boots measure the kernel twice
    else:
        accepted = [steps]
    if not any(apps == [digest for digest, _, _ in chain] for chain in accepted):
        same_length = [chain for chain in accepted if len(chain) == len(apps)]
        if not same_length:
            problems.append(
                finding(
                    "boot.boot_apps_mismatch",
                    f"{len(apps)} EFI boot application(s) were loaded (PCR 4); the boot policy expects "
                    + " or ".join(str(len(chain)) for chain in accepted),
                    measured=[None if d is None else d.hex() for d in apps],
                )
            )
        else:
            for position, (got, (want, finding_id, name)) in enumerate(zip(apps, same_length[0], strict=True)):
                if got != want:
                    problems.append(
                        finding(
                            finding_id,
                            f"EFI boot application {position + 1} ({name}, PCR 4) has Authenticode digest "
                            f"{'(none)' if got is None else got.hex()}, the boot policy allows {want.hex()}",
                            position=position,
                            digest=None if got is None else got.hex(),
                        )
                    )
    for what, file_finding, measured, wanted in (
        ("initrd", "boot.initrd_mismatch", initrds, spec.initrd),
        ("kernel file", "boot.vmlinuz_mismatch", vmlinuzes, spec.vmlinuz),
    ):
        if wanted is None and not measured:
            continue  # not checked, and not there
        if len(measured) != 1:
            problems.append(
                finding(
                    file_finding,
                    f"grub measured {len(measured)} {what}(s) in PCR 9, the boot policy expects exactly one",
                    measured=[m.description for m in measured],
                )
            )
        elif wanted is not None and measured[0].digests.get(_SHA256) != wanted:
            got = measured[0].digests.get(_SHA256)
            problems.append(
                finding(
                    file_finding,
                    f"{what} {measured[0].description} (PCR 9, event {measured[0].index}) has digest "
                    f"{'(none)' if got is None else got.hex()}, the boot policy allows {wanted.hex()}",
                    event=measured[0].index,
                    path=measured[0].description,
                )
            )
    if len(cmdlines) != 1:
        problems.append(
            finding(
                "boot.kernel_cmdline_mismatch",
                f"{len(cmdlines)} kernel command lines were measured in PCR 8, the boot policy expects exactly one",
                measured=list(cmdlines),
            )
        )
    elif kernel.cmdline is not None and kernel.cmdline.fullmatch(cmdlines[0]) is None:
        problems.append(
            finding(
                "boot.kernel_cmdline_mismatch",
                f"kernel command line (PCR 8) {cmdlines[0]!r} does not match the allowed {spec.cmdline!r}",
                cmdline=cmdlines[0],
                allowed=spec.cmdline,
            )
        )
    return problems


def _check_kernels(summary: BootSummary, kernels: tuple[CompiledKernel, ...], findings: list[Finding]) -> None:
    apps = summary.application_digests(4, _SHA256)  # the EV_EFI_BOOT_SERVICES_APPLICATION events of PCR 4
    initrds: list[Measurement] = []
    vmlinuzes: list[Measurement] = []
    for measured in summary.ipl_files:
        if measured.pcr != 9:
            continue
        path = measured.description
        if _is_initrd(path):
            initrds.append(measured)
        elif _is_vmlinuz(path):
            vmlinuzes.append(measured)
        elif not _is_boot_config(path):
            findings.append(
                finding(
                    "boot.unexpected_file",
                    f"grub measured {path!r} (PCR 9, event {measured.index}), which the boot policy does not expect",
                    event=measured.index,
                    path=path,
                )
            )
    best: list[Finding] | None = None
    for kernel in kernels:
        problems = _kernel_problems(kernel, apps, initrds, vmlinuzes, summary.kernel_cmdlines)
        if not problems:
            return
        if best is None or len(problems) < len(best):
            best = problems
    if best is None:
        findings.append(finding("boot.kernel_mismatch", "the boot policy allows no kernel at all"))
        return
    findings.extend(best)
