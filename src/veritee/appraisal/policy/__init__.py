"""Appraisal policies: boot and runtime policies, our JSON format, Keylime import, compilation, generation."""

from __future__ import annotations

from veritee.appraisal.policy.compiled import (
    CompiledBootPolicy,
    CompiledPolicy,
    CompiledRuntimePolicy,
    compile_policy,
)
from veritee.appraisal.policy.document import dump_policy, export_policy, load_policy, parse_policy
from veritee.appraisal.policy.generate import (
    boot_policy_from_summary,
    create_policy_from_evidence,
    runtime_policy_from_ima,
)
from veritee.appraisal.policy.keylime import ima_keyid, import_keylime_refstate, import_keylime_runtime_policy
from veritee.appraisal.policy.model import (
    BootPolicy,
    EfiSignature,
    FirmwareSpec,
    KernelSpec,
    PolicySet,
    RuntimePolicy,
    SigningKey,
)

__all__ = [
    "BootPolicy",
    "CompiledBootPolicy",
    "CompiledPolicy",
    "CompiledRuntimePolicy",
    "EfiSignature",
    "FirmwareSpec",
    "KernelSpec",
    "PolicySet",
    "RuntimePolicy",
    "SigningKey",
    "boot_policy_from_summary",
    "compile_policy",
    "create_policy_from_evidence",
    "dump_policy",
    "export_policy",
    "ima_keyid",
    "import_keylime_refstate",
    "import_keylime_runtime_policy",
    "load_policy",
    "parse_policy",
    "runtime_policy_from_ima",
]
