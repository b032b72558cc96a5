"""The boot stage's fast paths against the plain rules they stand for: signature databases compared as stored bytes
(decoded only for a finding), Keylime's file patterns without regular expressions, the replay of the quoted banks
only, and the log reused by its bytes."""

from __future__ import annotations

import dataclasses
import re
import uuid

import pytest
from appraisal_support import bundle_files
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import shared_path
from veritee.appraisal.boot_stage import (
    _is_boot_config,
    _is_initrd,
    _is_vmlinuz,
    appraise_boot,
    check_boot_policy,
    load_boot_log,
)
from veritee.appraisal.findings import Finding
from veritee.appraisal.policy import BootPolicy, EfiSignature, compile_policy, import_keylime_refstate
from veritee.appraisal.policy.compiled import CompiledBootPolicy
from veritee.eventlog import parse, replay
from veritee.eventlog.summary import BootSummary, summarize
from veritee.tpm.alg import HashAlg

_DATABASES = (("PK", "boot.pk_mismatch"), ("KEK", "boot.kek_mismatch"), ("db", "boot.db_mismatch"))


@pytest.fixture(scope="module")
def summary() -> BootSummary:
    return summarize(parse(bundle_files()["binary_bios_measurements"]))


@pytest.fixture(scope="module")
def base() -> BootPolicy:
    return import_keylime_refstate(bundle_files()["mb_refstate.json"])


def _reference(summary: BootSummary, policy: CompiledBootPolicy) -> list[tuple[str, object]]:
    """Keylime's rules for the key databases, on decoded entries: every logged PK/KEK/db entry allowed, every
    required dbx entry logged. Returns (finding id, what it names) per violation."""
    out: list[tuple[str, object]] = []
    for name, finding_id in _DATABASES:
        allowed = {"PK": policy.pk, "KEK": policy.kek, "db": policy.db}[name]
        logged = {"PK": summary.pk, "KEK": summary.kek, "db": summary.db}[name]
        if allowed is None:
            continue
        if logged is None:
            out.append((finding_id, None))
            continue
        bad = [{"owner": str(e.owner), "data": e.data.hex()} for e in logged if (e.owner, e.data) not in allowed]
        if bad:
            out.append((finding_id, bad))
    if policy.dbx is not None:
        missing = policy.dbx - {(e.owner, e.data) for e in summary.dbx or ()}
        if missing:
            out.append(("boot.dbx_mismatch", sorted(data.hex() for _, data in missing)))
    return out


def _databases(found: list[Finding]) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for item in found:
        if item.id == "boot.dbx_mismatch":
            out.append((item.id, item.detail["missing"]))
        elif item.id in {finding_id for _, finding_id in _DATABASES}:
            out.append((item.id, item.detail.get("entries")))
    return out


def _signature(draw: st.DrawFn) -> EfiSignature:
    owner = draw(
        st.sampled_from(["", str(uuid.UUID(int=draw(st.integers(0, 3)))), "77fa9abd-0359-4d32-bd60-28f4e78f784b"])
    )
    return EfiSignature(owner=owner, data=draw(st.binary(min_size=32, max_size=33)))


@st.composite
def _policies(draw: st.DrawFn, base: BootPolicy) -> BootPolicy:
    """The bundle's Keylime policy with its key databases changed: entries dropped, added, reordered, cut."""
    assert base.pk is not None and base.kek is not None and base.db is not None and base.dbx is not None
    changes: dict[str, tuple[EfiSignature, ...] | None] = {}
    for name in ("pk", "kek", "db", "dbx"):
        entries: tuple[EfiSignature, ...] = getattr(base, name)
        how = draw(st.sampled_from(["same", "none", "drop", "add", "slice", "shuffle", "owner"]))
        if how == "none":
            changes[name] = None
        elif how == "drop" and entries:
            drop = draw(st.integers(0, len(entries) - 1))
            changes[name] = entries[:drop] + entries[drop + 1 :]
        elif how == "add":
            changes[name] = (*entries, _signature(draw))
        elif how == "slice":
            start = draw(st.integers(0, len(entries)))
            changes[name] = entries[start : start + draw(st.integers(0, len(entries)))]
        elif how == "shuffle":
            changes[name] = tuple(draw(st.permutations(entries)))
        elif how == "owner" and entries:
            at = draw(st.integers(0, len(entries) - 1))
            changed = dataclasses.replace(entries[at], owner=draw(st.sampled_from(["", str(uuid.UUID(int=9))])))
            changes[name] = (*entries[:at], changed, *entries[at + 1 :])
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@settings(max_examples=120, deadline=None)
@given(data=st.data())
def test_databases_compared_as_bytes_find_what_the_decoded_rules_find(
    summary: BootSummary, base: BootPolicy, data: st.DataObject
) -> None:
    policy = compile_policy(data.draw(_policies(base)), None).boot
    assert policy is not None
    found: list[Finding] = []
    check_boot_policy(summary, policy, found)
    assert _databases(found) == _reference(summary, policy)


