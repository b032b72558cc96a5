"""Findings: what an appraisal found, each with a stable id, and the catalogue that defines every id.

A :class:`Finding` is one problem (or one note) found in the evidence. Its ``id`` is stable and documented in
``docs/findings.md``; the catalogue below is the single source of truth for the ids, their component, their default
severity and their effect on the AR4SI trustworthiness vector of an EAR attestation result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from types import MappingProxyType
from typing import Any

__all__ = [
    "CATALOGUE",
    "Check",
    "Claim",
    "Component",
    "Finding",
    "FindingSpec",
    "Severity",
    "finding",
]


class Severity(IntEnum):
    """How bad a finding is. ``ERROR`` and ``CRITICAL`` fail the appraisal; ``WARNING`` and ``INFO`` do not."""

    INFO = 0
    WARNING = 1
    ERROR = 2
    CRITICAL = 3

    @property
    def fails(self) -> bool:
        return self >= Severity.ERROR


class Component(Enum):
    """The part of the evidence a finding is about."""

    EVIDENCE = "evidence"
    QUOTE = "quote"
    BOOT = "boot"
    RUNTIME = "runtime"
    POLICY = "policy"


class Check(Enum):
    """An appraisal step that ran (its absence from an appraisal means that part was not appraised)."""

    QUOTE = "quote"
    BOOT_LOG = "boot-log"
    BOOT_POLICY = "boot-policy"
    IMA_LOG = "ima-log"
    RUNTIME_POLICY = "runtime-policy"


class Claim(Enum):
    """The AR4SI trustworthiness claims (draft-ietf-rats-ar4si), named as in their JSON serialisation."""

    INSTANCE_IDENTITY = "instance-identity"
    CONFIGURATION = "configuration"
    EXECUTABLES = "executables"
    FILE_SYSTEM = "file-system"
    HARDWARE = "hardware"
    RUNTIME_OPAQUE = "runtime-opaque"
    STORAGE_OPAQUE = "storage-opaque"
    SOURCED_DATA = "sourced-data"

    @property
    def cbor_key(self) -> int:
        return _CLAIM_KEYS[self]


_CLAIM_KEYS = {claim: index for index, claim in enumerate(Claim)}


@dataclass(frozen=True, slots=True)
class FindingSpec:
    """Catalogue entry: what an id means and what it does to the trustworthiness vector (claim -> AR4SI value)."""

    id: str
    component: Component
    severity: Severity
    description: str
    claims: Mapping[Claim, int]


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing an appraisal found. ``message`` is for people (it names the file, event or PCR); ``detail`` is data."""

    id: str
    component: Component
    severity: Severity
    message: str
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def fails(self) -> bool:
        return self.severity.fails

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "component": self.component.value,
            "severity": self.severity.name.lower(),
            "message": self.message,
            "detail": dict(self.detail),
        }


