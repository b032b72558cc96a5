"""Software MakeCredential without any TPM: KDF vectors, a peer ActivateCredential in `cryptography`, bad input."""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Callable

import pytest
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFHMAC, CounterLocation, Mode
from hypothesis import given, settings
from hypothesis import strategies as st

from veritee.errors import DecodeError, KeyFormatError, UnsupportedAlgorithmError, ValidationError
from veritee.tpm.alg import HashAlg
from veritee.tpm.credential import kdfa, kdfe, make_credential, parse_encryption_key
from veritee.tpm.device import parse_selection

TYPED = (DecodeError, KeyFormatError, UnsupportedAlgorithmError, ValidationError)
STORAGE_ATTRS = 0x00000002 | 0x00000010 | 0x00000020 | 0x00000080 | 0x00010000 | 0x00020000
HASHES = {HashAlg.SHA1: hashes.SHA1(), HashAlg.SHA256: hashes.SHA256(), HashAlg.SHA384: hashes.SHA384()}
HASHES[HashAlg.SHA512] = hashes.SHA512()
AK_NAME = b"\x00\x0b" + bytes(range(32))

# libtpms KdfTestData.h (the TPM's own KDFa self-test): key, label, contextU, contextV, 160 bits
KDF_KEY = bytes.fromhex("271fa08bbdc5060ec3dfa928ff9b73123a12da0c")
KDF_LABEL = b"KDFSELFTESTLABEL\x00"
KDF_U, KDF_V = bytes.fromhex("ce244f395dca7391"), bytes.fromhex("da504031ddf12e83")
KDF_OUT = {
    HashAlg.SHA1: "55b5a7184aa07423c47dae766c26a2377d7cf851",
    HashAlg.SHA256: "bb0259e1c8ba607e6a2cd704b69a902e9ade84c4",
    HashAlg.SHA384: "1dce70c9113eb2dba47bd9cfc72bf46f45b09312",
    HashAlg.SHA512: "8be2c1b85b78569b9fa759f5857c56d684810fd3",
}


