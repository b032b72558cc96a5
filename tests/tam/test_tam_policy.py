"""The TAM's pure decision logic: component id text, selectors, and what an Update carries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from tam_support import APP, APP_TEXT, APP_UUID_TEXT

from veritee.errors import PolicyError, ValidationError
from veritee.service.tam_ids import (
    canonical_component_id,
    component_id_from_text,
    component_id_to_text,
    digest_from_parts,
)
from veritee.service.tam_policy import (
    CatalogVersion,
    DeviceTc,
    Selector,
    SelectorKind,
    SkipReason,
    Want,
    plan_update,
    wanted_components,
)

THUMB = "ab" * 32


# --- component ids ------------------------------------------------------------------------------------------------
def test_component_id_text_is_readable_and_canonical() -> None:
    assert component_id_to_text(APP) == APP_TEXT
    assert component_id_from_text(APP_TEXT) == APP
    assert component_id_from_text(APP_UUID_TEXT) == APP
    assert canonical_component_id(APP_UUID_TEXT) == APP_TEXT
    assert component_id_to_text((b"0xab", b"a/b", b"", b"\x00")) == "0x30786162/0x612f62/0x/0x00"
    assert component_id_from_text("0x30786162/0x612f62/0x/0x00") == (b"0xab", b"a/b", b"", b"\x00")


@pytest.mark.parametrize("text", ["", "a/0xzz", "caf\u00e9", "x" * 600])
def test_bad_component_id_text_is_a_validation_error(text: str) -> None:
    with pytest.raises(ValidationError):
        component_id_from_text(text)


def test_empty_component_id_cannot_be_stored() -> None:
    with pytest.raises(ValidationError):
        component_id_to_text(())


@given(st.lists(st.binary(max_size=20), min_size=1, max_size=6))
def test_component_id_text_round_trips(parts: list[bytes]) -> None:
    text = component_id_to_text(tuple(parts))
    assert component_id_from_text(text) == tuple(parts)
    assert canonical_component_id(text) == text


@given(st.text(max_size=80))
def test_any_text_parses_or_is_a_validation_error(text: str) -> None:
    try:
        parsed = component_id_from_text(text)
    except ValidationError:
        return
    assert all(isinstance(p, bytes) for p in parsed)


def test_digest_text_from_tc_list_parts() -> None:
    assert digest_from_parts(-16, bytes(32)) == "sha256:" + "00" * 32
    with pytest.raises(ValidationError):
        digest_from_parts(99, bytes(32))
    with pytest.raises(ValidationError):
        digest_from_parts(-16, bytes(5))


# --- selectors ----------------------------------------------------------------------------------------------------
def test_selector_kinds_parse_print_and_store() -> None:
    every = Selector.parse("all")
    assert every.kind is SelectorKind.ALL and every.matches(1, THUMB, {})
    attrs = Selector.parse(" attr:site=paris, rack = 3 ")
    assert attrs.attributes == {"site": "paris", "rack": "3"}
    assert attrs.text() == "attr:rack=3,site=paris"
    devices = Selector.parse(f"device:7,{THUMB.upper()}")
    assert devices.device_ids == frozenset({7}) and devices.thumbprints == frozenset({THUMB})
    for selector in (every, attrs, devices):
        assert Selector.from_json(selector.to_json()) == selector
        assert Selector.parse(selector.text()) == selector


def test_selector_matching() -> None:
    attrs = Selector.parse("attr:site=paris,secure=true,rack=3")
    assert attrs.matches(1, THUMB, {"site": "paris", "secure": True, "rack": 3, "extra": "x"})
    assert not attrs.matches(1, THUMB, {"site": "paris", "secure": False, "rack": 3})
    assert not attrs.matches(1, THUMB, {"site": "paris", "rack": 3})
    devices = Selector.parse(f"device:2,{THUMB}")
    assert devices.matches(2, "00" * 32, {}) and devices.matches(9, THUMB, {})
    assert not devices.matches(3, "00" * 32, {})


@pytest.mark.parametrize(
    "text",
    ["", "every", "attr:", "attr:site", "attr:=x", "attr:a=1,a=2", "device:", "device:paris", "device:1,,2", "rack:3"],
)
def test_bad_selectors_are_policy_errors(text: str) -> None:
    with pytest.raises(PolicyError):
        Selector.parse(text)


@pytest.mark.parametrize(
    "stored",
    [
        None,
        [],
        {"kind": "nope"},
        {"kind": "attr", "attributes": {"a": 1}},
        {"kind": "device", "device_ids": ["1"]},
        {"kind": "device", "device_ids": [True]},
        {"kind": "device", "thumbprints": [1]},
    ],
)
def test_bad_stored_selectors_are_policy_errors(stored: object) -> None:
    with pytest.raises(PolicyError):
        Selector.from_json(stored)


@given(st.text(max_size=60))
def test_any_selector_text_parses_or_is_a_policy_error(text: str) -> None:
    try:
        selector = Selector.parse(text)
    except PolicyError:
        return
    assert Selector.parse(selector.text()) == selector


# --- deciding an Update -------------------------------------------------------------------------------------------
def version(cid: str, seq: int, vid: int | None = None) -> CatalogVersion:
    return CatalogVersion(vid or seq, cid, f"{cid}/manifest", seq, f"sha256:{seq:064x}", None)


CATALOG = {"a": {1: version("a", 1), 2: version("a", 2)}, "b": {5: version("b", 5, 50)}}
NEWEST = {"a": CATALOG["a"][2], "b": CATALOG["b"][5]}


Outcome = tuple[list[str], list[str], dict[str, SkipReason]]


def plan(wanted: dict[str, int | None], has: dict[str, tuple[int | None, bool]]) -> Outcome:
    result = plan_update(
        {c: Want(c, m) for c, m in wanted.items()},
        {c: DeviceTc(c, seq, installed) for c, (seq, installed) in has.items()},
        NEWEST,
        CATALOG,
    )
    installs = [f"{v.component_id}@{v.sequence_number}" for v in result.install]
    removes = [f"{v.component_id}@{v.sequence_number}" for v in result.remove]
    assert result.empty == (not installs and not removes)
    return installs, removes, {s.component_id: s.reason for s in result.skipped}


def test_a_device_that_lacks_or_has_older_gets_the_newest() -> None:
    assert plan({"a": None}, {}) == (["a@2"], [], {})
    assert plan({"a": None, "b": 3}, {"a": (1, True)}) == (["a@2", "b@5"], [], {})


def test_up_to_date_devices_get_nothing() -> None:
    assert plan({"a": None}, {"a": (2, True)}) == ([], [], {})


def test_never_an_older_sequence_number_than_the_device_has_or_had() -> None:
    assert plan({"a": None}, {"a": (3, True)}) == ([], [], {"a": SkipReason.DEVICE_NEWER})
    assert plan({"a": None}, {"a": (2, False)}) == ([], [], {"a": SkipReason.ROLLBACK_FLOOR})
    assert plan({"a": None}, {"a": (1, False)}) == (["a@2"], [], {})


def test_unknown_versions_minimums_and_missing_components_are_skipped() -> None:
    assert plan({"a": None}, {"a": (None, True)}) == ([], [], {"a": SkipReason.UNKNOWN_VERSION})
    assert plan({"a": None}, {"a": (None, False)}) == (["a@2"], [], {})
    assert plan({"a": 3}, {}) == ([], [], {"a": SkipReason.BELOW_MINIMUM})
    assert plan({"z": None}, {}) == ([], [], {"z": SkipReason.NOT_IN_CATALOG})


def test_components_no_deployment_wants_are_removed_by_the_version_the_device_has() -> None:
    installs, removes, _ = plan({}, {"a": (1, True), "b": (None, True), "unmanaged": (4, True), "gone": (1, False)})
    assert installs == [] and removes == ["a@1", "b@5"]


def test_wanted_components_take_the_highest_minimum_of_matching_deployments() -> None:
    deployments = [
        ("a", Selector.parse("all"), None),
        ("a", Selector.parse("attr:site=paris"), 2),
        ("a", Selector.parse("attr:site=lyon"), 9),
        ("b", Selector.parse("device:5"), 1),
    ]
    assert wanted_components(deployments, 1, THUMB, {"site": "paris"}) == {"a": Want("a", 2)}
    assert wanted_components(deployments, 5, THUMB, {}) == {"a": Want("a", None), "b": Want("b", 1)}