# AR4SI code points (draft-ietf-rats-ar4si; the same values as veraison/ear).
CRYPTO_FAILED = 99
UNEXPECTED_EVIDENCE = 1
_I, _C, _E, _F, _H = (
    Claim.INSTANCE_IDENTITY,
    Claim.CONFIGURATION,
    Claim.EXECUTABLES,
    Claim.FILE_SYSTEM,
    Claim.HARDWARE,
)
# (id, component, severity, claims, description)
_ENTRIES: tuple[tuple[str, Component, Severity, dict[Claim, int], str], ...] = (
    # --- evidence --------------------------------------------------------------------------------------------------
    (
        "evidence.malformed",
        Component.EVIDENCE,
        Severity.CRITICAL,
        {_I: UNEXPECTED_EVIDENCE},
        "A part of the evidence (named in detail.part) cannot be parsed; the checks that need it did not run.",
    ),
    (
        "evidence.missing",
        Component.EVIDENCE,
        Severity.ERROR,
        {_I: UNEXPECTED_EVIDENCE},
        "The policy needs a part of the evidence (named in detail.part) that was not supplied.",
    ),
    # --- quote -----------------------------------------------------------------------------------------------------
    (
        "quote.signature_invalid",
        Component.QUOTE,
        Severity.CRITICAL,
        {_I: CRYPTO_FAILED},
        "The quote signature does not verify with the attestation key.",
    ),
    (
        "quote.ak_invalid",
        Component.QUOTE,
        Severity.CRITICAL,
        {_I: 96},
        "The attestation key is not a TPM-restricted signing key: the TPM would sign anything with it.",
    ),
    (
        "quote.attest_invalid",
        Component.QUOTE,
        Severity.CRITICAL,
        {_I: 96},
        "The signed structure is not a TPM-generated quote (wrong magic or attestation type).",
    ),
    (
        "quote.nonce_mismatch",
        Component.QUOTE,
        Severity.CRITICAL,
        {_I: 96},
        "The quote's extraData is not the nonce the verifier sent: the quote is not fresh.",
    ),
    (
        "quote.pcr_digest_mismatch",
        Component.QUOTE,
        Severity.CRITICAL,
        {_I: CRYPTO_FAILED},
        "The PCR values supplied with the quote do not hash to the digest the TPM signed.",
    ),
    (
        "quote.replayed",
        Component.QUOTE,
        Severity.CRITICAL,
        {_I: 96},
        "The quote's clock is not after the previous quote's clock: an old quote was replayed.",
    ),
    (
        "quote.rolled_back",
        Component.QUOTE,
        Severity.CRITICAL,
        {_I: 96},
        "The TPM's reset or restart count went backwards since the previous quote.",
    ),
    (
        "quote.clock_unsafe",
        Component.QUOTE,
        Severity.WARNING,
        {_I: 32},
        "The TPM reports its clock as not safe (it may have been rolled back by a power loss).",
    ),
    (
        "quote.reset",
        Component.QUOTE,
        Severity.INFO,
        {},
        "The TPM was reset (the node rebooted) since the previous quote; incremental IMA state starts over.",
    ),
    (
        "quote.pcr_missing",
        Component.QUOTE,
        Severity.ERROR,
        {_I: UNEXPECTED_EVIDENCE},
        "A PCR the policy needs is not in the quote.",
    ),
    # --- boot ------------------------------------------------------------------------------------------------------
    (
        "boot.pcr_mismatch",
        Component.BOOT,
        Severity.CRITICAL,
        {_E: CRYPTO_FAILED, _H: CRYPTO_FAILED},
        "Replaying the boot event log does not give the quoted PCR value: the log is not the one that was measured.",
    ),
    (
        "boot.pcr_value_mismatch",
        Component.BOOT,
        Severity.ERROR,
        {_C: 96},
        "A quoted PCR differs from the fixed value the boot policy expects.",
    ),
    (
        "boot.log_note",
        Component.BOOT,
        Severity.INFO,
        {},
        "How the event log was replayed (StartupLocality, legacy format, ...).",
    ),
    (
        "boot.secureboot_disabled",
        Component.BOOT,
        Severity.ERROR,
        {_C: 96},
        "The boot policy requires UEFI Secure Boot but the log shows it disabled.",
    ),
    (
        "boot.secureboot_enabled",
        Component.BOOT,
        Severity.ERROR,
        {_C: 32},
        "The boot policy describes a machine without Secure Boot but the log shows it enabled.",
    ),
    ("boot.pk_mismatch", Component.BOOT, Severity.ERROR, {_C: 96}, "The PK holds a key the policy does not allow."),
    ("boot.kek_mismatch", Component.BOOT, Severity.ERROR, {_C: 96}, "The KEK holds a key the policy does not allow."),
    ("boot.db_mismatch", Component.BOOT, Severity.ERROR, {_C: 96}, "db holds a key or hash the policy does not allow."),
    (
        "boot.dbx_mismatch",
        Component.BOOT,
        Severity.ERROR,
        {_C: 32},
        "dbx lacks a revocation entry the policy requires.",
    ),
    (
        "boot.scrtm_mismatch",
        Component.BOOT,
        Severity.ERROR,
        {_H: 97},
        "The S-CRTM version digest (PCR 0) is not an allowed one.",
    ),
    (
        "boot.firmware_mismatch",
        Component.BOOT,
        Severity.ERROR,
        {_H: 97},
        "The platform firmware blob digests (PCR 0) are not an allowed sequence.",
    ),
    (
        "boot.shim_mismatch",
        Component.BOOT,
        Severity.ERROR,
        {_E: 33},
        "The first boot application (shim, PCR 4) has a digest no allowed kernel entry names.",
    ),
    (
        "boot.grub_mismatch",
        Component.BOOT,
        Severity.ERROR,
        {_E: 33},
        "The boot loader (grub, PCR 4) has a digest no allowed kernel entry names.",
    ),
    (
        "boot.kernel_mismatch",
        Component.BOOT,
        Severity.ERROR,
        {_E: 33},
        "The kernel's Authenticode digest (PCR 4) is not an allowed one.",
    ),
    (
        "boot.vmlinuz_mismatch",
        Component.BOOT,
        Severity.ERROR,
        {_E: 33},
        "The kernel file digest measured by grub (PCR 9) is not an allowed one.",
    ),
    (
        "boot.initrd_mismatch",
        Component.BOOT,
        Severity.ERROR,
        {_E: 33},
        "The initrd digest (PCR 9) is not an allowed one.",
    ),
    (
        "boot.kernel_cmdline_mismatch",
        Component.BOOT,
        Severity.ERROR,
        {_C: 32},
        "The kernel command line (PCR 8) does not match the allowed one.",
    ),
    (
        "boot.boot_apps_mismatch",
        Component.BOOT,
        Severity.ERROR,
        {_E: 33},
        "The sequence of EFI boot applications (PCR 4) is not shim, grub, kernel as the policy describes.",
    ),
    (
        "boot.unexpected_file",
        Component.BOOT,
        Severity.ERROR,
        {_E: 33},
        "grub measured a file (PCR 9) that is neither its configuration, a boot entry, the kernel nor the initrd.",
    ),
    (
        "boot.event_data_mismatch",
        Component.BOOT,
        Severity.ERROR,
        {_C: CRYPTO_FAILED},
        "An event's data does not hash to its logged digest: what the log says it measured is not what it measured.",
    ),
    ("boot.mok_mismatch", Component.BOOT, Severity.ERROR, {_C: 32}, "The MokList digest (PCR 14) is not allowed."),
    ("boot.mokx_mismatch", Component.BOOT, Severity.ERROR, {_C: 32}, "The MokListX digest (PCR 14) is not allowed."),
    # --- runtime (IMA) ---------------------------------------------------------------------------------------------
    (
        "ima.pcr_mismatch",
        Component.RUNTIME,
        Severity.CRITICAL,
        {_E: CRYPTO_FAILED, _F: CRYPTO_FAILED},
        "Replaying the IMA log does not give the quoted PCR 10: the log is not the one that was measured.",
    ),
    (
        "ima.template_hash_mismatch",
        Component.RUNTIME,
        Severity.CRITICAL,
        {_E: CRYPTO_FAILED, _F: CRYPTO_FAILED},
        "An IMA entry's template hash is not the hash of its template data: the entry was altered.",
    ),
    (
        "ima.not_in_policy",
        Component.RUNTIME,
        Severity.ERROR,
        {_E: 33, _F: 32},
        "A measured file is neither in the runtime policy nor excluded.",
    ),
    (
        "ima.digest_mismatch",
        Component.RUNTIME,
        Severity.ERROR,
        {_E: 96, _F: 96},
        "A measured file's digest is not one the runtime policy allows for its path.",
    ),
    (
        "ima.signature_invalid",
        Component.RUNTIME,
        Severity.ERROR,
        {_E: 96, _F: 96},
        "An ima-sig signature does not verify (or its key is unknown) and the policy does not allow the digest.",
    ),
    (
        "ima.boot_aggregate_mismatch",
        Component.RUNTIME,
        Severity.ERROR,
        {_E: 33},
        "The boot_aggregate entry matches neither the policy nor the quoted boot PCRs.",
    ),
    (
        "ima.buffer_not_allowed",
        Component.RUNTIME,
        Severity.ERROR,
        {_E: 33},
        "An ima-buf measurement (a key or buffer) is not allowed by the runtime policy.",
    ),
    (
        "ima.wrong_pcr",
        Component.RUNTIME,
        Severity.ERROR,
        {_E: 33},
        "An IMA entry names a PCR other than the IMA PCR.",
    ),
    (
        "ima.tomtou",
        Component.RUNTIME,
        Severity.WARNING,
        {_F: 32},
        "IMA recorded a measurement violation (time-of-measure/time-of-use or open-writers): template hash zero.",
    ),
    (
        "ima.log_hash_alg_mismatch",
        Component.RUNTIME,
        Severity.ERROR,
        {_E: UNEXPECTED_EVIDENCE},
        "The IMA log's template hash algorithm is not the one the runtime policy declares.",
    ),
)

CATALOGUE: Mapping[str, FindingSpec] = MappingProxyType(
    {
        entry[0]: FindingSpec(
            id=entry[0],
            component=entry[1],
            severity=entry[2],
            description=entry[4],
            claims=MappingProxyType(dict(entry[3])),
        )
        for entry in _ENTRIES
    }
)


def finding(
    finding_id: str,
    message: str,
    *,
    severity: Severity | None = None,
    **detail: Any,
) -> Finding:
    """A finding of a catalogued id, with the catalogue's component and (unless overridden) severity."""
    spec = CATALOGUE[finding_id]
    return Finding(
        id=finding_id,
        component=spec.component,
        severity=spec.severity if severity is None else severity,
        message=message,
        detail=detail,
    )
