"""Property tests: random and mutated bytes into every decoder and into verification give only veritee errors."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tpm_testdata import (
    BANKS,
    SELECTION,
    Bundle,
    e2e_bundle,
    ec_key,
    keylime_bundle,
    rsa_key,
    software_quote,
    windows_bundle,
)

from veritee.errors import VeriteeError
from veritee.tpm.attest import TpmlPcrSelection, TpmsAttest
from veritee.tpm.pcrs import parse_tpm2tools_pcr_blob
from veritee.tpm.public import TpmtPublic
from veritee.tpm.quote import verify_quote
from veritee.tpm.signature import TpmtSignature

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def _seeds() -> dict[str, list[bytes]]:
    e2e, keylime, windows = e2e_bundle(), keylime_bundle(), windows_bundle()
    ecc_ak = software_quote(ec_key())[0]
    return {
        "public": [e2e.ak.pack(), keylime.ak.pack(), windows.ak.pack(), ecc_ak.pack()],
        "tpm2b_public": [e2e.ak_bytes, keylime.ak_bytes],
        "attest": [e2e.attest, keylime.attest, windows.attest],
        "tpm2b_attest": [len(a).to_bytes(2, "big") + a for a in (e2e.attest, keylime.attest, windows.attest)],
        "signature": [e2e.sig, keylime.sig, windows.sig],
        "pcr_selection": [b"\x00\x00\x00\x02\x00\x04\x03\xff\xff\xff\x00\x0b\x03\x01\x00\x80"],
        "pcr_blob": [e2e.pcr_blob or b"", keylime.pcr_blob or b""],
    }


def _decoders() -> dict[str, Callable[[bytes], object]]:
    return {
        "public": TpmtPublic.unpack,
        "tpm2b_public": TpmtPublic.from_tpm2b,
        "attest": TpmsAttest.unpack,
        "tpm2b_attest": TpmsAttest.from_tpm2b,
        "signature": TpmtSignature.unpack,
        "pcr_selection": TpmlPcrSelection.unpack,
        "pcr_blob": parse_tpm2tools_pcr_blob,
    }


def _mutate(data: bytes, ops: list[tuple[int, int, int]]) -> bytes:
    out = bytearray(data)
    for kind, position, value in ops:
        if not out:
            out.append(value)
            continue
        at = position % len(out)
        if kind == 0:
            out[at] = value
        elif kind == 1:
            out[at] ^= 1 << (value % 8)
        elif kind == 2:
            out.insert(at, value)
        elif kind == 3:
            del out[at]
        else:
            del out[at:]
    return bytes(out)


MUTATIONS = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1 << 16), st.integers(0, 255)), min_size=1, max_size=4)
NAMES = st.sampled_from(["public", "tpm2b_public", "attest", "tpm2b_attest", "signature", "pcr_selection", "pcr_blob"])


def _check_decoder(name: str, data: bytes) -> None:
    decode = _decoders()[name]
    try:
        value = decode(data)
    except VeriteeError:
        return
    if name in ("public", "attest", "signature"):
        assert value.pack() == data  # type: ignore[attr-defined]  # TPM marshalling is canonical
    elif name == "tpm2b_public":
        assert value.to_tpm2b() == data  # type: ignore[attr-defined]
    elif name == "tpm2b_attest":
        assert len(value.pack()).to_bytes(2, "big") + value.pack() == data  # type: ignore[attr-defined]
    elif name == "pcr_selection":
        assert value.pack() == data  # type: ignore[attr-defined]


@FUZZ
@given(name=NAMES, data=st.binary(max_size=700))
def test_random_bytes_give_only_veritee_errors(name: str, data: bytes) -> None:
    _check_decoder(name, data)


@FUZZ
@given(name=NAMES, seed=st.integers(0, 3), ops=MUTATIONS)
def test_mutated_real_structures_give_only_veritee_errors(
    name: str, seed: int, ops: list[tuple[int, int, int]]
) -> None:
    seeds = _seeds()[name]
    _check_decoder(name, _mutate(seeds[seed % len(seeds)], ops))


@cache
def _bundles() -> list[Bundle]:
    return [e2e_bundle(), keylime_bundle(), windows_bundle()]


@FUZZ
@given(
    which=st.integers(0, 2),
    part=st.sampled_from(["attest", "sig", "blob", "nonce"]),
    ops=MUTATIONS,
)
def test_mutated_quotes_never_verify_and_fail_with_veritee_errors(
    which: int, part: str, ops: list[tuple[int, int, int]]
) -> None:
    b = _bundles()[which]
    attest, sig, nonce, banks = b.attest, b.sig, b.nonce, b.banks
    if part == "attest":
        attest = _mutate(attest, ops)
    elif part == "sig":
        sig = _mutate(sig, ops)
    elif part == "nonce":
        nonce = _mutate(nonce, ops)
    elif b.pcr_blob is not None:
        try:
            banks = parse_tpm2tools_pcr_blob(_mutate(b.pcr_blob, ops))[1]
        except VeriteeError:
            return
    try:
        verified = verify_quote(b.ak, attest, sig, banks, nonce)
    except VeriteeError:
        return
    # Only a mutation that changed nothing the quote covers may verify (e.g. a value of an unquoted PCR).
    assert (attest, sig, nonce) == (b.attest, b.sig, b.nonce)
    assert verified.pcrs == verify_quote(b.ak, b.attest, b.sig, b.banks, b.nonce).pcrs


@FUZZ
@given(ops=MUTATIONS)
def test_mutated_software_quote_blob_gives_only_veritee_errors(ops: list[tuple[int, int, int]]) -> None:
    ak, attest, sig, blob = software_quote(rsa_key())
    try:
        banks = parse_tpm2tools_pcr_blob(_mutate(blob, ops))[1]
        verified = verify_quote(ak, attest, sig, banks, b"nonce-1234")
    except VeriteeError:
        return
    assert verified.pcrs == {alg: {i: BANKS[alg][i] for i in SELECTION.pcrs} for alg in [SELECTION.hash_alg]}
