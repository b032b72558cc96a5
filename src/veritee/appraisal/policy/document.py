"""Our policy document format (JSON, versioned, schema-checked) and its export.

A document is ``{"format": "veritee.policy", "version": 1, "name": ..., "boot": {...} | null, "runtime": {...} |
null}``; docs/findings.md describes every member. Loading is strict: an unknown member, a wrong type, a bad digest
or regular expression raises :class:`PolicyError` naming the member. Export is the exact inverse.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from veritee.appraisal.policy import _fields as f
from veritee.appraisal.policy.model import (
    BootPolicy,
    Digests,
    EfiSignature,
    FirmwareSpec,
    KernelSpec,
    PolicySet,
    RuntimePolicy,
    SigningKey,
)
from veritee.errors import PolicyError
from veritee.tpm.alg import HashAlg

__all__ = ["FORMAT", "VERSION", "dump_policy", "export_policy", "load_policy", "parse_policy"]

FORMAT = "veritee.policy"
VERSION = 1

_TOP = frozenset({"format", "version", "name", "boot", "runtime"})
_BOOT = frozenset({"secure_boot", "pk", "kek", "db", "dbx", "firmware", "mok", "mokx", "kernels", "pcrs"})
_KERNEL = frozenset({"shim", "grub", "kernel", "initrd", "vmlinuz", "cmdline"})
_RUNTIME = frozenset({"log_hash_alg", "digests", "excludes", "keyrings", "ignored_keyrings", "buffers", "signing_keys"})


# --- load --------------------------------------------------------------------------------------------------------
def load_policy(text: str | bytes) -> PolicySet:
    """Parse a policy document (JSON text)."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"policy document is not JSON: {exc}") from None
    return parse_policy(data)


def parse_policy(data: Any) -> PolicySet:
    """Check and convert an already-decoded policy document."""
    top = f.obj(data, "policy", allowed=_TOP, required=("format", "version"))
    if top["format"] != FORMAT:
        raise PolicyError(f"policy.format: expected {FORMAT!r}, got {top['format']!r}")
    if top["version"] != VERSION or isinstance(top["version"], bool):
        raise PolicyError(f"policy.version: this veritee reads version {VERSION}, got {top['version']!r}")
    name = f.text(top.get("name", "policy"), "policy.name")
    boot = _boot(top["boot"]) if top.get("boot") is not None else None
    runtime = _runtime(top["runtime"]) if top.get("runtime") is not None else None
    return PolicySet(name=name, boot=boot, runtime=runtime)


def _signatures(value: Any, where: str) -> tuple[EfiSignature, ...] | None:
    items = f.opt_list(value, where)
    if items is None:
        return None
    result = []
    for index, item in enumerate(items):
        at = f"{where}[{index}]"
        entry = f.obj(item, at, allowed=frozenset({"owner", "data"}), required=("owner", "data"))
        result.append(
            EfiSignature(owner=f.guid(entry["owner"], f"{at}.owner"), data=f.hex_bytes(entry["data"], f"{at}.data"))
        )
    return tuple(result)


def _digest_list(value: Any, where: str) -> tuple[Digests, ...] | None:
    items = f.opt_list(value, where)
    if items is None:
        return None
    return tuple(f.digest_map(item, f"{where}[{i}]") for i, item in enumerate(items))


def _sha256(value: Any, where: str) -> bytes | None:
    return None if value is None else f.hex_bytes(value, where, size=32)


