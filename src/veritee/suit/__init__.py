"""SUIT manifests (draft-ietf-suit-manifest, trust-domains, report): envelope model, sans-I/O processor, reports.

* :func:`decode_envelope` -> :class:`Envelope`; :meth:`Envelope.verify` -> :class:`VerifiedManifest`.
* :func:`process` runs a :class:`Procedure` with a :class:`ComponentStore` and a :class:`Fetcher` the caller supplies
  and returns a :class:`ProcessResult` holding a :class:`Report`; nothing is committed unless the procedure succeeds.
  Strict by default: a compatibility flag of :class:`ProcessorConfig` that was needed shows in ``ProcessResult.quirks``
  (:class:`Quirk`).
* :func:`build_envelope` creates signed envelopes for a Trusted Component; :func:`encode_report` /
  :func:`decode_report` handle SUIT_Reports.
"""

from veritee.suit.builder import DependencySpec, EncryptionSpec, TrustedComponentSpec, build_envelope, encrypt_payload
from veritee.suit.envelope import Authentication, Envelope, VerifiedManifest, decode_envelope
from veritee.suit.labels import (
    Command,
    CommonKey,
    DigestAlgorithm,
    EnvelopeKey,
    ManifestKey,
    Parameter,
    ReportingPolicy,
    ReportReason,
)
from veritee.suit.manifest import Common, Dependency, Manifest, TextEntry, decode_manifest
from veritee.suit.model import CommandEntry, CommandSequence, ComponentId, SuitDigest
from veritee.suit.processor import Identity, Procedure, ProcessorConfig, ProcessResult, process
from veritee.suit.report import Record, Report, ReportFailure, SystemProperties, decode_report, encode_report
from veritee.suit.results import ConditionFailed, Quirk, ResultCode, SuitAbort
from veritee.suit.store import (
    ComponentStore,
    Fetcher,
    InMemoryComponentStore,
    InstalledManifest,
    Invocation,
    MappingFetcher,
    StagingArea,
)

__all__ = [
    "Authentication",
    "Command",
    "CommandEntry",
    "CommandSequence",
    "Common",
    "CommonKey",
    "ComponentId",
    "ComponentStore",
    "ConditionFailed",
    "Dependency",
    "DependencySpec",
    "DigestAlgorithm",
    "EncryptionSpec",
    "Envelope",
    "EnvelopeKey",
    "Fetcher",
    "Identity",
    "InMemoryComponentStore",
    "InstalledManifest",
    "Invocation",
    "Manifest",
    "ManifestKey",
    "MappingFetcher",
    "Parameter",
    "Procedure",
    "ProcessResult",
    "ProcessorConfig",
    "Quirk",
    "Record",
    "Report",
    "ReportFailure",
    "ReportReason",
    "ReportingPolicy",
    "ResultCode",
    "StagingArea",
    "SuitAbort",
    "SuitDigest",
    "SystemProperties",
    "TextEntry",
    "TrustedComponentSpec",
    "VerifiedManifest",
    "build_envelope",
    "decode_envelope",
    "decode_manifest",
    "decode_report",
    "encode_report",
    "encrypt_payload",
    "process",
]
