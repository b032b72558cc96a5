"""The prepared-header signing path and the decoding caches give exactly what the plain code gives."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from veritee import cbor
from veritee.cose import Algorithm, CoseKey, HeaderLabel, Sign1Message, Sign1Template, sign1
from veritee.cose.common import Headers, thaw
from veritee.errors import DecodeError, EncodeError, UnsupportedAlgorithmError

KEYS = {alg: CoseKey.generate(alg) for alg in (Algorithm.ESP256, Algorithm.Ed25519)}
KID_KEY = CoseKey(KEYS[Algorithm.Ed25519].key, kid=b"kid-1")


def _plain_sign1(payload: bytes, key: CoseKey, protected: dict[Any, Any], unprotected: dict[Any, Any],
                 external_aad: bytes = b"", detached: bool = False, tag: bool = True) -> bytes:  # fmt: skip
    """The COSE_Sign1 built the long way: the Sig_structure and the array encoded as CBOR values."""
    raw = cbor.encode(protected) if protected else b""
    tbs = cbor.encode(["Signature1", raw, external_aad, payload])
    items = [raw, unprotected, None if detached else payload, key.sign_bytes(Algorithm.from_id(protected[1]), tbs)]
    return cbor.encode(cbor.CBORTag(18, items) if tag else items)


scalar = st.integers(-(2**64), 2**64 - 1) | st.booleans() | st.binary(max_size=20) | st.text(max_size=8) | st.none()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(KEYS)),
    st.binary(max_size=300),
    st.dictionaries(st.sampled_from([3, 10, 99, -70, "x"]), scalar, max_size=2),
    st.dictionaries(st.sampled_from([3, 4, 33, 99, "y"]), scalar, max_size=2),
    st.binary(max_size=8),
    st.booleans(),
    st.booleans(),
)
def test_sign1_and_templates_match_the_long_way(
    alg: Algorithm, payload: bytes, extra: dict[Any, Any], unprotected: dict[Any, Any], aad: bytes, detached: bool,
    tag: bool,
) -> None:  # fmt: skip
    key = KEYS[alg]
    protected = {1: int(alg), **extra}
    try:
        expected = _plain_sign1(payload, key, protected, unprotected, aad, detached, tag)
        Headers.build(protected, unprotected)
    except (DecodeError, EncodeError, ValueError):
        with pytest.raises((DecodeError, EncodeError)):
            sign1(payload, key, protected=protected, unprotected=unprotected)
        return
    kwargs: dict[str, Any] = {"detached": detached, "tag": tag, "external_aad": aad}
    assert sign1(payload, key, protected=protected, unprotected=unprotected, **kwargs) == expected
    assert sign1(payload, key, protected=protected, unprotected=unprotected, **kwargs) == expected  # memoised
    template = Sign1Template(key, protected=protected, unprotected=unprotected)
    assert template.sign(payload, **kwargs) == expected
    assert template.alg is alg and template.key is key


def test_memoised_headers_tell_apart_values_that_compare_equal() -> None:
    key = KEYS[Algorithm.ESP256]
    as_int = Sign1Message.decode(sign1(b"p", key, unprotected={3: 1}))
    as_bool = Sign1Message.decode(sign1(b"p", key, unprotected={3: True}))
    assert as_int.unprotected[3] is not True and as_bool.unprotected[3] is True
    by_label = Sign1Message.decode(sign1(b"p", key, protected={HeaderLabel.ALG: -9}))
    by_int = Sign1Message.decode(sign1(b"p", key, protected={1: -9}))
    assert by_label.protected_raw == by_int.protected_raw == bytes.fromhex("a10128")
    # A header map mutated after a signature must not change what the next signature carries.
    unprotected: dict[Any, Any] = {4: b"one"}
    first = Sign1Message.decode(sign1(b"p", key, unprotected=unprotected))
    unprotected[4] = b"two"
    second = Sign1Message.decode(sign1(b"p", key, unprotected=unprotected))
    assert (first.kid, second.kid) == (b"one", b"two")


def test_default_headers_and_errors_of_templates() -> None:
    template = Sign1Template(KID_KEY)
    signed = Sign1Message.decode(template.sign(b"payload"))
    assert signed.alg is Algorithm.Ed25519 and signed.kid == b"kid-1"
    assert signed.verify(KID_KEY.public()) == KID_KEY.public()
    assert template.sign(b"payload") == sign1(b"payload", KID_KEY)
    assert Sign1Message.decode(template.sign(bytearray(b"payload"))).payload == b"payload"  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match="private key"):
        Sign1Template(KID_KEY.public())
    with pytest.raises(UnsupportedAlgorithmError):
        Sign1Template(KEYS[Algorithm.ESP256], protected={1: int(Algorithm.Ed25519)})
    with pytest.raises(EncodeError, match="payload"):
        template.sign("text")  # type: ignore[arg-type]
    with pytest.raises(EncodeError, match="external_aad"):
        template.sign(b"p", external_aad="x")  # type: ignore[arg-type]


def test_cached_protected_headers_are_copies_and_bad_ones_are_never_cached() -> None:
    key = KEYS[Algorithm.ESP256]
    data = sign1(b"p", key)
    first = Sign1Message.decode(data)
    first.protected[99] = "changed"
    assert 99 not in Sign1Message.decode(data).protected
    raw = cbor.encode({1: -9, 4: "not bytes"})
    for _ in range(2):
        with pytest.raises(DecodeError, match="KID must be a byte string"):
            Headers.decode(raw, {}, "test")
    with pytest.raises(DecodeError, match="unprotected header must be a map"):
        Headers.decode(raw, [], "test")  # the bucket types are checked before the labels, cached or not
    good = cbor.encode({1: -9})
    Headers.decode(good, {}, "test")
    with pytest.raises(DecodeError, match="both buckets"):
        Headers.decode(good, {1: -9}, "test")
    with pytest.raises(DecodeError, match="IV and Partial IV"):
        Headers.decode(cbor.encode({5: b"i"}), {6: b"p"}, "test")


def test_thaw_makes_every_container_mutable() -> None:
    frozen = cbor.decode(cbor.encode(cbor.CBORTag(18, [b"", {4: [1, {2: [3]}]}, None, b""]))).value
    assert isinstance(frozen, tuple)
    thawed = thaw(frozen)
    assert thawed == [b"", {4: [1, {2: [3]}]}, None, b""]
    assert type(thawed[1]) is dict and type(thawed[1][4]) is list and type(thawed[1][4][1]) is dict
