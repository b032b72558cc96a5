"""Property tests: random and mutated input raises only veritee's typed errors, and the processor always reports."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from suit_support import config, sign_manifest, vector

from veritee import cbor
from veritee.errors import VeriteeError
from veritee.suit import (
    InMemoryComponentStore,
    MappingFetcher,
    Procedure,
    ProcessResult,
    decode_envelope,
    decode_report,
    process,
)

SEEDS = [
    vector("teep-protocol", "E_ex1_suit_uri.hex"),
    vector("suit-manifest", "example3_signed.hex"),
    vector("suit-trust-domains", "example2_integrated.hex"),
]


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_random_bytes(data: bytes) -> None:
    with contextlib.suppress(VeriteeError):
        decode_envelope(data)
    with contextlib.suppress(VeriteeError):
        decode_report(data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4))
def test_mutated_envelopes(seed: bytes, edits: list[tuple[int, int]]) -> None:
    data = bytearray(seed)
    for position, value in edits:
        data[position % len(data)] = value
    try:
        envelope = decode_envelope(bytes(data))
    except VeriteeError:
        return
    result = process(
        envelope, Procedure.UPDATE, config=config(), store=InMemoryComponentStore(), fetcher=MappingFetcher({})
    )
    assert isinstance(result, ProcessResult)


_ARGS = st.one_of(
    st.integers(0, 15),
    st.just(True),
    st.lists(st.integers(0, 3), min_size=1, max_size=3),
    st.dictionaries(
        st.sampled_from([1, 2, 3, 5, 12, 13, 14, 18, 19, 21, 22, 23, 24, 99, -300]),
        st.one_of(st.binary(max_size=20), st.integers(0, 3), st.booleans(), st.text(max_size=5)),
        min_size=1,
        max_size=3,
    ),
    st.binary(max_size=10),
)
_CODES = st.sampled_from([1, 2, 3, 5, 6, 7, 8, 11, 12, 14, 15, 18, 19, 20, 21, 22, 23, 24, 31, 32, 33, 77, -500])


@st.composite
def _sequence(draw: st.DrawFn, depth: int = 0) -> bytes:
    items: list[object] = []
    for _ in range(draw(st.integers(1, 5))):
        code = draw(_CODES)
        if code == 15 and depth < 2:
            arg: object = [draw(_sequence(depth + 1)) for _ in range(draw(st.integers(1, 2)))]
        elif code == 32 and depth < 2:
            arg = draw(_sequence(depth + 1))
        else:
            arg = draw(_ARGS)
        items.extend((code, arg))
    return cbor.encode(items)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_sequence(), st.integers(1, 3), st.booleans())
def test_random_command_sequences_always_report(install: bytes, components: int, dependency: bool) -> None:
    common: dict[int, object] = {2: [[bytes([i])] for i in range(components)]}
    if dependency:
        common[1] = {components - 1: {}}
    manifest = {1: 1, 2: 1, 3: cbor.encode(common), 20: install, 9: install}
    try:
        envelope = decode_envelope(sign_manifest(manifest))
    except VeriteeError:
        return  # argument shapes the schema rejects
    store = InMemoryComponentStore({(b"\x00",): b"seed"}, slots={(b"\x00",): 0})
    before = store.snapshot()
    for procedure in (Procedure.UPDATE, Procedure.INVOKE):
        result = process(envelope, procedure, config=config(), store=store, fetcher=MappingFetcher({"u": b"x"}))
        assert isinstance(result, ProcessResult)
        if not result.ok:
            assert result.report.failure is not None
            assert not result.committed or procedure is Procedure.INVOKE
    if not store.commits:
        assert store.snapshot() == before