def tpm2b(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def storage_public(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, name_alg: int, sym_bits: int) -> bytes:
    """A TPM2B_PUBLIC for a restricted decryption key, marshaled by hand (independent of the code under test)."""
    head = struct.pack(">HHI", 0x0001 if isinstance(key, rsa.RSAPrivateKey) else 0x0023, name_alg, STORAGE_ATTRS)
    head += tpm2b(b"\x00" * (32 if name_alg == 0x000B else 48))
    head += struct.pack(">HHHH", 0x0006, sym_bits, 0x0043, 0x0010)  # AES-n-CFB, scheme NULL
    if isinstance(key, rsa.RSAPrivateKey):
        n = key.public_key().public_numbers().n
        body = struct.pack(">HI", key.key_size, 0) + tpm2b(n.to_bytes(key.key_size // 8, "big"))
    else:
        size = (key.curve.key_size + 7) // 8
        curve = {256: 0x0003, 384: 0x0004}[key.curve.key_size]
        nums = key.public_key().public_numbers()
        body = (
            struct.pack(">HH", curve, 0x0010)
            + tpm2b(nums.x.to_bytes(size, "big"))
            + tpm2b(nums.y.to_bytes(size, "big"))
        )
    return tpm2b(head + body)


def peer_activate(
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    alg: HashAlg,
    sym_bits: int,
    name: bytes,
    blob: bytes,
    secret: bytes,
) -> bytes:
    """ActivateCredential in software with cryptography's own KDFs (TPM 2.0 Part 1 §24)."""
    h = HASHES[alg]
    encrypted = secret[2:]
    assert struct.unpack(">H", secret[:2])[0] == len(encrypted)
    if isinstance(key, rsa.RSAPrivateKey):
        seed = key.decrypt(encrypted, padding.OAEP(padding.MGF1(h), h, b"IDENTITY\x00"))
    else:
        size = (key.curve.key_size + 7) // 8
        xlen = struct.unpack(">H", encrypted[:2])[0]
        ex = encrypted[2 : 2 + xlen]
        ey = encrypted[4 + xlen :]
        point = ec.EllipticCurvePublicNumbers(int.from_bytes(ex, "big"), int.from_bytes(ey, "big"), key.curve)
        z = key.exchange(ec.ECDH(), point.public_key())
        own_x = key.public_key().public_numbers().x.to_bytes(size, "big")
        seed = ConcatKDFHash(h, alg.digest_size, b"IDENTITY\x00" + ex + own_x).derive(z)

    def kbkdf(label: bytes, context: bytes, length: int) -> bytes:  # label || 0x00 || context || [L]32
        kdf = KBKDFHMAC(h, Mode.CounterMode, length, 4, 4, CounterLocation.BeforeFixed, label, context, None)
        return kdf.derive(seed)

    assert struct.unpack(">H", blob[:2])[0] == len(blob) - 2
    hmac_len = struct.unpack(">H", blob[2:4])[0]
    outer, enc_identity = blob[4 : 4 + hmac_len], blob[4 + hmac_len :]
    hmac_key = kbkdf(b"INTEGRITY", b"", alg.digest_size)
    if not hmac.compare_digest(hmac.digest(hmac_key, enc_identity + name, h.name), outer):
        raise ValueError("integrity check failed")
    sym_key = kbkdf(b"STORAGE", name, sym_bits // 8)
    decryptor = Cipher(algorithms.AES(sym_key), CFB(b"\x00" * 16)).decryptor()
    plain = decryptor.update(enc_identity) + decryptor.finalize()
    assert struct.unpack(">H", plain[:2])[0] == len(plain) - 2
    return plain[2:]


@pytest.mark.parametrize("alg", list(KDF_OUT))
def test_kdfa_matches_the_libtpms_self_test_vector(alg: HashAlg) -> None:
    assert kdfa(alg, KDF_KEY, KDF_LABEL, KDF_U, KDF_V, 160).hex() == KDF_OUT[alg]
    assert kdfa(alg, KDF_KEY, KDF_LABEL[:-1], KDF_U, KDF_V, 160).hex() == KDF_OUT[alg]  # NUL added if missing


@settings(max_examples=50, deadline=None)
@given(
    alg=st.sampled_from(list(HASHES)),
    key=st.binary(min_size=1, max_size=80),
    label=st.binary(max_size=20).filter(lambda b: b"\x00" not in b),
    u=st.binary(max_size=40),
    v=st.binary(max_size=40),
    nbytes=st.integers(min_value=1, max_value=100),
)
def test_kdfs_agree_with_cryptography(alg: HashAlg, key: bytes, label: bytes, u: bytes, v: bytes, nbytes: int) -> None:
    h = HASHES[alg]
    # cryptography's KBKDF puts the 0x00 separator between label and context itself
    peer = KBKDFHMAC(h, Mode.CounterMode, nbytes, 4, 4, CounterLocation.BeforeFixed, label, u + v, None)
    assert kdfa(alg, key, label, u, v, nbytes * 8) == peer.derive(key)
    assert kdfe(alg, key, label, u, v, nbytes * 8) == ConcatKDFHash(h, nbytes, label + b"\x00" + u + v).derive(key)


def test_kdf_rejects_partial_bytes() -> None:
    with pytest.raises(ValidationError):
        kdfa(HashAlg.SHA256, b"k", b"L", b"", b"", 12)
    with pytest.raises(ValidationError):
        kdfe(HashAlg.SHA256, b"z", b"L", b"", b"", 0)


@pytest.mark.parametrize(
    ("make_key", "name_alg", "sym_bits"),
    [
        (lambda: rsa.generate_private_key(65537, 2048), HashAlg.SHA256, 128),
        (lambda: ec.generate_private_key(ec.SECP384R1()), HashAlg.SHA384, 256),
        (lambda: ec.generate_private_key(ec.SECP256R1()), HashAlg.SHA256, 128),
    ],
    ids=["rsa2048", "p384", "p256"],
)
def test_peer_activation_recovers_the_secret(
    make_key: Callable[[], rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey], name_alg: HashAlg, sym_bits: int
) -> None:
    key = make_key()
    public = storage_public(key, int(name_alg), sym_bits)
    parsed = parse_encryption_key(public)
    assert (parsed.name_alg, parsed.symmetric_bits) == (name_alg, sym_bits)
    assert parsed.key == key.public_key()
    secret = os.urandom(name_alg.digest_size)
    blob, encrypted = make_credential(public, AK_NAME, secret)
    assert len(blob) == 2 + 2 + name_alg.digest_size + 2 + len(secret)
    assert peer_activate(key, name_alg, sym_bits, AK_NAME, blob, encrypted) == secret
    other_name = AK_NAME[:-1] + b"\xff"
    with pytest.raises(ValueError, match="integrity"):
        peer_activate(key, name_alg, sym_bits, other_name, blob, encrypted)
    again = make_credential(public, AK_NAME, secret)
    assert again != (blob, encrypted)  # a fresh seed every time


def _rsa_public() -> bytes:
    return storage_public(rsa.generate_private_key(65537, 2048), 0x000B, 128)


RSA_PUBLIC = _rsa_public()


def test_credential_input_validation() -> None:
    with pytest.raises(ValidationError):
        make_credential(RSA_PUBLIC, AK_NAME, b"")
    with pytest.raises(ValidationError):
        make_credential(RSA_PUBLIC, AK_NAME, b"x" * 33)
    with pytest.raises(ValidationError):
        make_credential(RSA_PUBLIC, AK_NAME[:-1], b"x")
    with pytest.raises(ValidationError):
        make_credential(RSA_PUBLIC, b"\x00", b"x")
    with pytest.raises(UnsupportedAlgorithmError):
        make_credential(RSA_PUBLIC, b"\x12\x34" + bytes(32), b"x")


def _patched(public: bytes, offset: int, value: bytes) -> bytes:
    return public[:offset] + value + public[offset + len(value) :]


def test_unusable_keys_are_rejected() -> None:
    signing = _patched(RSA_PUBLIC, 6, struct.pack(">I", STORAGE_ATTRS ^ 0x00020000 | 0x00040000))
    with pytest.raises(KeyFormatError):
        parse_encryption_key(signing)
    policy_end = 2 + 8 + 2 + 32
    with pytest.raises(UnsupportedAlgorithmError):
        parse_encryption_key(_patched(RSA_PUBLIC, policy_end, b"\x00\x25"))  # symmetric = SM4
    with pytest.raises(UnsupportedAlgorithmError):
        parse_encryption_key(_patched(RSA_PUBLIC, policy_end + 4, b"\x00\x44"))  # mode = OFB
    with pytest.raises(KeyFormatError):
        parse_encryption_key(_patched(RSA_PUBLIC, policy_end + 6, b"\x00\x14"))  # scheme = RSASSA
    with pytest.raises(UnsupportedAlgorithmError):
        parse_encryption_key(_patched(RSA_PUBLIC, 2, b"\x00\x08"))  # type = KEYEDHASH
    p384 = storage_public(ec.generate_private_key(ec.SECP384R1()), 0x000C, 256)
    curve_offset = 2 + 8 + 2 + 48 + 8
    assert p384[curve_offset : curve_offset + 2] == b"\x00\x04"
    with pytest.raises(UnsupportedAlgorithmError):
        parse_encryption_key(_patched(p384, curve_offset, b"\x00\x20"))  # curve id 0x0020
    with pytest.raises(DecodeError) as excinfo:
        parse_encryption_key(RSA_PUBLIC[:-10])
    assert excinfo.value.offset is not None
    with pytest.raises(DecodeError):
        parse_encryption_key(RSA_PUBLIC + b"\x00")


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400))
def test_random_bytes_only_raise_typed_errors(data: bytes) -> None:
    with pytest.raises(TYPED):
        make_credential(data, AK_NAME, b"secret")


@settings(max_examples=300, deadline=None)
@given(position=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255), cut=st.integers(0, 3))
def test_mutated_ek_publics_only_raise_typed_errors(position: int, value: int, cut: int) -> None:
    mutated = bytearray(RSA_PUBLIC[: len(RSA_PUBLIC) - cut])
    mutated[position % len(mutated)] = value
    try:
        blob, encrypted = make_credential(bytes(mutated), AK_NAME, b"secret")
    except TYPED:
        return
    assert blob and encrypted


@settings(max_examples=200, deadline=None)
@given(
    selection=st.dictionaries(
        st.sampled_from(["sha1", "sha256", "SHA-256", "sha384", "md5", ""]),
        st.lists(st.integers(min_value=-3, max_value=30), max_size=6),
        max_size=3,
    )
)
def test_pcr_selection_is_validated(selection: dict[str, list[int]]) -> None:
    try:
        parsed = parse_selection(selection)
    except (ValidationError, UnsupportedAlgorithmError):
        return
    assert parsed and all(pcrs == sorted(set(pcrs)) and pcrs[0] >= 0 and pcrs[-1] <= 23 for _, pcrs in parsed)
