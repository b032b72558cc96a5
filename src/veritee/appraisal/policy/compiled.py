"""The compiled policy: built once from the data model, read by every appraisal.

:func:`compile_policy` turns :class:`BootPolicy` and :class:`RuntimePolicy` into frozensets, dicts keyed by path, one
combined regular expression for the exclude list and loaded public keys, so an appraisal only does lookups.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_der_public_key

from veritee.appraisal.ima_replay import KnownLine, build_known_lines
from veritee.appraisal.policy.document import export_policy
from veritee.appraisal.policy.model import BootPolicy, Digests, EfiSignature, KernelSpec, RuntimePolicy, SigningKey
from veritee.errors import PolicyError
from veritee.tpm.alg import HashAlg

__all__ = [
    "CompiledBootPolicy",
    "CompiledKernel",
    "CompiledPolicy",
    "CompiledRuntimePolicy",
    "ImaPublicKey",
    "SignatureKey",
    "compile_policy",
]

ImaPublicKey = RSAPublicKey | EllipticCurvePublicKey

DigestPairs = frozenset[tuple[HashAlg, bytes]]
#: An EFI signature as an event log summary has it: (owner GUID, data).
SignatureKey = tuple[uuid.UUID | None, bytes]


def _pairs(digests: Digests) -> DigestPairs:
    return frozenset(digests.items())


@dataclass(frozen=True, slots=True)
class CompiledKernel:
    spec: KernelSpec
    cmdline: re.Pattern[str] | None


def _raw_signatures(keys: frozenset[SignatureKey] | None) -> frozenset[bytes] | None:
    """The EFI_SIGNATURE_DATA bytes (owner GUID in UEFI byte order, then the data) of every key that has an owner;
    an entry of a signature list always has one, so a key without an owner can match none."""
    if keys is None:
        return None
    return frozenset(owner.bytes_le + data for owner, data in keys if owner is not None)


def _signature_run(
    signatures: tuple[EfiSignature, ...] | None, keys: frozenset[SignatureKey] | None
) -> tuple[bytes, int] | None:
    """``signatures`` (whose keys are ``keys``) as one run of EFI_SIGNATURE_DATA, with the size of each, when they
    all have an owner and one size."""
    if not signatures or keys is None or _signature_keys(signatures) != keys:
        return None
    raw = [uuid.UUID(sig.owner).bytes_le + sig.data for sig in signatures if sig.owner]
    if len(raw) != len(signatures) or len({len(entry) for entry in raw}) != 1:
        return None
    return b"".join(raw), len(raw[0])


@dataclass(frozen=True, slots=True)
class CompiledBootPolicy:
    """The boot policy, compiled. ``pk_raw`` .. ``dbx_raw`` are derived from ``pk`` .. ``dbx``: the same entries as
    the bytes a signature list stores them as, so an appraisal compares the measured lists without decoding them."""

    source: BootPolicy
    pk: frozenset[SignatureKey] | None
    kek: frozenset[SignatureKey] | None
    db: frozenset[SignatureKey] | None
    dbx: frozenset[SignatureKey] | None
    firmware: tuple[tuple[DigestPairs, tuple[DigestPairs, ...]], ...] | None
    mok: DigestPairs | None
    mokx: DigestPairs | None
    kernels: tuple[CompiledKernel, ...] | None
    pk_raw: frozenset[bytes] | None = field(init=False, repr=False, compare=False)
    kek_raw: frozenset[bytes] | None = field(init=False, repr=False, compare=False)
    db_raw: frozenset[bytes] | None = field(init=False, repr=False, compare=False)
    dbx_raw: frozenset[bytes] | None = field(init=False, repr=False, compare=False)
    #: The required dbx entries, as stored, in the policy's order (that of the log it was made from), when they all
    #: have one size: found as one run in a measured list, they are all there (else they are looked up one by one).
    dbx_run: tuple[bytes, int] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pk_raw", _raw_signatures(self.pk))
        object.__setattr__(self, "kek_raw", _raw_signatures(self.kek))
        object.__setattr__(self, "db_raw", _raw_signatures(self.db))
        object.__setattr__(self, "dbx_raw", _raw_signatures(self.dbx))
        object.__setattr__(self, "dbx_run", _signature_run(self.source.dbx, self.dbx))


@dataclass(frozen=True, slots=True)
class CompiledRuntimePolicy:
    source: RuntimePolicy
    digests: Mapping[str, frozenset[bytes]]
    exclude: re.Pattern[str] | None
    keyrings: Mapping[str, frozenset[bytes]]
    ignored_keyrings: frozenset[str]
    ignore_all_keyrings: bool
    buffers: Mapping[str, frozenset[bytes]]
    keys: Mapping[int, ImaPublicKey]
    log_hash_alg: HashAlg
    known_lines: Mapping[str, KnownLine]

    def is_excluded(self, path: str) -> bool:
        return self.exclude is not None and self.exclude.match(path) is not None


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    """Boot and runtime policy, compiled once and shared by every appraisal (immutable, thread-safe)."""

    boot: CompiledBootPolicy | None
    runtime: CompiledRuntimePolicy | None
    name: str
    policy_id: str


def _signature_keys(signatures: tuple[EfiSignature, ...] | None) -> frozenset[SignatureKey] | None:
    if signatures is None:
        return None
    return frozenset((uuid.UUID(sig.owner) if sig.owner else None, sig.data) for sig in signatures)


def _compile_boot(policy: BootPolicy) -> CompiledBootPolicy:
    kernels = None
    if policy.kernels is not None:
        compiled: list[CompiledKernel] = []
        for index, kernel in enumerate(policy.kernels):
            try:
                pattern = re.compile(kernel.cmdline) if kernel.cmdline is not None else None
            except re.error as exc:
                raise PolicyError(f"boot.kernels[{index}].cmdline: invalid regular expression: {exc}") from None
            compiled.append(CompiledKernel(kernel, pattern))
        kernels = tuple(compiled)
    return CompiledBootPolicy(
        source=policy,
        pk=_signature_keys(policy.pk),
        kek=_signature_keys(policy.kek),
        db=_signature_keys(policy.db),
        dbx=_signature_keys(policy.dbx),
        firmware=(
            tuple((_pairs(f.scrtm), tuple(_pairs(b) for b in f.platform_firmware)) for f in policy.firmware)
            if policy.firmware is not None
            else None
        ),
        mok=frozenset().union(*map(_pairs, policy.mok)) if policy.mok is not None else None,
        mokx=frozenset().union(*map(_pairs, policy.mokx)) if policy.mokx is not None else None,
        kernels=kernels,
    )


def _load_key(key: SigningKey, index: int) -> ImaPublicKey:
    try:
        public = load_der_public_key(key.spki_der)
    except ValueError as exc:
        raise PolicyError(f"runtime.signing_keys[{index}]: not a DER public key: {exc}") from None
    if not isinstance(public, RSAPublicKey | EllipticCurvePublicKey):
        raise PolicyError(
            f"runtime.signing_keys[{index}]: IMA signatures use RSA or EC keys, not {type(public).__name__}"
        )
    return public


def _compile_runtime(policy: RuntimePolicy, precompute: bool) -> CompiledRuntimePolicy:
    exclude = None
    if policy.excludes:
        combined = "(" + ")|(".join(policy.excludes) + ")"
        try:
            exclude = re.compile(combined)
        except re.error as exc:
            raise PolicyError(f"runtime.excludes: invalid regular expression: {exc}") from None
    return CompiledRuntimePolicy(
        source=policy,
        digests=MappingProxyType({path: frozenset(values) for path, values in policy.digests.items()}),
        exclude=exclude,
        keyrings=MappingProxyType({name: frozenset(values) for name, values in policy.keyrings.items()}),
        ignored_keyrings=frozenset(policy.ignored_keyrings),
        ignore_all_keyrings="*" in policy.ignored_keyrings,
        buffers=MappingProxyType({name: frozenset(values) for name, values in policy.buffers.items()}),
        keys=MappingProxyType({key.keyid: _load_key(key, i) for i, key in enumerate(policy.signing_keys)}),
        log_hash_alg=policy.log_hash_alg,
        known_lines=build_known_lines(policy.digests, policy.log_hash_alg) if precompute else {},
    )


def compile_policy(
    boot: BootPolicy | None,
    runtime: RuntimePolicy | None,
    *,
    name: str = "policy",
    precompute: bool = True,
) -> CompiledPolicy:
    """Compile once; reuse the result for every appraisal. ``policy_id`` names the exact content (a digest).

    ``precompute`` builds the table of IMA lines the runtime policy approves (see :mod:`veritee.appraisal.ima_replay`):
    a few hundred bytes per allowed digest, and an appraisal that skips parsing and hashing for those lines.
    """
    document = export_policy(boot, runtime, name=name)
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    policy_id = f"veritee:policy/{name}#sha256:{hashlib.sha256(canonical).hexdigest()[:32]}"
    return CompiledPolicy(
        boot=_compile_boot(boot) if boot is not None else None,
        runtime=_compile_runtime(runtime, precompute) if runtime is not None else None,
        name=name,
        policy_id=policy_id,
    )
