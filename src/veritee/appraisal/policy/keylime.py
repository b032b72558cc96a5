"""Import Keylime's policy formats, so a Keylime user can switch without rewriting policies.

* the runtime policy (Keylime 7.x, ``meta.version`` 1: ``digests``, ``excludes``, ``keyrings``, ``ima``
  {``ignored_keyrings``, ``log_hash_alg``, ``dm_policy``}, ``ima-buf``, ``verification-keys``), with Keylime's
  semantics kept: excludes are matched at the start of the path, a digest of any algorithm matches by value, keys
  measured into a keyring are checked against ``keyrings`` unless the keyring is ignored;
* the measured-boot reference state of Keylime's ``example`` policy (``has_secureboot``, ``scrtm_and_bios``, ``pk``,
  ``kek``, ``db``, ``dbx``, ``mokdig``, ``mokxdig``, ``kernels``), with its rules: logged PK/KEK/db entries must be
  in the allowed lists, the logged dbx must contain every listed entry, and without Secure Boot an empty key list
  means "not checked".

Device-mapper policies (``ima.dm_policy``) are not supported: importing one raises PolicyError rather than silently
appraising less than Keylime would.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from veritee.appraisal.policy import _fields as f
from veritee.appraisal.policy.model import BootPolicy, EfiSignature, FirmwareSpec, KernelSpec, RuntimePolicy, SigningKey
from veritee.errors import PolicyError

__all__ = ["ima_keyid", "import_keylime_refstate", "import_keylime_runtime_policy"]

_RUNTIME_TOP = frozenset({"meta", "release", "digests", "excludes", "keyrings", "ima", "ima-buf", "verification-keys"})
_REFSTATE_TOP = frozenset(
    {"has_secureboot", "scrtm_and_bios", "pk", "kek", "db", "dbx", "mokdig", "mokxdig", "kernels", "vendor_db"}
)


def _decode(data: object, what: str) -> dict[str, Any]:
    """JSON text (or bytes) decoded, or an already decoded document, as an object."""
    decoded = data
    if isinstance(data, str | bytes | bytearray):
        try:
            decoded = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{what} is not JSON: {exc}") from None
    return f.obj(decoded, what)


# --- runtime policy ----------------------------------------------------------------------------------------------
def ima_keyid(public_key: RSAPublicKey | EllipticCurvePublicKey) -> int:
    """The IMA v2 key id: the last 4 bytes of SHA-1 over the PKCS#1 RSA key or the uncompressed EC point."""
    if isinstance(public_key, RSAPublicKey):
        raw = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    else:
        raw = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return int.from_bytes(hashlib.sha1(raw).digest()[16:], "big")


def _verification_keys(value: Any) -> tuple[SigningKey, ...]:
    where = "runtime_policy['verification-keys']"
    raw = f.text(value, where)
    if not raw:
        return ()
    try:
        rings = json.loads(raw)
        if isinstance(rings, str):  # Keylime sometimes stores it JSON-encoded twice
            rings = json.loads(rings)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"{where}: not JSON: {exc}") from None
    keys: list[SigningKey] = []
    for name, ring_text in f.obj(rings, where).items():
        at = f"{where}[{name!r}]"
        try:
            ring = json.loads(ring_text) if isinstance(ring_text, str) else ring_text
        except json.JSONDecodeError as exc:
            raise PolicyError(f"{at}: not JSON: {exc}") from None
        ring = f.obj(ring, at, required=("pubkeys",))
        pubkeys = f.opt_list(ring["pubkeys"], f"{at}.pubkeys") or []
        keyids = f.opt_list(ring.get("keyids", []), f"{at}.keyids") or []
        for index, encoded in enumerate(pubkeys):
            der = f.b64(encoded, f"{at}.pubkeys[{index}]")
            try:
                public = serialization.load_der_public_key(der)
            except ValueError as exc:
                raise PolicyError(f"{at}.pubkeys[{index}]: not a DER public key: {exc}") from None
            if not isinstance(public, RSAPublicKey | EllipticCurvePublicKey):
                raise PolicyError(f"{at}.pubkeys[{index}]: IMA keys are RSA or EC, not {type(public).__name__}")
            keyid = keyids[index] if index < len(keyids) else None
            if keyid is not None and (not isinstance(keyid, int) or isinstance(keyid, bool) or not 0 <= keyid < 2**32):
                raise PolicyError(f"{at}.keyids[{index}]: expected a 32-bit integer")
            keys.append(SigningKey(keyring=name, keyid=keyid if keyid else ima_keyid(public), spki_der=der))
    return tuple(keys)


