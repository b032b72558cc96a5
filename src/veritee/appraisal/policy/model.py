"""The policy data model: what an operator writes, loaded from our JSON format or imported from Keylime's.

``BootPolicy`` and ``RuntimePolicy`` are plain immutable data; :mod:`veritee.appraisal.policy.compiled` turns them,
once, into the lookup structures an appraisal reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from veritee.tpm.alg import HashAlg

__all__ = [
    "BootPolicy",
    "Digests",
    "EfiSignature",
    "FirmwareSpec",
    "KernelSpec",
    "PolicySet",
    "RuntimePolicy",
    "SigningKey",
]

Digests = Mapping[HashAlg, bytes]


@dataclass(frozen=True, slots=True)
class EfiSignature:
    """One EFI_SIGNATURE_DATA: the owner GUID (lower-case text) and the data (a DER certificate or a hash)."""

    owner: str
    data: bytes


@dataclass(frozen=True, slots=True)
class FirmwareSpec:
    """An allowed S-CRTM version digest and the exact sequence of platform firmware blob digests (PCR 0)."""

    scrtm: Digests
    platform_firmware: tuple[Digests, ...]


@dataclass(frozen=True, slots=True)
class KernelSpec:
    """An allowed boot chain. Digests are SHA-256; ``None`` means that item is not checked.

    ``shim``/``grub``/``kernel`` are the Authenticode digests of the EFI boot applications (PCR 4), ``initrd`` and
    ``vmlinuz`` the file digests grub measures (PCR 9), ``cmdline`` a regular expression the kernel command line
    (PCR 8, without grub's "kernel_cmdline: " prefix) must match in full.
    """

    shim: bytes | None = None
    grub: bytes | None = None
    kernel: bytes | None = None
    initrd: bytes | None = None
    vmlinuz: bytes | None = None
    cmdline: str | None = None


@dataclass(frozen=True, slots=True)
class BootPolicy:
    """What a good boot looks like. ``None`` for a field means "not checked".

    ``pk``/``kek``/``db`` list the allowed entries (every logged entry must be one of them); ``dbx`` lists entries
    the logged dbx must contain (revocations cannot be dropped). ``expected_pcrs`` are fixed PCR values to compare
    with the quote (for PCRs that do not vary between boots).
    """

    secure_boot: bool | None = True
    pk: tuple[EfiSignature, ...] | None = None
    kek: tuple[EfiSignature, ...] | None = None
    db: tuple[EfiSignature, ...] | None = None
    dbx: tuple[EfiSignature, ...] | None = None
    firmware: tuple[FirmwareSpec, ...] | None = None
    mok: tuple[Digests, ...] | None = None
    mokx: tuple[Digests, ...] | None = None
    kernels: tuple[KernelSpec, ...] | None = None
    expected_pcrs: Mapping[HashAlg, Mapping[int, bytes]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A public key trusted for ima-sig signatures: its IMA key id (last 4 bytes of the key's SHA-1) and DER SPKI."""

    keyring: str
    keyid: int
    spki_der: bytes


@dataclass(frozen=True, slots=True)
class RuntimePolicy:
    """What may run. Semantics follow Keylime's runtime policy so its users can switch.

    ``digests`` maps a path to its allowed file digests (any algorithm: a digest matches when its bytes are equal);
    ``excludes`` are regular expressions matched at the start of a path (Keylime joins them as ``(a)|(b)``);
    ``keyrings`` are the allowed digests of keys measured onto a kernel keyring (ima-buf), ``ignored_keyrings``
    keyrings not checked ("*" for all); ``buffers`` the allowed digests of other ima-buf measurements by name;
    ``signing_keys`` verify ima-sig signatures; ``log_hash_alg`` is the IMA template hash algorithm.
    """

    digests: Mapping[str, tuple[bytes, ...]] = field(default_factory=dict)
    excludes: tuple[str, ...] = ()
    keyrings: Mapping[str, tuple[bytes, ...]] = field(default_factory=dict)
    ignored_keyrings: tuple[str, ...] = ()
    buffers: Mapping[str, tuple[bytes, ...]] = field(default_factory=dict)
    signing_keys: tuple[SigningKey, ...] = ()
    log_hash_alg: HashAlg = HashAlg.SHA1


@dataclass(frozen=True, slots=True)
class PolicySet:
    """A named pair of boot and runtime policies (either may be absent), as stored in one policy document."""

    name: str
    boot: BootPolicy | None
    runtime: RuntimePolicy | None
