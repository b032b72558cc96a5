"""The tampered variants of the shared bundle: each changes exactly the one thing it names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.bundle import EXPECTED, Bundle, BundleError, Variant, ima_target

from helpers import shared_path


@pytest.fixture(scope="module")
def bundle() -> Bundle:
    return Bundle.load(shared_path("tpm", "e2e-swtpm"))


def _changed(bundle: Bundle, variant: Variant) -> set[str]:
    files = bundle.variant(variant)
    return {name for name in files if files[name] != bundle.files[name]}


def test_good_is_the_bundle(bundle: Bundle) -> None:
    assert bundle.variant(Variant.GOOD) == dict(bundle.files)


def test_each_variant_changes_one_file(bundle: Bundle) -> None:
    assert _changed(bundle, Variant.IMA_ENTRY_CHANGED) == {"ascii_runtime_measurements"}
    assert _changed(bundle, Variant.POLICY_DIGEST_REMOVED) == {"runtime_policy.json"}
    assert _changed(bundle, Variant.KERNEL_CMDLINE_CHANGED) == {"mb_refstate.json"}
    assert _changed(bundle, Variant.BOOT_EVENT_CHANGED) == {"binary_bios_measurements"}
    assert all(Variant.GOOD in expected and expected[Variant.GOOD] for expected in EXPECTED.values())


def test_ima_variants_target_one_policy_listed_entry(bundle: Bundle) -> None:
    index, path = ima_target(bundle.files)
    assert (index, path) == (1, "/init")
    before = bundle.files["ascii_runtime_measurements"].decode().split("\n")
    after = bundle.variant(Variant.IMA_ENTRY_CHANGED)["ascii_runtime_measurements"].decode().split("\n")
    assert [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b] == [index]
    assert after[index].split(" ")[:3] == before[index].split(" ")[:3]  # same template hash: the edit shows
    policy = json.loads(bundle.variant(Variant.POLICY_DIGEST_REMOVED)["runtime_policy.json"])
    assert path not in policy["digests"]
    assert len(policy["digests"]) == len(json.loads(bundle.files["runtime_policy.json"])["digests"]) - 1


def test_kernel_cmdline_and_boot_event(bundle: Bundle) -> None:
    refstate = json.loads(bundle.variant(Variant.KERNEL_CMDLINE_CHANGED)["mb_refstate.json"])
    assert refstate["kernels"][0]["kernel_cmdline"].endswith(" veritee.bench.tampered=1")
    before = bundle.files["binary_bios_measurements"]
    after = bundle.variant(Variant.BOOT_EVENT_CHANGED)["binary_bios_measurements"]
    assert len(after) == len(before)
    assert sum(bin(a ^ b).count("1") for a, b in zip(before, after, strict=True)) == 1


def test_bad_bundles(tmp_path: Path, bundle: Bundle) -> None:
    with pytest.raises(BundleError, match="lacks"):
        Bundle.load(tmp_path)
    legacy = Bundle(tmp_path, {**bundle.files, "binary_bios_measurements": bytes(64)})
    with pytest.raises(BundleError, match="crypto-agile"):
        legacy.variant(Variant.BOOT_EVENT_CHANGED)
    truncated = Bundle(tmp_path, {**bundle.files, "binary_bios_measurements": bytes(10)})
    with pytest.raises(BundleError, match="cannot walk"):
        truncated.variant(Variant.BOOT_EVENT_CHANGED)
    no_kernels = Bundle(tmp_path, {**bundle.files, "mb_refstate.json": b"{}"})
    with pytest.raises(BundleError, match="no kernels"):
        no_kernels.variant(Variant.KERNEL_CMDLINE_CHANGED)
    empty_policy = Bundle(tmp_path, {**bundle.files, "runtime_policy.json": b'{"digests": {}}'})
    with pytest.raises(BundleError, match="no IMA entry"):
        empty_policy.variant(Variant.POLICY_DIGEST_REMOVED)
