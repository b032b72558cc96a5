"""The node side's JSON shapes of the node <-> verifier API: round trips, exact field names, strict rejection."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veritee.errors import DecodeError, ValidationError
from veritee.service.node_wire import (
    ActivationRequest,
    Challenge,
    CredentialChallenge,
    NodeEvidence,
    RegistrationRequest,
    Verdict,
    b64decode,
    parse_pcr_selection,
)

TYPED = (DecodeError, ValidationError)


def test_challenge_round_trip_and_field_names() -> None:
    challenge = Challenge(b"\x01" * 32, {"sha256": [14, 0, 10]}, 826, True)
    body = challenge.to_json()
    assert body == {
        "nonce": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
        "pcr_selection": {"sha256": [14, 0, 10]},
        "ima_offset": 826,
        "want_event_log": True,
    }
    parsed = Challenge.from_json(json.loads(json.dumps(body)))
    assert parsed.pcr_selection == {"sha256": [0, 10, 14]} and parsed.nonce == challenge.nonce
    assert Challenge.from_json({"nonce": "AA==", "pcr_selection": {"sha-256": [1, 1]}}) == Challenge(
        b"\x00", {"sha256": [1]}, 0, False
    )


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"pcr_selection": {"sha256": [0]}}, "lacks 'nonce'"),
        ({"nonce": "AA", "pcr_selection": {"sha256": [0]}}, "base64"),
        ({"nonce": "A A=", "pcr_selection": {"sha256": [0]}}, "base64"),
        ({"nonce": "", "pcr_selection": {"sha256": [0]}}, "1..64 bytes"),
        ({"nonce": "A" * 88, "pcr_selection": {"sha256": [0]}}, "1..64 bytes"),
        ({"nonce": "AA==", "pcr_selection": {}}, "no bank"),
        ({"nonce": "AA==", "pcr_selection": {"md5": [0]}}, "unknown bank"),
        ({"nonce": "AA==", "pcr_selection": {"sha256": [0], "SHA256": [1]}}, "twice"),
        ({"nonce": "AA==", "pcr_selection": {"sha256": [24]}}, "0..23"),
        ({"nonce": "AA==", "pcr_selection": {"sha256": [-1]}}, "at least 0"),
        ({"nonce": "AA==", "pcr_selection": {"sha256": [True]}}, "integer"),
        ({"nonce": "AA==", "pcr_selection": {"sha256": []}}, "non-empty"),
        ({"nonce": "AA==", "pcr_selection": {"sha256": "0-10"}}, "non-empty list"),
        ({"nonce": "AA==", "pcr_selection": {"sha256": [0]}, "ima_offset": -1}, "at least 0"),
        ({"nonce": "AA==", "pcr_selection": {"sha256": [0]}, "ima_offset": 1.5}, "integer"),
        ({"nonce": "AA==", "pcr_selection": {"sha256": [0]}, "want_event_log": 1}, "true or false"),
        ([], "JSON object"),
    ],
)
def test_bad_challenges_are_named(body: Any, error: str) -> None:
    with pytest.raises(TYPED, match=error):
        Challenge.from_json(body)


def test_evidence_round_trip() -> None:
    evidence = NodeEvidence(b"n", b"quote", b"sig", b"pcrs", None, 3, "10 ab ima-ng sha1:00 /x\n")
    body = evidence.to_json()
    assert body == {
        "nonce": "bg==",
        "quote": "cXVvdGU=",
        "signature": "c2ln",
        "pcrs": "cGNycw==",
        "event_log": None,
        "ima": {"offset": 3, "entries": "10 ab ima-ng sha1:00 /x\n"},
    }
    assert NodeEvidence.from_json(json.loads(json.dumps(body))) == evidence
    with_log = NodeEvidence(b"n", b"q", b"s", b"p", b"\x00log", 0, "")
    assert NodeEvidence.from_json(with_log.to_json()) == with_log
    with pytest.raises(ValidationError, match="lacks 'ima'"):
        NodeEvidence.from_json({k: v for k, v in body.items() if k != "ima"})
    with pytest.raises(ValidationError, match="entries must be a string"):
        NodeEvidence.from_json({**body, "ima": {"offset": 0, "entries": None}})


def test_registration_shapes() -> None:
    request = RegistrationRequest("n1", None, b"ek", b"ak", {"rack": "7"}, "http://10.0.0.1:8992")
    body = request.to_json()
    assert set(body) == {"node_id", "ek_cert", "ek_public", "ak_public", "attributes", "agent_url"}
    assert body["ek_cert"] is None and body["agent_url"] == "http://10.0.0.1:8992"
    assert RegistrationRequest.from_json(body) == request
    with pytest.raises(ValidationError, match="attribute"):
        RegistrationRequest.from_json({**body, "attributes": {"rack": 7}})
    reply = CredentialChallenge("c1", b"blob", b"secret")
    assert set(reply.to_json()) == {"challenge_id", "credential_blob", "encrypted_secret"}
    assert CredentialChallenge.from_json(reply.to_json()) == reply
    activation = ActivationRequest("c1", b"s")
    assert activation.to_json() == {"challenge_id": "c1", "secret": "cw=="}
    assert ActivationRequest.from_json(activation.to_json()) == activation


def test_verdict() -> None:
    verdict = Verdict.from_json({"state": "failed", "passed": False, "findings": [{"id": "ima.not_in_policy"}]})
    assert verdict.finding_ids() == ["ima.not_in_policy"] and not verdict.passed
    assert Verdict.from_json({"state": "trusted", "passed": True}).findings == ()
    with pytest.raises(ValidationError):
        Verdict.from_json({"state": "trusted", "passed": "yes"})
    with pytest.raises(ValidationError):
        Verdict.from_json({"state": "trusted", "passed": True, "findings": {"id": "x"}})


def test_b64_is_strict() -> None:
    assert b64decode("AAE=", "x") == b"\x00\x01"
    for bad in ("AAE", "AA E=", "_-8=", "é", 5):
        with pytest.raises(TYPED):
            b64decode(bad, "x")
    assert parse_pcr_selection({"sha1": [3, 1], "sha256": [0]}) == {"sha1": [1, 3], "sha256": [0]}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
KEYS = st.sampled_from(
    ["nonce", "pcr_selection", "ima_offset", "want_event_log", "quote", "signature", "pcrs", "event_log", "ima"]
)


@settings(max_examples=120, deadline=None)
@given(st.one_of(JSON, st.dictionaries(KEYS, JSON, max_size=9)))
def test_any_json_gives_a_result_or_a_typed_error(value: Any) -> None:
    for parse in (
        Challenge.from_json,
        NodeEvidence.from_json,
        RegistrationRequest.from_json,
        CredentialChallenge.from_json,
        ActivationRequest.from_json,
        Verdict.from_json,
    ):
        with contextlib.suppress(DecodeError, ValidationError):
            parse(value)


@settings(max_examples=100, deadline=None)
@given(
    nonce=st.binary(min_size=1, max_size=64),
    pcrs=st.dictionaries(
        st.sampled_from(["sha1", "sha256", "sha384"]), st.lists(st.integers(0, 23), min_size=1), min_size=1
    ),
    offset=st.integers(0, 2**40),
    want=st.booleans(),
)
def test_challenges_survive_json(nonce: bytes, pcrs: dict[str, list[int]], offset: int, want: bool) -> None:
    challenge = Challenge(nonce, pcrs, offset, want)
    parsed = Challenge.from_json(json.loads(json.dumps(challenge.to_json())))
    assert parsed.nonce == nonce and parsed.ima_offset == offset and parsed.want_event_log is want
    assert parsed.pcr_selection == {bank: sorted(set(values)) for bank, values in pcrs.items()}