def _boot(value: Any) -> BootPolicy:
    boot = f.obj(value, "boot", allowed=_BOOT)
    secure_boot = boot.get("secure_boot", True)
    if secure_boot is not None and not isinstance(secure_boot, bool):
        raise PolicyError("boot.secure_boot: expected true, false or null")
    firmware = None
    items = f.opt_list(boot.get("firmware"), "boot.firmware")
    if items is not None:
        specs = []
        for index, item in enumerate(items):
            at = f"boot.firmware[{index}]"
            entry = f.obj(item, at, allowed=frozenset({"scrtm", "platform_firmware"}), required=("scrtm",))
            blobs = f.opt_list(entry.get("platform_firmware", []), f"{at}.platform_firmware") or []
            specs.append(
                FirmwareSpec(
                    scrtm=f.digest_map(entry["scrtm"], f"{at}.scrtm"),
                    platform_firmware=tuple(
                        f.digest_map(blob, f"{at}.platform_firmware[{i}]") for i, blob in enumerate(blobs)
                    ),
                )
            )
        firmware = tuple(specs)
    kernels = None
    items = f.opt_list(boot.get("kernels"), "boot.kernels")
    if items is not None:
        specs_k = []
        for index, item in enumerate(items):
            at = f"boot.kernels[{index}]"
            entry = f.obj(item, at, allowed=_KERNEL)
            cmdline = entry.get("cmdline")
            specs_k.append(
                KernelSpec(
                    shim=_sha256(entry.get("shim"), f"{at}.shim"),
                    grub=_sha256(entry.get("grub"), f"{at}.grub"),
                    kernel=_sha256(entry.get("kernel"), f"{at}.kernel"),
                    initrd=_sha256(entry.get("initrd"), f"{at}.initrd"),
                    vmlinuz=_sha256(entry.get("vmlinuz"), f"{at}.vmlinuz"),
                    cmdline=None if cmdline is None else f.regex(cmdline, f"{at}.cmdline"),
                )
            )
        kernels = tuple(specs_k)
    pcrs: dict[HashAlg, dict[int, bytes]] = {}
    for label, values in f.obj(boot.get("pcrs", {}), "boot.pcrs").items():
        alg = f.hash_alg(label, f"boot.pcrs.{label}")
        bank: dict[int, bytes] = {}
        for index_text, hexval in f.obj(values, f"boot.pcrs.{label}").items():
            if not index_text.isdigit() or not 0 <= int(index_text) <= 23:
                raise PolicyError(f"boot.pcrs.{label}: {index_text!r} is not a PCR index 0..23")
            bank[int(index_text)] = f.hex_bytes(hexval, f"boot.pcrs.{label}.{index_text}", size=alg.digest_size)
        pcrs[alg] = bank
    return BootPolicy(
        secure_boot=secure_boot,
        pk=_signatures(boot.get("pk"), "boot.pk"),
        kek=_signatures(boot.get("kek"), "boot.kek"),
        db=_signatures(boot.get("db"), "boot.db"),
        dbx=_signatures(boot.get("dbx"), "boot.dbx"),
        firmware=firmware,
        mok=_digest_list(boot.get("mok"), "boot.mok"),
        mokx=_digest_list(boot.get("mokx"), "boot.mokx"),
        kernels=kernels,
        expected_pcrs=pcrs,
    )


def _named_digests(value: Any, where: str) -> dict[str, tuple[bytes, ...]]:
    return {name: f.hex_list(values, f"{where}[{name!r}]") for name, values in f.obj(value, where).items()}


def _runtime(value: Any) -> RuntimePolicy:
    runtime = f.obj(value, "runtime", allowed=_RUNTIME)
    excludes = f.str_list(runtime.get("excludes", []), "runtime.excludes")
    for index, pattern in enumerate(excludes):
        f.regex(pattern, f"runtime.excludes[{index}]")
    keys = []
    for index, item in enumerate(f.opt_list(runtime.get("signing_keys", []), "runtime.signing_keys") or []):
        at = f"runtime.signing_keys[{index}]"
        entry = f.obj(item, at, allowed=frozenset({"keyring", "keyid", "public_key"}), required=("keyid", "public_key"))
        keyid = f.hex_bytes(entry["keyid"], f"{at}.keyid", size=4)
        keys.append(
            SigningKey(
                keyring=f.text(entry.get("keyring", ".ima"), f"{at}.keyring"),
                keyid=int.from_bytes(keyid, "big"),
                spki_der=f.b64(entry["public_key"], f"{at}.public_key"),
            )
        )
    return RuntimePolicy(
        digests=_named_digests(runtime.get("digests", {}), "runtime.digests"),
        excludes=excludes,
        keyrings=_named_digests(runtime.get("keyrings", {}), "runtime.keyrings"),
        ignored_keyrings=f.str_list(runtime.get("ignored_keyrings", []), "runtime.ignored_keyrings"),
        buffers=_named_digests(runtime.get("buffers", {}), "runtime.buffers"),
        signing_keys=tuple(keys),
        log_hash_alg=f.hash_alg(runtime.get("log_hash_alg", "sha1"), "runtime.log_hash_alg"),
    )


