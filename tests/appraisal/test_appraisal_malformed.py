"""Malformed evidence gives ``evidence.malformed`` naming the part, never an exception; every finding id is
catalogued and documented."""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from appraisal_support import bundle_files, evidence, keylime_policy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import REPO_ROOT
from veritee.appraisal import CATALOGUE, Appraisal, Evidence, appraise
from veritee.appraisal.policy import CompiledPolicy
from veritee.appraisal.quote_stage import load_ak
from veritee.tpm.alg import HashAlg

PARTS = ("ak_public", "quote", "signature", "event_log", "ima_log")


@pytest.fixture(scope="module")
def base() -> Evidence:
    return evidence(bundle_files())


@pytest.fixture(scope="module")
def policy() -> CompiledPolicy:
    return keylime_policy(bundle_files())


def _malformed_parts(result: Appraisal) -> list[str]:
    return [f.detail["part"] for f in result.findings if f.id == "evidence.malformed"]


@pytest.mark.parametrize("part", ["ak_public", "quote", "signature", "event_log"])
def test_garbage_part_is_named(base: Evidence, policy: CompiledPolicy, part: str) -> None:
    changes: dict[str, Any] = {part: b"\x01\x02garbage"}
    result = appraise(dataclasses.replace(base, **changes), policy)
    assert not result.passed
    assert _malformed_parts(result) == [part]


def test_garbage_ima_log(base: Evidence, policy: CompiledPolicy) -> None:
    result = appraise(dataclasses.replace(base, ima_log="10 zz ima-ng\n"), policy)
    assert _malformed_parts(result) == ["ima_log"]


def test_missing_pcr_values(base: Evidence, policy: CompiledPolicy) -> None:
    pcrs = {HashAlg.SHA256: {i: v for i, v in base.pcrs[HashAlg.SHA256].items() if i != 3}}
    result = appraise(dataclasses.replace(base, pcrs=pcrs), policy)
    assert _malformed_parts(result) == ["pcrs"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("quote", "text"),
        ("nonce", None),
        ("ima_log", b"bytes"),
        ("event_log", "text"),
        ("pcrs", {"sha256": {}}),
        ("pcrs", {HashAlg.SHA256: {"0": b""}}),
        ("ima_start", 3),
    ],
)
def test_wrong_types(base: Evidence, policy: CompiledPolicy, field: str, value: Any) -> None:
    result = appraise(dataclasses.replace(base, **{field: value}), policy)
    assert _malformed_parts(result) == [field]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_evidence_never_raises(base: Evidence, policy: CompiledPolicy, data: st.DataObject) -> None:
    part = data.draw(st.sampled_from(PARTS))
    original = getattr(base, part)
    if part == "ima_log":
        lines = original.splitlines(keepends=True)
        index = data.draw(st.integers(0, len(lines) - 1))
        line = lines[index]
        position = data.draw(st.integers(0, len(line) - 1))
        char = data.draw(st.characters(codec="utf-8"))
        lines[index] = line[:position] + char + line[position + 1 :]
        mutated: Any = "".join(lines)
    else:
        blob = bytearray(original)
        kind = data.draw(st.sampled_from(["flip", "truncate", "random"]))
        if kind == "flip":
            for _ in range(data.draw(st.integers(1, 4))):
                blob[data.draw(st.integers(0, len(blob) - 1))] ^= data.draw(st.integers(1, 255))
        elif kind == "truncate":
            del blob[data.draw(st.integers(0, len(blob) - 1)) :]
        else:
            blob = bytearray(data.draw(st.binary(max_size=64)))
        mutated = bytes(blob)
    result = appraise(dataclasses.replace(base, **{part: mutated}), policy)
    assert all(f.id in CATALOGUE for f in result.findings)
    if mutated != original and result.passed:
        # only bytes that change nothing appraised: an event's device path (not hashed), or an AK field that leaves
        # the same key with the same restricted-signing attributes (the signature still verifies with that key)
        assert part == "event_log" or (part == "ak_public" and _same_key(mutated, original))


def _same_key(mutated: bytes, original: bytes) -> bool:
    key = load_ak(mutated)
    return key.public_key().public_numbers() == load_ak(original).public_key().public_numbers()


def test_catalogue_is_documented() -> None:
    doc = (REPO_ROOT / "docs" / "findings.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", doc, flags=re.M))
    assert documented == set(CATALOGUE)


def _id_constants(node: ast.AST) -> set[str]:
    """String constants shaped like finding ids, outside f-strings (where policy member paths live)."""
    if isinstance(node, ast.JoinedStr):
        return set()
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value} if re.fullmatch(r"(evidence|quote|boot|ima)\.[a-z_]+", node.value) else set()
    found: set[str] = set()
    for child in ast.iter_child_nodes(node):
        found |= _id_constants(child)
    return found


def test_every_finding_id_in_the_code_is_catalogued() -> None:
    used: set[str] = set()
    package = Path(REPO_ROOT / "src" / "veritee" / "appraisal")
    for name in ("engine.py", "quote_stage.py", "boot_stage.py", "runtime.py"):  # the modules that make findings
        used |= _id_constants(ast.parse((package / name).read_text()))
    assert used <= set(CATALOGUE), used - set(CATALOGUE)
    assert len(used) >= 40
