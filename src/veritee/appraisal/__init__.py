"""Appraisal of platform evidence against compiled policies; findings and EAR attestation results.

``appraise(evidence, policy, previous=...)`` runs every check (quote, boot log and boot policy, IMA log and runtime
policy) and returns an :class:`Appraisal` listing every :class:`Finding`; :mod:`veritee.appraisal.policy` loads,
imports (Keylime), compiles and generates policies; :mod:`veritee.appraisal.ear` turns an appraisal into a signed EAR.
"""

from __future__ import annotations

from veritee.appraisal.engine import appraise
from veritee.appraisal.findings import CATALOGUE, Check, Claim, Component, Finding, FindingSpec, Severity
from veritee.appraisal.result import Appraisal, Evidence, NodeState

__all__ = [
    "CATALOGUE",
    "Appraisal",
    "Check",
    "Claim",
    "Component",
    "Evidence",
    "Finding",
    "FindingSpec",
    "NodeState",
    "Severity",
    "appraise",
]