# --- export ------------------------------------------------------------------------------------------------------
def _digests_json(digests: Digests) -> dict[str, str]:
    return {alg.label: value.hex() for alg, value in sorted(digests.items())}


def _sigs_json(sigs: tuple[EfiSignature, ...] | None) -> list[dict[str, str]] | None:
    return None if sigs is None else [{"owner": s.owner, "data": s.data.hex()} for s in sigs]


def _hex_or_none(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def _boot_json(boot: BootPolicy) -> dict[str, Any]:
    return {
        "secure_boot": boot.secure_boot,
        "pk": _sigs_json(boot.pk),
        "kek": _sigs_json(boot.kek),
        "db": _sigs_json(boot.db),
        "dbx": _sigs_json(boot.dbx),
        "firmware": None
        if boot.firmware is None
        else [
            {"scrtm": _digests_json(s.scrtm), "platform_firmware": [_digests_json(b) for b in s.platform_firmware]}
            for s in boot.firmware
        ],
        "mok": None if boot.mok is None else [_digests_json(d) for d in boot.mok],
        "mokx": None if boot.mokx is None else [_digests_json(d) for d in boot.mokx],
        "kernels": None
        if boot.kernels is None
        else [
            {
                "shim": _hex_or_none(k.shim),
                "grub": _hex_or_none(k.grub),
                "kernel": _hex_or_none(k.kernel),
                "initrd": _hex_or_none(k.initrd),
                "vmlinuz": _hex_or_none(k.vmlinuz),
                "cmdline": k.cmdline,
            }
            for k in boot.kernels
        ],
        "pcrs": {
            alg.label: {str(i): v.hex() for i, v in sorted(bank.items())}
            for alg, bank in sorted(boot.expected_pcrs.items())
        },
    }


def _named_json(named: Mapping[str, tuple[bytes, ...]]) -> dict[str, list[str]]:
    return {name: [v.hex() for v in values] for name, values in named.items()}


def _runtime_json(runtime: RuntimePolicy) -> dict[str, Any]:
    return {
        "log_hash_alg": runtime.log_hash_alg.label,
        "digests": _named_json(runtime.digests),
        "excludes": list(runtime.excludes),
        "keyrings": _named_json(runtime.keyrings),
        "ignored_keyrings": list(runtime.ignored_keyrings),
        "buffers": _named_json(runtime.buffers),
        "signing_keys": [
            {
                "keyring": key.keyring,
                "keyid": key.keyid.to_bytes(4, "big").hex(),
                "public_key": base64.b64encode(key.spki_der).decode(),
            }
            for key in runtime.signing_keys
        ],
    }


def export_policy(boot: BootPolicy | None, runtime: RuntimePolicy | None, *, name: str = "policy") -> dict[str, Any]:
    """The policy document (a JSON-ready dict) for these policies; :func:`parse_policy` reads it back unchanged."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "boot": None if boot is None else _boot_json(boot),
        "runtime": None if runtime is None else _runtime_json(runtime),
    }


def dump_policy(policy: PolicySet, *, indent: int | None = 1) -> str:
    """The policy document as JSON text."""
    return json.dumps(export_policy(policy.boot, policy.runtime, name=policy.name), indent=indent) + "\n"
