"""IMA file signatures: real evmctl signatures (Keylime's test vectors) and signatures made here."""

from __future__ import annotations

import base64
import datetime
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID
from ima_lines import sig_line

from veritee import ima
from veritee.errors import (
    EncodeError,
    KeyFormatError,
    SignatureError,
    UnsupportedAlgorithmError,
    UntrustedSignerError,
)
from veritee.ima import ImaSignature, ImaSignatureError, ImaSignatureFormatError, KernelHashAlgo, XattrType

# keylime/keylime keylime/ima/ima_test.py: SIGNATURES (1st RSA-2048, 2nd ECDSA secp256k1) and the keys' SPKI DER
# with key ids 4081397027 (0xf3452d23) and 1394556965 (0x531f4025).
KEYLIME_SIGNED = (
    "10 1e70a3e1af66f42826ad63b761b4cb9c4df195e1 ima-sig "
    "sha256:d33d5d13792292e202dbf69a6f1b07bc8a02f01424db8489ba7bb7d43c0290ef /usr/bin/dd "
    "030204f3452d2301009dd340c852f37e35748363586939d4199b6684be27e7c1236ca1528f708372ed9cd52a0d991f66448790f5616ed5"
    "bd7f9bbd22193b1e3e54f6bf29a1497945a34d1b418b24f4cbeaef897bf3cebca27065ebb8761b46bc2662fe76f141245b9186a5ac8493c7"
    "f4976cf0d6dfc085c3e503e3f771bc3ccb121230db76fd8aba4f45f060ad64ab3afd99b4e52824b9eba12e93e46f9dcb2fa01d9cef89f298"
    "a0da02a82a4fb56924afd3e3c277a1302d99f770d488449df2d43eb5b174a0a528827e6877b965c2f0b7c89cf1aa26a7417a892df4c2294e"
    "2872d62748b72ea04ecb0689b5d792e615a9bf9d56f6e0f298560bf9441df0a22729c5f23389f028c25f\n"
    "10 5d4d5141ccd5066d50dc3f21d79ba02fedc24256 ima-sig "
    "sha256:b8ae0b8dd04a5935cd8165aa2260cd11b658bd71629bdb52256a675a1f73907b /usr/bin/zmore "
    "030204531f402500483046022100fe24678d21083ead47660e1a2d553a592d777c478d1b0466de6ed484b54956b3022100cad3adb37f277b"
    "bb03544d6107751b4cd4f2289d8353fa36257400a99334d5c3\n"
)
KEYLIME_RSA_SPKI = (
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA1cD7bW5tX5qIVgWskS5tzY+XpqWzcW6HFq5npj8dHFIWsAJJCUdoSU631hkyY8HP/RfX"
    "DPq/J4IeKvx35EVXj49t1Z1FTJBgUlEbkKvqm0rY6jo7PnJ6BsDRrauXtiEXVKNXcWXDk8ES+9v9Cz26BJYAr+5Xgm2aEyAbj8GhicxUZfsjDm8e"
    "J7ZnQKuhF7jejG5dYAYxnBVu99bQJHI5Fsu3dAjGbys9v7ToNbonS+1bJXdHyEE0swhxBOPvvV6vx5CzRNw1Sou3rT19T4j8wpsFOyYXVcbbRVBA"
    "mBE2Qy2UHvojFqaJN/A9lztllyER1S5heGG6CxK3GoR6pkOXAQIDAQAB"
)
KEYLIME_EC_SPKI = (
    "MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEnNH3Y/xOTwRRd8D6hpodRLnVx71qDTLvJHouno7nU7JSzcXWN1PxK+HQEh1V7sMdwBER4KFK"
    "E635JTv6C+BRBg=="
)


