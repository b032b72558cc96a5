"""Our side of each benchmark, written against veritee's documented entry points.

* ``full``: ``veritee.appraisal.appraise(evidence, policy)`` — the evidence built from the bundle's files inside the
  timed call (Keylime parses its inputs inside its call too); the Keylime policies imported and compiled once, as a
  verifier does when a policy is loaded;
* ``ima``: ``veritee.ima.parse(text)`` + ``veritee.ima.replay(entries)``;
* ``ima_policy``: the appraisal's IMA stage (``veritee.appraisal.runtime.appraise_ima``): replay against the quoted
  PCR 10 and every entry against the runtime policy;
* ``eventlog``: ``veritee.eventlog.parse(bytes)`` + ``veritee.eventlog.replay(log)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.bundle import EXPECTED, Bundle, Variant
from bench.registry import Iterations, OurRun, Target, TargetKind, register
from bench.timing import measure

__all__ = ["eventlog_replay", "full_appraisal", "ima_policy", "ima_replay"]

IMA_PER_ENTRY = Target(TargetKind.PER_UNIT_AT_MOST, 1e-6, "≤ 1 µs per entry", unit="entries", per="entry")


def _quoted_banks(files: Mapping[str, bytes]) -> Any:
    from veritee.tpm.pcrs import parse_tpm2tools_pcr_blob

    return parse_tpm2tools_pcr_blob(files["quote.pcrs"])[1]


def _compiled_policy(files: Mapping[str, bytes]) -> Any:
    from veritee.appraisal.policy import compile_policy, import_keylime_refstate, import_keylime_runtime_policy

    return compile_policy(
        import_keylime_refstate(files["mb_refstate.json"]),
        import_keylime_runtime_policy(files["runtime_policy.json"]),
        name="bench-keylime",
    )


@register(
    "full",
    "full appraisal: quote, event log + boot policy, IMA list + runtime policy",
    peer="full",
    target=Target(TargetKind.RATIO_AT_LEAST, 30.0, "≥ 30× faster than Keylime"),
    full=Iterations(ours=300, peer=50),
    quick=Iterations(ours=3, peer=2),
)
def full_appraisal(bundle: Bundle, iterations: int) -> OurRun:
    from veritee.appraisal import appraise
    from veritee.appraisal.bundle import evidence_from_bundle

    expected = EXPECTED["full"]
    verdicts = {}
    for variant in expected:
        files = bundle.variant(variant)
        verdicts[variant] = appraise(evidence_from_bundle(files), _compiled_policy(files)).passed
    good = bundle.variant(Variant.GOOD)
    policy = _compiled_policy(good)
    stats = measure(lambda: appraise(evidence_from_bundle(good), policy), iterations)
    return OurRun(stats, verdicts, expected)


@register(
    "ima",
    "IMA list: parse + PCR 10 replay",
    peer="ima",
    target=IMA_PER_ENTRY,
    full=Iterations(ours=300, peer=50),
    quick=Iterations(ours=3, peer=2),
)
def ima_replay(bundle: Bundle, iterations: int) -> OurRun:
    from veritee import ima
    from veritee.errors import VeriteeError
    from veritee.tpm.alg import HashAlg

    def passes(files: Mapping[str, bytes]) -> bool:
        quoted = _quoted_banks(files)[HashAlg.SHA256][ima.IMA_PCR]
        try:
            replayed: bytes = ima.replay(ima.parse(files["ascii_runtime_measurements"]))[HashAlg.SHA256]
            return replayed == bytes(quoted)
        except VeriteeError:  # an edited line: its template hash no longer matches
            return False

    expected = EXPECTED["ima"]
    verdicts = {variant: passes(bundle.variant(variant)) for variant in expected}
    text = bundle.files["ascii_runtime_measurements"].decode()
    stats = measure(lambda: ima.replay(ima.parse(text)), iterations)
    return OurRun(stats, verdicts, expected, {"entries": len(ima.parse(text))})


@register(
    "ima_policy",
    "IMA list against the runtime policy and the quoted PCR 10",
    peer="ima_policy",
    target=IMA_PER_ENTRY,
    full=Iterations(ours=300, peer=50),
    quick=Iterations(ours=3, peer=2),
)
def ima_policy(bundle: Bundle, iterations: int) -> OurRun:
    from veritee.appraisal import Finding
    from veritee.appraisal.runtime import appraise_ima
    from veritee.ima import parse

    def appraise(text: str, banks: Any, runtime: Any) -> list[Finding]:
        findings: list[Finding] = []
        appraise_ima(text, None, banks, runtime, findings)
        return findings

    expected = EXPECTED["ima_policy"]
    verdicts = {}
    for variant in expected:
        files = bundle.variant(variant)
        findings = appraise(files["ascii_runtime_measurements"].decode(), _quoted_banks(files), _runtime(files))
        verdicts[variant] = not any(item.fails for item in findings)
    good = bundle.variant(Variant.GOOD)
    text, banks, runtime = good["ascii_runtime_measurements"].decode(), _quoted_banks(good), _runtime(good)
    stats = measure(lambda: appraise(text, banks, runtime), iterations)
    return OurRun(stats, verdicts, expected, {"entries": len(parse(text))})


def _runtime(files: Mapping[str, bytes]) -> Any:
    return _compiled_policy(files).runtime


@register(
    "eventlog",
    "firmware event log: parse + replay",
    peer="eventlog",
    target=Target(TargetKind.OURS_AT_MOST, 0.5e-3, "≤ 0.5 ms"),
    full=Iterations(ours=1000, peer=50),
    quick=Iterations(ours=3, peer=2),
)
def eventlog_replay(bundle: Bundle, iterations: int) -> OurRun:
    from veritee import eventlog
    from veritee.errors import VeriteeError

    def passes(files: Mapping[str, bytes]) -> bool:
        try:
            eventlog.verify_pcrs(eventlog.parse(files["binary_bios_measurements"]), _quoted_banks(files))
        except VeriteeError:
            return False
        return True

    expected = EXPECTED["eventlog"]
    verdicts = {variant: passes(bundle.variant(variant)) for variant in expected}
    data = bundle.files["binary_bios_measurements"]
    stats = measure(lambda: eventlog.replay(eventlog.parse(data)), iterations)
    return OurRun(stats, verdicts, expected, {"events": len(eventlog.parse(data).events)})
