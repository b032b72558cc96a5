"""Policy generation from a known-good node: its event log and IMA list become a boot and a runtime policy.

The boot policy pins what the log shows: the Secure Boot state, the PK/KEK/db entries (allowed) and dbx entries
(required), the S-CRTM and firmware blobs, MokList/MokListX, the boot chain (shim, grub, kernel Authenticode
digests), the initrd and kernel files grub measured and the kernel command line (escaped, matched in full). The
runtime policy allows every measured file with the digest it had (boot_aggregate included, as Keylime does), every
measured key and buffer, and uses the log's template hash algorithm. The inputs are checked first: a log whose
template hashes are wrong, or that cannot be decoded, raises PolicyError.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from veritee.appraisal.policy.model import BootPolicy, EfiSignature, FirmwareSpec, KernelSpec, RuntimePolicy
from veritee.appraisal.runtime import looks_like_key
from veritee.errors import DecodeError, DigestMismatchError, PolicyError, UnsupportedAlgorithmError
from veritee.eventlog import EventType
from veritee.eventlog import parse as parse_event_log
from veritee.eventlog.summary import BootSummary, summarize
from veritee.eventlog.uefi import SignatureEntry
from veritee.ima import ImaTemplate, replay
from veritee.ima import parse as parse_ima
from veritee.tpm.alg import HashAlg

__all__ = ["boot_policy_from_summary", "create_policy_from_evidence", "runtime_policy_from_ima"]

_BSA = EventType.EV_EFI_BOOT_SERVICES_APPLICATION
_INITRD = re.compile(r".*/initrd.*|.*/initramfs.*|grub_linuxefi Initrd")
_VMLINUZ = re.compile(r".*/vmlinuz.*|grub_linuxefi Kernel")  # RHEL 8's linuxefi names what it measured


def _signatures(entries: tuple[SignatureEntry, ...] | None) -> tuple[EfiSignature, ...] | None:
    if entries is None:
        return None
    return tuple(EfiSignature(owner=str(e.owner) if e.owner is not None else "", data=e.data) for e in entries)


def _kernel(summary: BootSummary) -> KernelSpec:
    apps: list[bytes | None] = [
        app.digests.get(HashAlg.SHA256) for app in summary.efi_apps if app.pcr == 4 and app.event_type is _BSA
    ]
    if any(digest is None for digest in apps):
        raise PolicyError("the event log has EFI boot applications without SHA-256 digests")
    if len(apps) == 4 and apps[3] == apps[2]:
        apps = apps[:3]  # the kernel measured twice: the policy accepts that anyway
    if len(apps) > 3:
        raise PolicyError(
            f"the boot chain has {len(apps)} EFI applications; a policy describes shim, grub and kernel: "
            "write this boot policy by hand"
        )
    padding: list[bytes | None] = [None] * (3 - len(apps))
    padded = padding + apps
    shim, grub, kernel = padded
    files = [m for m in summary.ipl_files if m.pcr == 9]
    initrds = [m.digests.get(HashAlg.SHA256) for m in files if _INITRD.fullmatch(m.description)]
    vmlinuzes = [m.digests.get(HashAlg.SHA256) for m in files if _VMLINUZ.fullmatch(m.description)]
    if len(summary.kernel_cmdlines) > 1 or len(initrds) > 1 or len(vmlinuzes) > 1:
        raise PolicyError("the event log shows more than one kernel command line, initrd or kernel file")
    return KernelSpec(
        shim=shim,
        grub=grub,
        kernel=kernel,
        initrd=initrds[0] if initrds else None,
        vmlinuz=vmlinuzes[0] if vmlinuzes else None,
        cmdline=re.escape(summary.kernel_cmdlines[0]) if summary.kernel_cmdlines else None,
    )


def boot_policy_from_summary(summary: BootSummary) -> BootPolicy:
    """The boot policy that exactly this boot satisfies."""
    firmware = None
    if len(summary.scrtm_versions) == 1:
        firmware = (
            FirmwareSpec(
                scrtm=dict(summary.scrtm_versions[0].digests),
                platform_firmware=tuple(dict(blob.digests) for blob in summary.firmware_blobs),
            ),
        )
    mok = summary.mok_lists.get("MokList")
    mokx = summary.mok_lists.get("MokListX")
    return BootPolicy(
        secure_boot=summary.secure_boot,
        pk=_signatures(summary.pk),
        kek=_signatures(summary.kek),
        db=_signatures(summary.db),
        dbx=_signatures(summary.dbx),
        firmware=firmware,
        mok=None if mok is None else (dict(mok.digests),),
        mokx=None if mokx is None else (dict(mokx.digests),),
        kernels=(_kernel(summary),),
    )


def runtime_policy_from_ima(text: str, *, excludes: Iterable[str] = ()) -> RuntimePolicy:
    """The runtime policy that allows exactly what this IMA list measured (after checking its template hashes)."""
    try:
        entries = parse_ima(text)
        replay(entries, banks=(HashAlg.SHA256,))
    except (DecodeError, DigestMismatchError, UnsupportedAlgorithmError) as exc:
        raise PolicyError(f"the IMA log cannot be used to make a policy: {exc}") from exc
    digests: dict[str, list[bytes]] = {}
    keyrings: dict[str, list[bytes]] = {}
    buffers: dict[str, list[bytes]] = {}
    for entry in entries:
        if entry.is_violation:
            continue
        if entry.template_name is ImaTemplate.IMA_BUF:
            table = keyrings if entry.buffer is not None and looks_like_key(entry.buffer) else buffers
        else:
            table = digests
        values = table.setdefault(entry.path, [])
        if entry.file_digest not in values:
            values.append(entry.file_digest)
    return RuntimePolicy(
        digests={path: tuple(values) for path, values in digests.items()},
        excludes=tuple(excludes),
        keyrings={name: tuple(values) for name, values in keyrings.items()},
        buffers={name: tuple(values) for name, values in buffers.items()},
        log_hash_alg=entries[0].template_hash_alg if entries else HashAlg.SHA1,
    )


def create_policy_from_evidence(
    event_log: bytes | None, ima_log: str | None, *, excludes: Iterable[str] = ()
) -> tuple[BootPolicy | None, RuntimePolicy | None]:
    """Boot and runtime policies from a known-good node's event log and IMA list (either may be None)."""
    boot = None
    if event_log is not None:
        try:
            summary = summarize(parse_event_log(event_log))
        except (DecodeError, UnsupportedAlgorithmError) as exc:
            raise PolicyError(f"the event log cannot be used to make a policy: {exc}") from exc
        if summary.data_mismatches:
            raise PolicyError(f"event log events {list(summary.data_mismatches)} do not hash to their digests")
        boot = boot_policy_from_summary(summary)
    runtime = runtime_policy_from_ima(ima_log, excludes=excludes) if ima_log is not None else None
    return boot, runtime