def import_keylime_runtime_policy(data: str | bytes | dict[str, Any]) -> RuntimePolicy:
    """A Keylime 7.x runtime policy (runtime_policy.json) as a :class:`RuntimePolicy`."""
    top = f.obj(_decode(data, "runtime_policy"), "runtime_policy", allowed=_RUNTIME_TOP, required=("digests",))
    meta = f.obj(top.get("meta", {"version": 1}), "runtime_policy.meta")
    if meta.get("version", 1) != 1:
        raise PolicyError(f"runtime_policy.meta.version: only version 1 is supported, got {meta.get('version')!r}")
    ima = f.obj(
        top.get("ima", {}),
        "runtime_policy.ima",
        allowed=frozenset({"ignored_keyrings", "log_hash_alg", "dm_policy"}),
    )
    if ima.get("dm_policy") is not None:
        raise PolicyError("runtime_policy.ima.dm_policy: device-mapper policies are not supported by veritee")
    excludes = f.str_list(top.get("excludes", []), "runtime_policy.excludes")
    for index, pattern in enumerate(excludes):
        f.regex(pattern, f"runtime_policy.excludes[{index}]")
    if excludes:
        f.regex("(" + ")|(".join(excludes) + ")", "runtime_policy.excludes (combined)")
    return RuntimePolicy(
        digests={
            p: f.hex_list(v, f"runtime_policy.digests[{p!r}]") for p, v in f.obj(top["digests"], "digests").items()
        },
        excludes=excludes,
        keyrings={
            n: f.hex_list(v, f"runtime_policy.keyrings[{n!r}]")
            for n, v in f.obj(top.get("keyrings", {}), "runtime_policy.keyrings").items()
        },
        ignored_keyrings=f.str_list(ima.get("ignored_keyrings", []), "runtime_policy.ima.ignored_keyrings"),
        buffers={
            n: f.hex_list(v, f"runtime_policy['ima-buf'][{n!r}]")
            for n, v in f.obj(top.get("ima-buf", {}), "runtime_policy['ima-buf']").items()
        },
        signing_keys=_verification_keys(top.get("verification-keys", "")),
        log_hash_alg=f.hash_alg(ima.get("log_hash_alg", "sha1"), "runtime_policy.ima.log_hash_alg"),
    )


# --- measured-boot reference state -------------------------------------------------------------------------------
def _keylime_sigs(value: Any, where: str) -> tuple[EfiSignature, ...]:
    items = f.opt_list(value, where)
    if items is None:
        raise PolicyError(f"{where}: expected a list")
    result = []
    for index, item in enumerate(items):
        at = f"{where}[{index}]"
        entry = f.obj(item, at, required=("SignatureOwner", "SignatureData"))
        result.append(
            EfiSignature(
                owner=f.guid(entry["SignatureOwner"], f"{at}.SignatureOwner"),
                data=f.hex_bytes(entry["SignatureData"], f"{at}.SignatureData", prefix=True),
            )
        )
    return tuple(result)