def _load(spki_b64: str) -> ima.signature.PublicKey:
    key = serialization.load_der_public_key(base64.b64decode(spki_b64))
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    return key


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _sign(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, digest: bytes, algo: KernelHashAlgo) -> bytes:
    """An evmctl-style signature v2 over ``digest``."""
    chosen: hashes.HashAlgorithm = {KernelHashAlgo.SHA256: hashes.SHA256(), KernelHashAlgo.SHA512: hashes.SHA512()}[
        algo
    ]
    if isinstance(key, rsa.RSAPrivateKey):
        raw = key.sign(digest, padding.PKCS1v15(), Prehashed(chosen))
    else:
        raw = key.sign(digest, ec.ECDSA(Prehashed(chosen)))
    return ImaSignature(XattrType.EVM_IMA_XATTR_DIGSIG, 2, algo, ima.key_id(key.public_key()), raw).encode()


def test_keylime_rsa_and_ecdsa_signatures_verify() -> None:
    rsa_pub, ec_pub = _load(KEYLIME_RSA_SPKI), _load(KEYLIME_EC_SPKI)
    assert ima.key_id(rsa_pub) == (4081397027).to_bytes(4, "big")
    assert ima.key_id(ec_pub) == (1394556965).to_bytes(4, "big")
    signed_rsa, signed_ec = ima.parse(KEYLIME_SIGNED)
    keyring = {4081397027: rsa_pub, 1394556965: ec_pub}
    first = ima.verify_entry(signed_rsa, keyring)
    assert (first.hash_algo, first.key_id.hex(), len(first.signature)) == (KernelHashAlgo.SHA256, "f3452d23", 256)
    second = ima.verify_entry(signed_ec, keyring)
    assert second.key_id_int == 1394556965
    # Keys by their 4 id bytes work too; a keyring without the EC key cannot vouch for the second entry.
    ima.verify_entry(signed_rsa, {ima.key_id(rsa_pub): rsa_pub})
    with pytest.raises(UntrustedSignerError, match=r"line 1 .*531f4025"):
        ima.verify_entry(signed_ec, {4081397027: rsa_pub})
    # The other key under the right id does not verify.
    with pytest.raises(ImaSignatureError, match="does not verify"):
        ima.verify_entry(signed_ec, {1394556965: rsa_pub})
    assert hashlib.sha1(signed_rsa.template_data).digest() == signed_rsa.template_hash


