"""Sign/verify, MAC and encrypt/decrypt round trips for every algorithm, and the error paths around them."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

from veritee import cbor
from veritee.cose import (
    AlgKind,
    Algorithm,
    CoseKey,
    Encrypt0Message,
    EncryptMessage,
    HeaderLabel,
    Mac0Message,
    Recipient,
    Sign1Message,
    SignMessage,
    decrypt,
    encrypt,
    encrypt0,
    encrypt0_detached,
    encrypt_detached,
    mac0,
    sign,
    sign1,
)
from veritee.cose.common import CTX_ENCRYPT, enc_structure
from veritee.errors import (
    DecodeError,
    DecryptionError,
    EncodeError,
    KeyFormatError,
    SignatureError,
    UnsupportedAlgorithmError,
    ValidationError,
)

SIGN_ALGS = [a for a in Algorithm if a.kind is AlgKind.SIGNATURE]
MAC_ALGS = [a for a in Algorithm if a.kind is AlgKind.MAC]
CONTENT_ALGS = [a for a in Algorithm if a.kind is AlgKind.CONTENT]
KW_ALGS = [Algorithm.A128KW, Algorithm.A192KW, Algorithm.A256KW]
ECDH_ALGS = [a for a in Algorithm if a.kind is AlgKind.KEY_AGREEMENT]


@pytest.fixture(scope="module")
def sign_keys() -> dict[Algorithm, CoseKey]:
    return {alg: CoseKey.generate(alg, kid=alg.name.encode()) for alg in SIGN_ALGS}


@pytest.mark.parametrize("alg", SIGN_ALGS, ids=lambda a: a.name)
def test_sign1_round_trip(alg: Algorithm, sign_keys: dict[Algorithm, CoseKey]) -> None:
    key = sign_keys[alg]
    data = sign1(b"hello", key, external_aad=b"aad")
    msg = Sign1Message.decode(data)
    assert msg.alg is alg and msg.kid == alg.name.encode() and msg.payload == b"hello"
    assert msg.protected == {1: alg.value}
    assert msg.verify(key.public(), external_aad=b"aad") == key.public()
    with pytest.raises(SignatureError):
        msg.verify(key.public())  # external AAD is covered
    if alg not in (Algorithm.EdDSA, Algorithm.Ed25519):
        assert len(msg.signature) == 2 * key.crv.coordinate_size  # type: ignore[union-attr]
    assert sign1(b"hello", key, external_aad=b"aad") == data  # RFC 6979 / EdDSA: deterministic
    other = CoseKey.generate(alg, kid=alg.name.encode())
    with pytest.raises(SignatureError):
        msg.verify(other)
    # picked by kid among all keys
    assert msg.verify(list(sign_keys.values()), external_aad=b"aad") == key


@pytest.mark.parametrize("alg", SIGN_ALGS, ids=lambda a: a.name)
def test_sign1_detached_untagged(alg: Algorithm, sign_keys: dict[Algorithm, CoseKey]) -> None:
    key = sign_keys[alg]
    data = sign1(b"detached", key, detached=True, tag=False, unprotected={})
    assert data[0] == 0x84
    msg = Sign1Message.decode(data)
    assert msg.payload is None and not msg.tagged and msg.kid is None
    msg.verify(key, detached_payload=b"detached")
    with pytest.raises(ValidationError):
        msg.verify(key)
    with pytest.raises(SignatureError):
        msg.verify(key, detached_payload=b"other")
    with pytest.raises(ValidationError):
        Sign1Message.decode(sign1(b"x", key)).verify(key, detached_payload=b"x")


def test_sign1_explicit_headers_order_and_alg_conflicts(sign_keys: dict[Algorithm, CoseKey]) -> None:
    p256 = CoseKey(sign_keys[Algorithm.ESP256].key)
    data = sign1(b"p", p256, protected={HeaderLabel.CONTENT_TYPE: 60, HeaderLabel.ALG: -7})
    msg = Sign1Message.decode(data)
    assert list(msg.protected) == [3, 1] and msg.alg is Algorithm.ES256
    with pytest.raises(UnsupportedAlgorithmError):
        sign1(b"p", p256, protected={1: Algorithm.ES384})  # wrong curve
    restricted = CoseKey(p256.key, alg=Algorithm.ES256)
    with pytest.raises(UnsupportedAlgorithmError):
        sign1(b"p", restricted, protected={1: Algorithm.ESP256})
    with pytest.raises(UnsupportedAlgorithmError):
        Sign1Message.decode(sign1(b"p", p256)).verify(restricted)
    with pytest.raises(EncodeError):
        sign1(b"p", p256.public())
    with pytest.raises(UnsupportedAlgorithmError):
        sign1(b"p", CoseKey.symmetric(b"k" * 32))
    with pytest.raises(DecodeError):  # alg in both buckets
        sign1(b"p", p256, unprotected={1: -9})


def test_sign1_unknown_or_missing_alg_and_crit(sign_keys: dict[Algorithm, CoseKey]) -> None:
    p256 = sign_keys[Algorithm.ESP256]
    no_alg = cbor.encode(cbor.CBORTag(18, [b"", {}, b"p", b"\x00" * 64]))
    with pytest.raises(ValidationError):
        Sign1Message.decode(no_alg).verify(p256)
    unknown = cbor.encode(cbor.CBORTag(18, [cbor.encode({1: -999}), {}, b"p", b"\x00" * 64]))
    with pytest.raises(UnsupportedAlgorithmError):
        Sign1Message.decode(unknown).verify(p256)
    with pytest.raises(ValidationError, match="not understood"):
        sign1(b"p", p256, protected={1: -9, 2: [99], 99: 1})
    data = sign1(b"p", p256, protected={1: -9, 2: [3], 3: 60})
    Sign1Message.decode(data).verify(p256)
    with pytest.raises(DecodeError):
        sign1(b"p", p256, protected={1: -9, 2: [3]})  # crit names a label that is absent


def test_cose_sign_multiple_signers(sign_keys: dict[Algorithm, CoseKey]) -> None:
    keys = [sign_keys[Algorithm.ESP256], sign_keys[Algorithm.Ed25519], sign_keys[Algorithm.ESP384]]
    data = sign(b"multi", keys, protected={3: 0})
    msg = SignMessage.decode(data)
    assert msg.algs == (Algorithm.ESP256, Algorithm.Ed25519, Algorithm.ESP384)
    for k in keys:
        assert msg.verify(k.public()) == k.public()
    assert msg.verify([sign_keys[Algorithm.ES512], keys[2]]) == keys[2]
    with pytest.raises(UnsupportedAlgorithmError):
        msg.verify(sign_keys[Algorithm.ES512])
    with pytest.raises(SignatureError):
        msg.verify(CoseKey.generate(Algorithm.ESP256, kid=b"ESP256"))
    detached = SignMessage.decode(sign(b"multi", keys, detached=True, tag=False))
    assert detached.payload is None and not detached.tagged
    detached.verify(keys[1], detached_payload=b"multi")
    with pytest.raises(EncodeError):
        sign(b"x", [])
    assert SignMessage.decode(data).encode() == data


@pytest.mark.parametrize("alg", MAC_ALGS, ids=lambda a: a.name)
def test_mac0_round_trip(alg: Algorithm) -> None:
    key = CoseKey.generate(alg, kid=b"mac")
    data = mac0(b"m", key, external_aad=b"a")
    msg = Mac0Message.decode(data)
    assert msg.alg is alg and msg.kid == b"mac"
    assert msg.verify(key, external_aad=b"a") == key
    with pytest.raises(SignatureError):
        msg.verify(key)
    with pytest.raises(SignatureError):
        msg.verify(CoseKey.generate(alg, kid=b"mac"), external_aad=b"a")
    flipped = bytearray(data)
    flipped[-1] ^= 1
    with pytest.raises(SignatureError):
        Mac0Message.decode(bytes(flipped)).verify(key, external_aad=b"a")
    det = Mac0Message.decode(mac0(b"m", key, detached=True, tag=False))
    det.verify(key, detached_payload=b"m")
    assert det.encode() == mac0(b"m", key, detached=True, tag=False)


def test_mac0_default_alg_and_wrong_kinds() -> None:
    key = CoseKey.symmetric(b"s" * 32)
    assert Mac0Message.decode(mac0(b"m", key)).alg is Algorithm.HMAC_256_256
    with pytest.raises(UnsupportedAlgorithmError):
        mac0(b"m", key, protected={1: Algorithm.A128GCM})
    with pytest.raises(UnsupportedAlgorithmError):
        Mac0Message.decode(mac0(b"m", key)).verify(CoseKey.generate(Algorithm.ESP256))


@pytest.mark.parametrize("alg", CONTENT_ALGS, ids=lambda a: a.name)
def test_encrypt0_round_trip(alg: Algorithm) -> None:
    key = CoseKey.generate(alg, kid=b"cek")
    aad = b"" if alg.name.endswith("CTR") else b"aad"
    data = encrypt0(b"secret", key, external_aad=aad)
    msg = Encrypt0Message.decode(data)
    assert msg.alg is alg and msg.kid == b"cek"
    assert msg.decrypt(key, external_aad=aad) == b"secret"
    assert decrypt(data, [CoseKey.generate(alg, kid=b"x"), key], external_aad=aad) == b"secret"
    cose, ct = encrypt0_detached(b"secret", key)
    assert Encrypt0Message.decode(cose).ciphertext is None
    assert decrypt(cose, key, detached_ciphertext=ct) == b"secret"
    with pytest.raises(ValidationError):
        decrypt(cose, key)
    if alg.name.endswith("GCM"):
        with pytest.raises(DecryptionError):
            msg.decrypt(key)  # AAD mismatch
        with pytest.raises(DecryptionError):
            msg.decrypt(CoseKey.generate(alg))
        assert msg.headers.protected == {1: alg.value}
    else:
        assert msg.headers.protected_raw == b"" and msg.headers.unprotected[1] == alg.value
        with pytest.raises(ValidationError):
            msg.decrypt(key, external_aad=b"aad")


@pytest.mark.parametrize("alg", CONTENT_ALGS, ids=lambda a: a.name)
@pytest.mark.parametrize("kw", KW_ALGS, ids=lambda a: a.name)
def test_encrypt_aes_kw_round_trip(alg: Algorithm, kw: Algorithm) -> None:
    kek = CoseKey.generate(kw, kid=b"kek-" + kw.name.encode())
    data = encrypt(b"firmware image", [kek], alg=alg)
    msg = EncryptMessage.decode(data)
    assert msg.alg is alg and msg.recipients[0].alg is kw and msg.recipients[0].kid == kek.kid
    assert msg.decrypt(kek) == b"firmware image"
    with pytest.raises(DecryptionError):
        msg.decrypt(CoseKey.generate(kw, kid=kek.kid))


@pytest.mark.parametrize("ecdh", ECDH_ALGS, ids=lambda a: a.name)
@pytest.mark.parametrize(
    "make_key",
    [
        lambda: CoseKey.generate(Algorithm.ECDH_ES_A128KW),
        lambda: CoseKey.generate(Algorithm.ES384),
        lambda: CoseKey.generate(Algorithm.ES512),
        lambda: CoseKey(x25519.X25519PrivateKey.generate()),
    ],
    ids=["P-256", "P-384", "P-521", "X25519"],
)
def test_encrypt_ecdh_round_trip(ecdh: Algorithm, make_key: object) -> None:
    assert callable(make_key)
    receiver: CoseKey = CoseKey(make_key().key, kid=b"device")
    for alg in (Algorithm.A128GCM, Algorithm.A256CTR):
        spec = Recipient(receiver.public(), alg=ecdh, kdf_other=b"SUIT Payload Encryption")
        cose, ct = encrypt_detached(b"config", [spec], alg=alg)
        info = EncryptMessage.decode(cose).recipients[0]
        assert info.alg is ecdh and info.kid == b"device"
        assert info.headers.unprotected[HeaderLabel.EPHEMERAL_KEY][1] in (1, 2)
        assert decrypt(cose, receiver, detached_ciphertext=ct, kdf_other=b"SUIT Payload Encryption") == b"config"
        if alg is Algorithm.A128GCM or ecdh is not Algorithm.ECDH_ES_HKDF_256:
            with pytest.raises(DecryptionError):
                decrypt(cose, receiver, detached_ciphertext=ct)  # other KDF context
        else:
            assert decrypt(cose, receiver, detached_ciphertext=ct) != b"config"
        if alg is Algorithm.A128GCM or ecdh is not Algorithm.ECDH_ES_HKDF_256:
            # GCM authenticates; key wrap checks integrity. ECDH direct + CTR decrypts silently to garbage.
            with pytest.raises((DecryptionError, UnsupportedAlgorithmError)):
                decrypt(cose, CoseKey(make_key().key), detached_ciphertext=ct, kdf_other=b"SUIT Payload Encryption")
        with pytest.raises((KeyFormatError, DecryptionError)):
            decrypt(cose, receiver.public(), detached_ciphertext=ct, kdf_other=b"SUIT Payload Encryption")


def test_encrypt_multiple_recipients_and_direct() -> None:
    kek = CoseKey.generate(Algorithm.A256KW, kid=b"kw")
    dev = CoseKey(CoseKey.generate(Algorithm.ECDH_ES_A128KW).key, kid=b"dev")
    data = encrypt(b"both", [kek, Recipient(dev.public(), alg=Algorithm.ECDH_ES_A256KW)], alg=Algorithm.A192GCM)
    assert len(EncryptMessage.decode(data).recipients) == 2
    assert decrypt(data, dev) == b"both"
    assert decrypt(data, kek) == b"both"
    assert decrypt(data, [CoseKey.generate(Algorithm.A256KW), dev]) == b"both"
    with pytest.raises(DecryptionError):
        decrypt(data, CoseKey.generate(Algorithm.A256KW, kid=b"kw"))
    with pytest.raises(UnsupportedAlgorithmError):
        decrypt(data, CoseKey.generate(Algorithm.Ed25519))
    cek = CoseKey.symmetric(b"k" * 16, kid=b"direct")
    direct = encrypt(b"d", [Recipient(cek, alg=Algorithm.direct)], alg=Algorithm.A128GCM)
    assert EncryptMessage.decode(direct).recipients[0].ciphertext == b""
    assert decrypt(direct, cek) == b"d"
    with pytest.raises(EncodeError):
        encrypt(b"d", [Recipient(cek, alg=Algorithm.direct), kek])
    with pytest.raises(UnsupportedAlgorithmError):
        encrypt(b"d", [Recipient(cek, alg=Algorithm.direct)], alg=Algorithm.A256GCM)  # 16-byte key for A256
    with pytest.raises(EncodeError):
        encrypt(b"d", [])
    with pytest.raises(UnsupportedAlgorithmError):
        encrypt(b"d", [CoseKey.symmetric(b"k" * 16)])  # a recipient key without alg
    with pytest.raises(UnsupportedAlgorithmError):
        encrypt(b"d", [kek], alg=Algorithm.A128KW)
    with pytest.raises(EncodeError):
        encrypt(b"d", [kek], iv=b"short")
    assert EncryptMessage.decode(data).encode() == data


def test_ctr_rejects_protected_headers_and_tampering_is_silent() -> None:
    key = CoseKey.generate(Algorithm.A128KW, kid=b"k")
    with pytest.raises(ValidationError):
        encrypt(b"x", [key], alg=Algorithm.A128CTR, protected={3: 0})
    with pytest.raises(ValidationError):
        encrypt(b"x", [key], alg=Algorithm.A128CTR, external_aad=b"a")
    data = bytearray(encrypt(b"plaintext", [key], alg=Algorithm.A128GCM))
    pos = data.index(b"\xa1\x01\x01")  # protected {1: 1}
    data[pos + 2] = 0x03  # A256GCM: key length no longer fits the wrapped key
    with pytest.raises(DecryptionError):
        decrypt(bytes(data), key)


def test_partial_iv_and_bad_iv() -> None:
    key = CoseKey.generate(Algorithm.A128GCM)
    bad_iv = cbor.encode(cbor.CBORTag(16, [cbor.encode({1: 1}), {5: b"short"}, b"x" * 20]))
    with pytest.raises(ValidationError):
        decrypt(bad_iv, key)
    partial = cbor.encode(cbor.CBORTag(16, [cbor.encode({1: 1}), {6: b"\x01"}, b"x" * 20]))
    with pytest.raises(UnsupportedAlgorithmError):
        decrypt(partial, key)
    not_content = cbor.encode(cbor.CBORTag(16, [cbor.encode({1: -7}), {5: b"\x00" * 12}, b"x" * 20]))
    with pytest.raises(UnsupportedAlgorithmError):
        decrypt(not_content, key)


def _gcm_encrypt_with(recipients: list[list[Any]], cek: bytes, plaintext: bytes = b"pt") -> bytes:
    """A COSE_Encrypt built by hand around the given recipient arrays (A128GCM, fixed IV)."""
    prot = cbor.encode({1: 1})
    iv = b"\x07" * 12
    ct = AESGCM(cek).encrypt(iv, plaintext, enc_structure(CTX_ENCRYPT, prot, b""))
    return cbor.encode(cbor.CBORTag(96, [prot, {5: iv}, ct, recipients]))


def test_recipient_selection_and_malformed_recipients() -> None:
    cek = b"c" * 16
    kek = CoseKey.symmetric(b"k" * 16, kid=b"good", alg=Algorithm.A128KW)
    good = [b"", {1: -3, 4: b"good"}, aes_key_wrap(kek.key, cek)]  # type: ignore[arg-type]
    # a broken recipient before a good one does not block decryption
    assert decrypt(_gcm_encrypt_with([[b"", {1: -3, 4: b"good"}, b"\x00" * 24], good], cek), kek) == b"pt"
    assert decrypt(_gcm_encrypt_with([[b"", {1: -999}, b""], good], cek), kek) == b"pt"
    assert decrypt(_gcm_encrypt_with([[b"", {4: b"x"}, b""], good], cek), kek) == b"pt"
    with pytest.raises(DecryptionError, match="kid"):  # the recipient names another key
        decrypt(_gcm_encrypt_with([[b"", {1: -3, 4: b"other"}, b"w" * 24]], cek), kek)
    with pytest.raises(DecodeError):  # AES-KW recipients must not have protected headers
        decrypt(_gcm_encrypt_with([[cbor.encode({1: -3}), {4: b"good"}, b"w" * 24]], cek), kek)
    with pytest.raises(DecodeError):
        decrypt(_gcm_encrypt_with([[b"", {1: -3, 4: b"good"}, None]], cek), kek)
    with pytest.raises(UnsupportedAlgorithmError, match="multi-level"):
        decrypt(_gcm_encrypt_with([[b"", {1: -3, 4: b"good"}, b"w" * 24, [good]]], cek), kek)
    direct = CoseKey.symmetric(cek, kid=b"d")
    with pytest.raises(DecodeError):
        decrypt(_gcm_encrypt_with([[cbor.encode({1: -6}), {4: b"d"}, b""]], cek), direct)
    assert decrypt(_gcm_encrypt_with([[b"", {1: -6, 4: b"d"}, b""]], cek), direct) == b"pt"
    dev = CoseKey(CoseKey.generate(Algorithm.ECDH_ES_A128KW).key, kid=b"dev")
    with pytest.raises(DecodeError, match="ephemeral"):
        decrypt(_gcm_encrypt_with([[cbor.encode({1: -29}), {4: b"dev"}, b"w" * 24]], cek), dev)
    with pytest.raises(DecodeError, match="ephemeral"):
        decrypt(_gcm_encrypt_with([[cbor.encode({1: -29}), {-1: {1: 2, -1: 1}}, b"w" * 24]], cek), dev)
    p384 = CoseKey(CoseKey.generate(Algorithm.ES384).key).public().to_cose_key()
    with pytest.raises(DecryptionError, match="curve"):
        decrypt(_gcm_encrypt_with([[cbor.encode({1: -29}), {-1: p384}, b"w" * 24]], cek), dev)
    with pytest.raises(DecodeError):
        decrypt(cbor.encode(cbor.CBORTag(96, [b"", {}, b"", []])), kek)  # no recipients


def test_untagged_and_kid_mismatch() -> None:
    key = CoseKey.generate(Algorithm.A128GCM, kid=b"k1")
    untagged = encrypt0(b"u", key, tag=False)
    assert untagged[0] == 0x83 and decrypt(untagged, key) == b"u"
    with pytest.raises(DecryptionError, match="kid"):
        decrypt(untagged, CoseKey.generate(Algorithm.A128GCM, kid=b"k2"))
    kek = CoseKey.generate(Algorithm.A128KW, kid=b"kw")
    untagged4 = encrypt(b"u", [kek], tag=False)
    assert untagged4[0] == 0x84 and decrypt(untagged4, kek) == b"u"
    with pytest.raises(DecodeError):
        decrypt(cbor.encode(cbor.CBORTag(18, [b"", {}, b"", b""])), kek)
    with pytest.raises(DecodeError):
        decrypt(cbor.encode([b"", {}]), kek)