def _kernel(value: Any, where: str, secure_boot: bool) -> KernelSpec:
    needed = (
        ("shim_authcode_sha256", "grub_authcode_sha256", "kernel_authcode_sha256", "initrd_plain_sha256")
        if secure_boot
        else ("shim_authcode_sha256", "grub_authcode_sha256", "vmlinuz_plain_sha256", "initrd_plain_sha256")
    )
    entry = f.obj(value, where, required=(*needed, "kernel_cmdline"))

    def digest(name: str) -> bytes | None:
        if name not in entry:
            return None
        return f.hex_bytes(entry[name], f"{where}.{name}", prefix=True, size=32)

    return KernelSpec(
        shim=digest("shim_authcode_sha256"),
        grub=digest("grub_authcode_sha256"),
        # Without Secure Boot grub does not ask shim to verify the kernel: no PCR 4 event for it (Keylime ignores it).
        kernel=digest("kernel_authcode_sha256") if secure_boot else None,
        initrd=digest("initrd_plain_sha256"),
        # With Secure Boot the kernel is checked by its Authenticode digest; Keylime accepts any PCR 9 vmlinuz then.
        vmlinuz=None if secure_boot else digest("vmlinuz_plain_sha256"),
        cmdline=f.regex(entry["kernel_cmdline"], f"{where}.kernel_cmdline"),
    )


def import_keylime_refstate(data: str | bytes | dict[str, Any]) -> BootPolicy:
    """A Keylime measured-boot reference state for the ``example`` policy (mb_refstate.json) as a BootPolicy.

    ``vendor_db`` (written by keylime-policy, unused by the example policy) is accepted and ignored.
    """
    top = f.obj(
        _decode(data, "refstate"),
        "refstate",
        allowed=_REFSTATE_TOP,
        required=("scrtm_and_bios", "pk", "kek", "db", "dbx", "mokdig", "mokxdig", "kernels"),
    )
    secure_boot = top.get("has_secureboot", True)
    if not isinstance(secure_boot, bool):
        raise PolicyError("refstate.has_secureboot: expected a boolean")

    def keys(name: str) -> tuple[EfiSignature, ...] | None:
        sigs = _keylime_sigs(top[name], f"refstate.{name}")
        return None if not secure_boot and not sigs else sigs

    firmware = []
    for index, item in enumerate(f.opt_list(top["scrtm_and_bios"], "refstate.scrtm_and_bios") or []):
        at = f"refstate.scrtm_and_bios[{index}]"
        entry = f.obj(item, at, required=("scrtm", "platform_firmware"))
        blobs = f.opt_list(entry["platform_firmware"], f"{at}.platform_firmware") or []
        firmware.append(
            FirmwareSpec(
                scrtm=f.digest_map(entry["scrtm"], f"{at}.scrtm", prefix=True),
                platform_firmware=tuple(
                    f.digest_map(b, f"{at}.platform_firmware[{i}]", prefix=True) for i, b in enumerate(blobs)
                ),
            )
        )
    kernels = f.opt_list(top["kernels"], "refstate.kernels")
    if kernels is None:
        raise PolicyError("refstate.kernels: expected a list")
    return BootPolicy(
        secure_boot=secure_boot,
        pk=keys("pk"),
        kek=keys("kek"),
        db=keys("db"),
        dbx=keys("dbx"),
        firmware=tuple(firmware),
        mok=tuple(f.digest_map(d, f"refstate.mokdig[{i}]", prefix=True) for i, d in enumerate(_list(top, "mokdig"))),
        mokx=tuple(f.digest_map(d, f"refstate.mokxdig[{i}]", prefix=True) for i, d in enumerate(_list(top, "mokxdig"))),
        kernels=tuple(_kernel(k, f"refstate.kernels[{i}]", secure_boot) for i, k in enumerate(kernels)),
    )


def _list(top: dict[str, Any], name: str) -> list[Any]:
    items = f.opt_list(top[name], f"refstate.{name}")
    if items is None:
        raise PolicyError(f"refstate.{name}: expected a list")
    return items
