"""CoseKey: PEM and COSE_Key loading, export, generation, algorithm checks, thumbprints."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.x509.oid import NameOID

from veritee import cbor
from veritee.cose import AlgKind, Algorithm, CoseKey, Curve, KeyType
from veritee.errors import DecodeError, KeyFormatError, UnsupportedAlgorithmError

EC_CURVES = [(ec.SECP256R1(), Curve.P256), (ec.SECP384R1(), Curve.P384), (ec.SECP521R1(), Curve.P521)]


@pytest.mark.parametrize(("curve", "crv"), EC_CURVES, ids=lambda c: getattr(c, "name", ""))
def test_ec_cose_key_round_trip(curve: ec.EllipticCurve, crv: Curve) -> None:
    priv = ec.generate_private_key(curve)
    key = CoseKey(priv, kid=b"k1", alg=None)
    assert key.kty is KeyType.EC2 and key.crv is crv and key.is_private
    full = key.to_cose_key(private=True)
    assert list(full) == [1, 2, -1, -2, -3, -4]
    assert len(full[-2]) == len(full[-3]) == len(full[-4]) == crv.coordinate_size
    again = CoseKey.from_cose_key(cbor.encode(full))
    assert again.to_cose_key(private=True) == full
    pub = CoseKey.from_cose_key(key.to_cose_key())
    assert not pub.is_private and pub.public() is pub
    assert pub == key.public()
    assert pub.thumbprint() == key.thumbprint() == CoseKey(priv).thumbprint()  # kid is not a required member
    # compressed point form (y as a sign bit)
    nums = priv.public_key().public_numbers()
    compressed = CoseKey.from_cose_key({1: 2, -1: crv.value, -2: full[-2], -3: bool(nums.y & 1)})
    assert compressed.to_cose_key() == CoseKey(pub.key).to_cose_key()
    pem = priv.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert CoseKey.from_pem(pem).thumbprint() == key.thumbprint()
    pub_pem = priv.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert not CoseKey.from_pem(pub_pem).is_private


def test_okp_keys() -> None:
    ed = CoseKey(ed25519.Ed25519PrivateKey.generate())
    assert ed.kty is KeyType.OKP and ed.crv is Curve.Ed25519
    exported = ed.to_cose_key(private=True)
    assert list(exported) == [1, -1, -2, -4]
    assert CoseKey.from_cose_key(exported).to_cose_key(private=True) == exported
    # an OKP private key without x is accepted (x derived)
    assert CoseKey.from_cose_key({1: 1, -1: 6, -4: exported[-4]}).to_cose_key() == ed.to_cose_key()
    xk = CoseKey(x25519.X25519PrivateKey.generate())
    assert xk.crv is Curve.X25519
    assert CoseKey.from_cose_key(xk.public().to_cose_key()).thumbprint() == xk.thumbprint()
    with pytest.raises(KeyFormatError):
        CoseKey.from_cose_key({1: 1, -1: 6, -2: ed.to_cose_key()[-2], -4: b"\x01" * 32})  # d does not match x


def test_symmetric_keys() -> None:
    key = CoseKey.symmetric(b"\x01" * 16, kid=b"s", alg=Algorithm.A128KW)
    assert key.to_cose_key(private=True) == {1: 4, 2: b"s", 3: -3, -1: b"\x01" * 16}
    assert CoseKey.from_cose_key(key.to_cose_key(private=True)) == key
    with pytest.raises(KeyFormatError):
        key.to_cose_key()
    with pytest.raises(KeyFormatError):
        key.public()
    with pytest.raises(KeyFormatError):
        _ = key.public_key
    with pytest.raises(KeyFormatError):
        CoseKey.symmetric(b"")
    with pytest.raises(UnsupportedAlgorithmError):
        CoseKey.symmetric(b"\x01" * 15, alg=Algorithm.A128KW)
    # RFC 9679 §4: symmetric thumbprint over kty and k
    expected = hashes.Hash(hashes.SHA256())
    expected.update(bytes.fromhex("a2010420") + b"\x50" + b"\x01" * 16)
    assert key.thumbprint() == expected.finalize()
    assert len(key.thumbprint(hashes.SHA512())) == 64


@pytest.mark.parametrize("alg", [a for a in Algorithm if a is not Algorithm.direct], ids=lambda a: a.name)
def test_generate_suits_the_algorithm(alg: Algorithm) -> None:
    key = CoseKey.generate(alg, kid=b"g")
    key.check_alg(alg)
    assert key.alg is alg and key.kid == b"g"
    if alg.kind in (AlgKind.MAC, AlgKind.KEY_WRAP, AlgKind.CONTENT):
        assert isinstance(key.key, bytes) and len(key.key) == alg.key_size


def test_generate_direct_and_unknown() -> None:
    with pytest.raises(UnsupportedAlgorithmError):
        CoseKey.generate(Algorithm.direct)
    with pytest.raises(UnsupportedAlgorithmError):
        CoseKey.generate(-12345)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedAlgorithmError):
        Algorithm.from_id(True)
    with pytest.raises(UnsupportedAlgorithmError):
        Algorithm.from_id("ES256")


def test_check_alg_matrix() -> None:
    p256 = CoseKey.generate(Algorithm.ECDH_ES_A128KW)
    p256 = CoseKey(p256.key)
    p384 = CoseKey(ec.generate_private_key(ec.SECP384R1()))
    ed = CoseKey(ed25519.Ed25519PrivateKey.generate())
    for alg in (Algorithm.ES256, Algorithm.ESP256, Algorithm.ECDH_ES_HKDF_256, Algorithm.ECDH_ES_A256KW):
        p256.check_alg(alg)
    for alg in (Algorithm.ES384, Algorithm.EdDSA, Algorithm.Ed25519, Algorithm.HMAC_256_256, Algorithm.A128GCM):
        with pytest.raises(UnsupportedAlgorithmError):
            p256.check_alg(alg)
    p384.check_alg(Algorithm.ESP384)
    ed.check_alg(Algorithm.EdDSA)
    ed.check_alg(Algorithm.Ed25519)
    for alg in (Algorithm.ES256, Algorithm.ECDH_ES_A128KW):
        with pytest.raises(UnsupportedAlgorithmError):
            ed.check_alg(alg)
    assert p256.default_alg() is Algorithm.ESP256 and p384.default_alg() is Algorithm.ESP384
    assert ed.default_alg() is Algorithm.Ed25519
    with pytest.raises(UnsupportedAlgorithmError):
        CoseKey(x25519.X25519PrivateKey.generate()).default_alg()
    with pytest.raises(UnsupportedAlgorithmError):
        Algorithm.ES256.key_size  # noqa: B018


@pytest.mark.parametrize(
    "bad",
    [
        {1: 2, -1: 1, -2: b"\x00" * 32, -3: b"\x00" * 32},  # not on the curve
        {1: 2, -1: 1, -2: b"\x01" * 31, -3: b"\x01" * 32},  # short x
        {1: 2, -1: 1, -2: b"\x01" * 32},  # no y
        {1: 2, -1: 9, -2: b"\x01" * 32, -3: b"\x01" * 32},  # unknown curve
        {1: 2, -1: True, -2: b"\x01" * 32, -3: b"\x01" * 32},
        {1: 1, -1: 4},  # X25519 without x or d
        {1: 1, -1: 7, -2: b"\x01" * 57},  # Ed448 unsupported
        {1: 3},  # RSA unsupported
        {},
        {1: 4},  # symmetric without k
        {1: 4, -1: "text"},
        {1: 4, -1: b"k", 2: "kid-as-text"},
    ],
)
def test_invalid_cose_keys(bad: dict[int, object]) -> None:
    with pytest.raises(KeyFormatError):
        CoseKey.from_cose_key(bad)


def test_cose_key_other_failures() -> None:
    with pytest.raises(KeyFormatError):
        CoseKey.from_cose_key(cbor.encode([1, 2]))
    with pytest.raises(DecodeError):
        CoseKey.from_cose_key(b"\xa1\x01")
    with pytest.raises(UnsupportedAlgorithmError):
        CoseKey.from_cose_key({1: 4, -1: b"k" * 16, 3: -999})
    priv = ec.generate_private_key(ec.SECP256R1())
    full = CoseKey(priv).to_cose_key(private=True)
    full[-4] = (int.from_bytes(full[-4], "big") ^ 1).to_bytes(32, "big")
    with pytest.raises(KeyFormatError, match="does not match"):
        CoseKey.from_cose_key(full)


def test_pem_failures_and_certificates() -> None:
    with pytest.raises(KeyFormatError):
        CoseKey.from_pem(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(KeyFormatError):
        CoseKey.from_pem("text")  # type: ignore[arg-type]
    rsa_pem = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(KeyFormatError):
        CoseKey.from_pem(rsa_pem)
    k1 = ec.generate_private_key(ec.SECP256K1())
    with pytest.raises(KeyFormatError):
        CoseKey(k1)
    with pytest.raises(KeyFormatError):
        CoseKey(b"k", kid="text")  # type: ignore[arg-type]
    priv = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tam")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(priv.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(priv, hashes.SHA256())
    )
    key = CoseKey.from_pem(cert.public_bytes(serialization.Encoding.PEM), kid=b"cert")
    assert key.thumbprint() == CoseKey(priv).thumbprint() and key.kid == b"cert"
