"""Property tests: random and mutated bytes into every COSE decoder give only veritee's typed errors."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from cose_vectors import auth_wrapper, pem_key, suit_section, vector
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from veritee import cbor
from veritee.cose import (
    SUIT_KDF_OTHER,
    Algorithm,
    CoseKey,
    Encrypt0Message,
    EncryptMessage,
    Mac0Message,
    Sign1Message,
    SignMessage,
    decrypt,
    encrypt,
    mac0,
    sign,
    sign1,
)
from veritee.errors import DecodeError, VeriteeError

DECODERS: list[Callable[[bytes], Any]] = [
    Sign1Message.decode,
    SignMessage.decode,
    Mac0Message.decode,
    Encrypt0Message.decode,
    EncryptMessage.decode,
    CoseKey.from_cose_key,
]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

KEY = CoseKey.generate(Algorithm.ESP256, kid=b"fuzz")
MAC_KEY = CoseKey.symmetric(b"m" * 32, kid=b"mk")
KEK = CoseKey.symmetric(b"w" * 16, kid=b"kw", alg=Algorithm.A128KW)
SAMPLES = [
    sign1(b"payload", KEY),
    sign(b"payload", [KEY]),
    mac0(b"payload", MAC_KEY),
    encrypt(b"payload", [KEK]),
    cbor.encode(KEY.to_cose_key(private=True)),
]
ECDH_KEY = CoseKey(CoseKey.generate(Algorithm.ECDH_ES_A128KW).key)  # usable for ECDH-ES and ES256/ESP256


def _mutate(data: bytes, pos: int, op: int, value: int) -> bytes:
    pos %= len(data)
    if op == 0:
        return data[:pos] + bytes([data[pos] ^ (value or 1)]) + data[pos + 1 :]
    if op == 1:
        return data[:pos] + bytes([value]) + data[pos:]
    if op == 2:
        return data[:pos] + data[pos + 1 :]
    return data[:pos]


@given(st.binary(max_size=300))
@SETTINGS
def test_random_bytes_give_typed_errors(data: bytes) -> None:
    for decoder in DECODERS:
        with contextlib.suppress(VeriteeError):
            decoder(data)
    with contextlib.suppress(VeriteeError):
        decrypt(data, KEK)


@given(st.integers(0, 10_000), st.integers(0, 3), st.integers(0, 255), st.integers(0, len(SAMPLES) - 1))
@SETTINGS
def test_mutated_messages_never_verify_with_changed_signed_parts(pos: int, op: int, value: int, which: int) -> None:
    original = SAMPLES[which]
    data = _mutate(original, pos, op, value)
    for decoder in DECODERS:
        with contextlib.suppress(VeriteeError):
            decoder(data)
    try:
        if which == 0:
            msg = Sign1Message.decode(data)
            ref = Sign1Message.decode(original)
            msg.verify(KEY)
            assert (msg.protected_raw, msg.payload, msg.signature) == (ref.protected_raw, ref.payload, ref.signature)
        elif which == 1:
            SignMessage.decode(data).verify(KEY)
            assert SignMessage.decode(data).payload == b"payload"
        elif which == 2:
            mac = Mac0Message.decode(data)
            mac.verify(MAC_KEY)
            assert (mac.protected_raw, mac.payload, mac.tag) == (
                Mac0Message.decode(original).protected_raw,
                b"payload",
                Mac0Message.decode(original).tag,
            )
        elif which == 3:
            assert decrypt(data, KEK) == b"payload"
        else:
            CoseKey.from_cose_key(data)
    except VeriteeError:
        pass


def _e3() -> tuple[bytes, bytes]:
    wrapper = auth_wrapper(vector("teep-protocol/E_ex3_suit_personalization.hex"))
    params = next(x for x in suit_section(wrapper.envelope, 20) if isinstance(x, dict) and 19 in x)
    return params[19], params[18]


@pytest.fixture(scope="module")
def e3() -> tuple[bytes, bytes, CoseKey]:
    info, ct = _e3()
    return info, ct, pem_key("libteep/key/teep_agent_prime256v1.pem")


@given(st.integers(0, 10_000), st.integers(0, 3), st.integers(0, 255))
@SETTINGS
def test_mutated_e3_encryption_info_gives_typed_errors(
    e3: tuple[bytes, bytes, CoseKey], pos: int, op: int, value: int
) -> None:
    info, ct, key = e3
    with contextlib.suppress(VeriteeError):
        decrypt(_mutate(info, pos, op, value), key, detached_ciphertext=ct, kdf_other=SUIT_KDF_OTHER)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-70000, 70000) | st.binary(max_size=40) | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.integers(-30, 30), inner, max_size=5),
        max_leaves=20,
    )
)
@SETTINGS
def test_structured_garbage_in_cose_shapes(value: Any) -> None:
    """Well-formed CBOR of the right outer shape but arbitrary contents (raw or as an encoded protected header)."""
    prot = cbor.encode(value)
    crit = cbor.encode({1: -9, 2: value, 3: 0})  # a 'crit' header naming arbitrary things
    gcm = {1: 1, 5: b"\x00" * 12}
    shapes: list[tuple[int, list[Any]]] = [
        (18, [value, {}, b"p", b"s"]),
        (18, [b"", value, b"p", b"s"]),
        (18, [prot, {}, b"p", b"s" * 64]),
        (18, [crit, {}, b"p", b"s" * 64]),
        (98, [b"", {}, b"p", value]),
        (98, [prot, {}, b"p", [[prot, {}, b"s"]]]),
        (96, [b"", gcm, b"c", value]),
        (96, [b"", gcm, b"c", [value]]),
        (96, [prot, gcm, b"c", [[prot, {}, b"k"]]]),
        (96, [b"", {1: -65534, 5: b"\x00" * 16}, None, [[cbor.encode({1: -29}), {-1: value}, b"x" * 24]]]),
        (96, [b"", gcm, b"c", [[b"", {1: -3}, b"k" * 24, [value]]]]),
        (16, [b"", value, b"c"]),
        (16, [prot, {}, b"c"]),
        (17, [b"", {}, value, b"t"]),
        (17, [prot, {}, b"p", b"t"]),
    ]
    for tag, items in shapes:
        data = cbor.encode(cbor.CBORTag(tag, items))
        for decoder in DECODERS[:5]:
            with contextlib.suppress(VeriteeError):
                decoder(data)
        for key in (KEY, KEK, MAC_KEY, ECDH_KEY):
            try:
                if tag in (96, 16):
                    decrypt(data, key, detached_ciphertext=b"c" * 40 if items[2] is None else None)
                elif tag == 18:
                    Sign1Message.decode(data).verify(key)
                elif tag == 98:
                    SignMessage.decode(data).verify(key)
                else:
                    Mac0Message.decode(data).verify(key)
            except VeriteeError:
                pass


def test_non_bytes_input_is_a_decode_error() -> None:
    for decoder in DECODERS[:5]:
        with pytest.raises(DecodeError):
            decoder("text")  # type: ignore[arg-type]
    with pytest.raises(DecodeError):
        decrypt("text", KEK)  # type: ignore[arg-type]
