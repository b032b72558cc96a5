"""The evidence bundle both sides appraise, and the tampered variants each side must reject.

Standard library only (the Keylime peer script imports it too). The bundle is the shared e2e-swtpm one: a real
software-TPM quote over PCRs 0-10 and 14, the RHEL 9 firmware event log, an 826-entry IMA list, and the two policies
Keylime 7.14.3's ``keylime-policy create`` made for it. Each variant changes one thing a verifier must catch:

* ``ima_entry_changed``: one IMA entry's file digest is changed (the line was edited after it was measured);
* ``policy_digest_removed``: that file's digests are removed from the runtime policy (the file is not allowed);
* ``kernel_cmdline_changed``: the boot policy's kernel command line no longer matches the logged one;
* ``boot_event_changed``: one SHA-256 event digest of PCR 0-7 in the firmware log is changed (the log no longer
  replays to the quoted PCRs).
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = [
    "BUNDLE_FILES",
    "EXPECTED",
    "Bundle",
    "BundleError",
    "Variant",
    "default_bundle_dir",
    "ima_target",
]

BUNDLE_FILES = (
    "ak.pub",
    "ek.pub",
    "quote.msg",
    "quote.sig",
    "quote.pcrs",
    "nonce.hex",
    "binary_bios_measurements",
    "ascii_runtime_measurements",
    "runtime_policy.json",
    "mb_refstate.json",
)

_SHA256_ID = 0x000B
_EV_NO_ACTION = 0x00000003
_SPEC_ID_SIGNATURE = b"Spec ID Event03\x00"


class BundleError(ValueError):
    """The bundle is missing a file or does not have what a variant needs."""


class Variant(StrEnum):
    GOOD = "good"
    IMA_ENTRY_CHANGED = "ima_entry_changed"
    POLICY_DIGEST_REMOVED = "policy_digest_removed"
    KERNEL_CMDLINE_CHANGED = "kernel_cmdline_changed"
    BOOT_EVENT_CHANGED = "boot_event_changed"


#: The verdict each benchmark must reach on each variant (True = PASS), on our side and on the peer's.
EXPECTED: dict[str, dict[Variant, bool]] = {
    "full": {
        Variant.GOOD: True,
        Variant.IMA_ENTRY_CHANGED: False,
        Variant.POLICY_DIGEST_REMOVED: False,
        Variant.KERNEL_CMDLINE_CHANGED: False,
    },
    "ima": {Variant.GOOD: True, Variant.IMA_ENTRY_CHANGED: False},
    "ima_policy": {Variant.GOOD: True, Variant.IMA_ENTRY_CHANGED: False, Variant.POLICY_DIGEST_REMOVED: False},
    "eventlog": {Variant.GOOD: True, Variant.BOOT_EVENT_CHANGED: False},
}


def default_bundle_dir(repo_root: Path) -> Path:
    """``../shared/tpm/e2e-swtpm`` beside the repository."""
    return repo_root.parent / "shared" / "tpm" / "e2e-swtpm"


@dataclass(frozen=True, slots=True)
class Bundle:
    """The bundle's file contents (name -> bytes), read once."""

    root: Path
    files: Mapping[str, bytes]

    @classmethod
    def load(cls, root: Path) -> Bundle:
        missing = [name for name in BUNDLE_FILES if not (root / name).is_file()]
        if missing:
            raise BundleError(f"bundle {root} lacks {', '.join(missing)}")
        return cls(root, {name: (root / name).read_bytes() for name in BUNDLE_FILES})

    def variant(self, variant: Variant) -> dict[str, bytes]:
        """The bundle's files with ``variant``'s one change applied."""
        files = dict(self.files)
        if variant is Variant.GOOD:
            return files
        if variant is Variant.IMA_ENTRY_CHANGED:
            index, _ = ima_target(files)
            lines = files["ascii_runtime_measurements"].decode().split("\n")
            fields = lines[index].split(" ")
            alg, digest = fields[3].split(":", 1)
            changed = ("1" if digest[0] == "0" else "0") + digest[1:]
            fields[3] = f"{alg}:{changed}"
            lines[index] = " ".join(fields)
            files["ascii_runtime_measurements"] = "\n".join(lines).encode()
        elif variant is Variant.POLICY_DIGEST_REMOVED:
            _, path = ima_target(files)
            policy = _json(files, "runtime_policy.json")
            del policy["digests"][path]
            files["runtime_policy.json"] = json.dumps(policy).encode()
        elif variant is Variant.KERNEL_CMDLINE_CHANGED:
            refstate = _json(files, "mb_refstate.json")
            kernels = refstate.get("kernels")
            if not isinstance(kernels, list) or not kernels or not isinstance(kernels[0], dict):
                raise BundleError("mb_refstate.json has no kernels to change")
            kernels[0]["kernel_cmdline"] = str(kernels[0].get("kernel_cmdline", "")) + " veritee.bench.tampered=1"
            files["mb_refstate.json"] = json.dumps(refstate).encode()
        elif variant is Variant.BOOT_EVENT_CHANGED:
            files["binary_bios_measurements"] = _change_boot_digest(files["binary_bios_measurements"])
        return files