@pytest.mark.parametrize("which", ["rsa", "ec"])
@pytest.mark.parametrize("algo", [KernelHashAlgo.SHA256, KernelHashAlgo.SHA512])
def test_generated_signature_good_and_bad(
    which: str, algo: KernelHashAlgo, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    key = rsa_key if which == "rsa" else ec_key
    content = b"#!/bin/sh\necho hello\n"
    name = algo.kernel_name
    digest = hashlib.new(name, content).digest()
    signature = _sign(key, digest, algo)
    keyring = {ima.key_id(key.public_key()): key.public_key()}
    good = ima.parse(sig_line(name, digest, "/usr/bin/hello", signature))[0]
    assert ima.verify_entry(good, keyring).hash_algo is algo
    assert ima.replay([good], banks=[ima.DEFAULT_BANKS[1]])  # the line's template hash checks out
    # A file that changed after signing: the logged digest is not the signed one.
    other = hashlib.new(name, content + b"rm -rf /\n").digest()
    tampered = ima.parse(sig_line(name, other, "/usr/bin/hello", signature))[0]
    with pytest.raises(ImaSignatureError, match=r"line 0 .*does not verify") as caught:
        ima.verify_entry(tampered, keyring)
    assert isinstance(caught.value, SignatureError)
    # A corrupted signature byte.
    broken = bytearray(signature)
    broken[-1] ^= 0x01
    with pytest.raises(ImaSignatureError):
        ima.verify_signature(bytes(broken), digest, name, keyring)


def test_signature_hash_must_match_the_measured_digest(rsa_key: rsa.RSAPrivateKey) -> None:
    digest = hashlib.sha256(b"x").digest()
    signature = _sign(rsa_key, digest, KernelHashAlgo.SHA256)
    keyring = {ima.key_id(rsa_key.public_key()): rsa_key.public_key()}
    with pytest.raises(ImaSignatureError, match="over a sha256 digest but the measured digest is sha1"):
        ima.verify_signature(signature, hashlib.sha1(b"x").digest(), "sha1", keyring)
    with pytest.raises(ImaSignatureError, match="has 20 bytes"):
        ima.verify_signature(signature, digest[:20], "sha256", keyring)


def test_entry_without_signature(rsa_key: rsa.RSAPrivateKey) -> None:
    (entry,) = ima.parse(sig_line("sha256", b"\x01" * 32, "/unsigned", b""))
    with pytest.raises(ImaSignatureError, match="carries no file signature"):
        ima.verify_entry(entry, {})


def test_parse_signature_errors() -> None:
    header = bytes([3, 2, 4]) + b"\x01\x02\x03\x04"
    assert ima.parse_signature(header + b"\x00\x02ab").signature == b"ab"
    with pytest.raises(ImaSignatureFormatError, match="no type"):
        ima.parse_signature(b"\x03")
    with pytest.raises(ImaSignatureFormatError, match=r"unknown security\.ima type 0x09"):
        ima.parse_signature(b"\x09\x02")
    with pytest.raises(UnsupportedAlgorithmError, match="EVM_XATTR_PORTABLE_DIGSIG"):
        ima.parse_signature(b"\x05\x02" + bytes(10))
    with pytest.raises(UnsupportedAlgorithmError, match="version 3"):
        ima.parse_signature(b"\x03\x03" + bytes(10))
    with pytest.raises(ImaSignatureFormatError, match="needs 9 bytes"):
        ima.parse_signature(header)
    with pytest.raises(ImaSignatureFormatError, match="announces 3 signature bytes, 2 follow"):
        ima.parse_signature(header + b"\x00\x03ab")
    with pytest.raises(ImaSignatureFormatError, match="empty"):
        ima.parse_signature(header + b"\x00\x00")
    with pytest.raises(UnsupportedAlgorithmError, match="hash algorithm 99"):
        ima.parse_signature(bytes([3, 2, 99]) + b"\x01\x02\x03\x04\x00\x01a")
    with pytest.raises(UnsupportedAlgorithmError, match="md5"):
        ima.verify_signature(bytes([3, 2, 1]) + b"\x01\x02\x03\x04\x00\x01a", bytes(16), "md5", {})
    with pytest.raises(EncodeError):
        ImaSignature(XattrType.EVM_IMA_XATTR_DIGSIG, 2, KernelHashAlgo.SHA256, b"\x01", b"x").encode()


def test_signature_round_trip_and_kernel_names() -> None:
    sig = ImaSignature(XattrType.EVM_IMA_XATTR_DIGSIG, 2, KernelHashAlgo.SHA3_256, b"\xaa\xbb\xcc\xdd", b"\x01" * 70)
    assert ima.parse_signature(sig.encode()) == sig
    assert sig.key_id_int == 0xAABBCCDD
    assert {algo.kernel_name for algo in KernelHashAlgo} <= set(ima.KERNEL_HASH_SIZES)


def test_wrong_key_types(rsa_key: rsa.RSAPrivateKey) -> None:
    ed = ed25519.Ed25519PrivateKey.generate().public_key()
    with pytest.raises(KeyFormatError):
        ima.key_id(ed)  # type: ignore[arg-type]
    digest = hashlib.sha256(b"y").digest()
    signature = _sign(rsa_key, digest, KernelHashAlgo.SHA256)
    with pytest.raises(KeyFormatError, match="Ed25519"):
        ima.verify_signature(signature, digest, "sha256", {ima.key_id(rsa_key.public_key()): ed})  # type: ignore[arg-type]


def test_key_id_from_certificate(ec_key: ec.EllipticCurvePrivateKey) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ima signer")])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(ec_key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    plain = builder.sign(ec_key, hashes.SHA256())
    assert ima.key_id_from_certificate(plain) == ima.key_id(ec_key.public_key())
    custom_ski = x509.SubjectKeyIdentifier(b"\x01\x02\x03\x04\x05\x06\x07\x08")
    with_ski = builder.add_extension(custom_ski, critical=False).sign(ec_key, hashes.SHA256())
    assert ima.key_id_from_certificate(with_ski) == b"\x05\x06\x07\x08"