def test_databases_of_other_logs_against_the_bundle_policy(base: BootPolicy) -> None:
    policy = compile_policy(base, None).boot
    assert policy is not None
    checked = 0
    for path in sorted(shared_path("tpm", "eventlogs").glob("*.bin")):
        other = summarize(parse(path.read_bytes()))
        found: list[Finding] = []
        check_boot_policy(other, policy, found)
        assert _databases(found) == _reference(other, policy)
        checked += bool(_reference(other, policy))
    assert checked >= 5


def test_dbx_as_one_run_is_only_a_shortcut(summary: BootSummary, base: BootPolicy) -> None:
    assert base.dbx is not None
    compiled = compile_policy(base, None).boot
    assert compiled is not None and compiled.dbx_run is not None
    lists = summary.signature_lists("dbx")
    assert lists is not None and lists.contains_run(*compiled.dbx_run)
    # reordered, the run is not in the log, and the entries are found one by one: still no finding
    reordered = compile_policy(dataclasses.replace(base, dbx=tuple(reversed(base.dbx))), None).boot
    assert reordered is not None and reordered.dbx_run is not None
    assert not lists.contains_run(*reordered.dbx_run)
    found: list[Finding] = []
    check_boot_policy(summary, reordered, found)
    assert found == []
    # an entry without an owner, or of another size: no run, and the owner-less entry is missing
    odd = compile_policy(dataclasses.replace(base, dbx=(*base.dbx, EfiSignature(owner="", data=bytes(32)))), None)
    assert odd.boot is not None and odd.boot.dbx_run is None and odd.boot.dbx_raw is not None
    check_boot_policy(summary, odd.boot, found)
    assert [f.id for f in found] == ["boot.dbx_mismatch"] and found[0].detail["missing"] == [bytes(32).hex()]


_KEYLIME_PATTERNS = {
    _is_initrd: re.compile(r".*/initrd.*|.*/initramfs.*|grub_linuxefi Initrd"),
    _is_vmlinuz: re.compile(r".*/vmlinuz.*|grub_linuxefi Kernel"),
    _is_boot_config: re.compile(r".*/loader/entries.*|.*/grub.*"),
}
_PIECES = ["/", "grub", "/grub", "initrd", "/initramfs", "/vmlinuz", "/loader/entries", "\n", "\r", "x", " ", "\x00"]


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.sampled_from([*_PIECES, "grub_linuxefi Kernel", "grub_linuxefi Initrd"]), max_size=6).map("".join)
    | st.text(max_size=30)
)
def test_file_patterns_equal_keylimes_regular_expressions(path: str) -> None:
    for test, pattern in _KEYLIME_PATTERNS.items():
        assert test(path) == (pattern.fullmatch(path) is not None), (test.__name__, path)


def test_log_reused_by_its_bytes_and_replayed_again_for_other_banks() -> None:
    data = shared_path("tpm", "eventlogs", "gotpmtools_rhel8-gce-secureboot.bin").read_bytes()
    full = replay(parse(data)).pcrs
    sha256_only = {HashAlg.SHA256: full[HashAlg.SHA256]}
    found: list[Finding] = []
    first = appraise_boot(data, sha256_only, None, found)
    assert first is not None and found == []
    assert set(first.replay.pcrs) == {HashAlg.SHA256} and first.replayed_banks == frozenset({HashAlg.SHA256})
    assert load_boot_log(bytes(bytearray(data)), first) is first  # equal bytes: the same record
    assert first.digest == load_boot_log(data, None).digest
    # the next quote covers SHA-1 too: the record is reused and the SHA-1 bank is replayed for the comparison
    second = appraise_boot(data, full, None, found, previous=first)
    assert second is first and found == []
    wrong = {**full, HashAlg.SHA1: {**full[HashAlg.SHA1], 0: bytes(20)}}
    appraise_boot(data, wrong, None, found, previous=first)
    assert [(f.id, f.detail["bank"], f.detail["pcr"]) for f in found] == [("boot.pcr_mismatch", "sha1", 0)]
    # another log: decoded again
    other = shared_path("tpm", "eventlogs", "gotpmtools_glinux-laptop-nosb.bin").read_bytes()
    assert load_boot_log(other, first) is not first