def _json(files: Mapping[str, bytes], name: str) -> dict[str, Any]:
    try:
        value = json.loads(files[name])
    except json.JSONDecodeError as exc:
        raise BundleError(f"{name} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise BundleError(f"{name} is not a JSON object")
    return value


def ima_target(files: Mapping[str, bytes]) -> tuple[int, str]:
    """The line index and path of the first measured file the runtime policy lists by digest (and does not
    exclude): the entry the IMA variants change."""
    policy = _json(files, "runtime_policy.json")
    digests = policy.get("digests")
    if not isinstance(digests, dict):
        raise BundleError("runtime_policy.json has no digests")
    excludes = [str(item) for item in policy.get("excludes") or []]
    excluded = re.compile("|".join(f"(?:{item})" for item in excludes)) if excludes else None
    for index, line in enumerate(files["ascii_runtime_measurements"].decode().split("\n")):
        fields = line.split(" ")
        if len(fields) < 5 or fields[2] not in ("ima-ng", "ima-sig") or ":" not in fields[3]:
            continue
        path = fields[4]
        if path != "boot_aggregate" and path in digests and (excluded is None or not excluded.match(path)):
            return index, path
    raise BundleError("no IMA entry of a file the runtime policy lists")


def _change_boot_digest(log: bytes) -> bytes:
    """Flip a bit of the first SHA-256 digest of an event in PCR 0-7 (a crypto-agile TCG PC Client log)."""
    try:
        (header_size,) = struct.unpack_from("<I", log, 28)
        spec = log[32 : 32 + header_size]
        if not spec.startswith(_SPEC_ID_SIGNATURE):
            raise BundleError("the event log is not in the crypto-agile format")
        (count,) = struct.unpack_from("<I", spec, 24)
        sizes = dict(struct.unpack_from("<HH", spec, 28 + 4 * i) for i in range(count))
        pos = 32 + header_size
        while pos + 12 <= len(log):
            pcr, event_type, digests = struct.unpack_from("<III", log, pos)
            pos += 12
            for _ in range(digests):
                (alg,) = struct.unpack_from("<H", log, pos)
                pos += 2
                if alg == _SHA256_ID and 0 <= pcr <= 7 and event_type != _EV_NO_ACTION:
                    changed = bytearray(log)
                    changed[pos] ^= 0x01
                    return bytes(changed)
                pos += sizes[alg]
            (event_size,) = struct.unpack_from("<I", log, pos)
            pos += 4 + event_size
    except (struct.error, KeyError) as exc:
        raise BundleError(f"cannot walk the event log: {exc!r}") from None
    raise BundleError("the event log has no SHA-256 digest of PCR 0-7")
