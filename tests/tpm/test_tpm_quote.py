"""Quote verification on real quotes (swtpm, Keylime's tpm2-tools quote, a GCP vTPM) and on software-signed ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
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

from helpers import shared_path
from veritee.errors import (
    DigestMismatchError,
    FreshnessError,
    KeyFormatError,
    SignatureError,
    UnsupportedAlgorithmError,
    UntrustedSignerError,
    ValidationError,
)
from veritee.tpm.alg import HashAlg
from veritee.tpm.attest import CertifyInfo, TpmsAttest, TpmsClockInfo
from veritee.tpm.constants import TPM_GENERATED_VALUE, Hierarchy, ObjectAttributes, TpmAlgId, TpmSt
from veritee.tpm.errors import (
    AkAttributeError,
    AttestFormatError,
    MissingPcrError,
    NonceMismatchError,
    PcrDigestMismatchError,
    QualifiedSignerError,
    SchemeMismatchError,
)
from veritee.tpm.public import RsaParms, Scheme, TpmtPublic, qualified_name
from veritee.tpm.quote import (
    ClockTransition,
    check_attest,
    check_pcr_digest,
    sign_attest,
    verify_quote,
    verify_quote_signature,
)
from veritee.tpm.signature import TpmtSignature

BUNDLES: list[Callable[[], Bundle]] = [e2e_bundle, keylime_bundle, windows_bundle]
IDS = ["e2e-swtpm", "keylime", "windows-gcp"]


@pytest.mark.parametrize("load", BUNDLES, ids=IDS)
def test_real_quotes_verify(load: Callable[[], Bundle]) -> None:
    b = load()
    verified = verify_quote(b.ak, b.attest, b.sig, b.banks, b.nonce)
    assert verified.attest.pack() == b.attest
    assert verified.clock.transition is ClockTransition.FIRST
    (bank,) = verified.pcrs
    assert verified.pcrs[bank] == {i: b.banks[bank][i] for i in verified.pcrs[bank]}


def test_real_quote_pcr_sets() -> None:
    assert list(verify_quote(*_args(e2e_bundle())).pcrs[HashAlg.SHA256]) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14]
    assert list(verify_quote(*_args(keylime_bundle())).pcrs[HashAlg.SHA256]) == [15, 16, 22]
    windows = verify_quote(*_args(windows_bundle()))
    assert windows.hash_alg is HashAlg.SHA1
    assert list(windows.pcrs) == [HashAlg.SHA1] and list(windows.pcrs[HashAlg.SHA1]) == list(range(24))


def _args(b: Bundle) -> tuple[TpmtPublic, bytes, bytes, dict[HashAlg, dict[int, bytes]], bytes]:
    return b.ak, b.attest, b.sig, b.banks, b.nonce


@pytest.mark.parametrize("load", BUNDLES, ids=IDS)
def test_wrong_nonce_is_a_freshness_error(load: Callable[[], Bundle]) -> None:
    b = load()
    for wrong in (b.nonce + b"\x00", b.nonce[:-1], b"\x01" * 20, b.nonce.hex().encode()):
        if wrong == b.nonce:
            continue
        with pytest.raises(NonceMismatchError) as exc:
            verify_quote(b.ak, b.attest, b.sig, b.banks, wrong)
        assert isinstance(exc.value, FreshnessError)


@pytest.mark.parametrize("load", BUNDLES, ids=IDS)
def test_flipped_signature_byte_is_a_signature_error(load: Callable[[], Bundle]) -> None:
    b = load()
    for position in (6, len(b.sig) // 2, len(b.sig) - 1):
        sig = bytearray(b.sig)
        sig[position] ^= 0x01
        with pytest.raises(SignatureError):
            verify_quote(b.ak, b.attest, bytes(sig), b.banks, b.nonce)


@pytest.mark.parametrize("load", BUNDLES, ids=IDS)
def test_altered_pcr_value_is_a_digest_mismatch_naming_the_selection(load: Callable[[], Bundle]) -> None:
    b = load()
    verified = verify_quote(*_args(b))
    (bank,) = verified.pcrs
    index = list(verified.pcrs[bank])[-1]
    banks = {alg: dict(values) for alg, values in b.banks.items()}
    banks[bank][index] = bytes(x ^ 0xFF for x in banks[bank][index])
    with pytest.raises(PcrDigestMismatchError) as exc:
        verify_quote(b.ak, b.attest, b.sig, banks, b.nonce)
    assert isinstance(exc.value, DigestMismatchError)
    assert exc.value.selection.startswith(bank.label + ":") and str(index) in exc.value.selection
    assert exc.value.selection in str(exc.value)


@pytest.mark.parametrize("load", BUNDLES, ids=IDS)
def test_altered_attest_byte_is_a_signature_error(load: Callable[[], Bundle]) -> None:
    b = load()
    for position in range(0, len(b.attest), 5):
        attest = bytearray(b.attest)
        attest[position] ^= 0x04
        with pytest.raises(SignatureError):
            verify_quote(b.ak, bytes(attest), b.sig, b.banks, b.nonce)


@pytest.mark.parametrize("load", BUNDLES, ids=IDS)
def test_missing_pcr_value_is_a_validation_error(load: Callable[[], Bundle]) -> None:
    b = load()
    (bank,) = verify_quote(*_args(b)).pcrs
    banks = {alg: dict(values) for alg, values in b.banks.items()}
    first = min(banks[bank])
    del banks[bank][first]
    with pytest.raises(MissingPcrError) as exc:
        verify_quote(b.ak, b.attest, b.sig, banks, b.nonce)
    assert isinstance(exc.value, ValidationError) and exc.value.index == first
    with pytest.raises(MissingPcrError):
        verify_quote(b.ak, b.attest, b.sig, {}, b.nonce)


def test_nonce_is_compared_as_exact_bytes() -> None:
    b = keylime_bundle()
    with pytest.raises(NonceMismatchError):  # the hex text of the nonce is not the nonce
        verify_quote(b.ak, b.attest, b.sig, b.banks, b"db1db298db6d60e6385b7231743e9c3056a18003")
    w = windows_bundle()
    assert w.nonce == b""
    with pytest.raises(NonceMismatchError):
        verify_quote(w.ak, w.attest, w.sig, w.banks, b"\x00")


def test_qualified_signer_check() -> None:
    b = e2e_bundle()
    ek = TpmtPublic.from_tpm2b(shared_path("tpm", "e2e-swtpm", "ek.pub").read_bytes())
    expected = qualified_name(qualified_name(Hierarchy.ENDORSEMENT, ek.name()), b.ak.name())
    verify_quote(*_args(b), expected_qualified_signer=expected)
    for wrong in (b.ak.name(), qualified_name(qualified_name(Hierarchy.OWNER, ek.name()), b.ak.name())):
        with pytest.raises(QualifiedSignerError) as exc:
            verify_quote(*_args(b), expected_qualified_signer=wrong)
        assert isinstance(exc.value, UntrustedSignerError)


def test_ak_must_be_a_restricted_signing_key() -> None:
    b = e2e_bundle()
    for attrs in (
        b.ak.object_attributes & ~ObjectAttributes.RESTRICTED,
        b.ak.object_attributes & ~ObjectAttributes.SIGN_ENCRYPT,
        b.ak.object_attributes | ObjectAttributes.DECRYPT,
    ):
        weak = dataclasses.replace(b.ak, object_attributes=ObjectAttributes(attrs), raw=b"")
        with pytest.raises(AkAttributeError) as exc:
            verify_quote(weak, b.attest, b.sig, b.banks, b.nonce)
        assert isinstance(exc.value, KeyFormatError)


def test_bare_public_key_verifies_without_attribute_checks() -> None:
    b = e2e_bundle()
    verified = verify_quote(b.ak.public_key(), b.attest, b.sig, b.banks, b.nonce)
    assert verified.hash_alg is HashAlg.SHA256
    with pytest.raises(SignatureError):  # an RSA signature against an EC key
        verify_quote(ec_key().public_key(), b.attest, b.sig, b.banks, b.nonce)


def test_signature_must_use_the_key_scheme() -> None:
    key = rsa_key()
    ak, attest, _, _ = software_quote(key)
    sig_sha1 = sign_attest(key, attest, hash_alg=HashAlg.SHA1)
    with pytest.raises(SchemeMismatchError):
        verify_quote_signature(ak, attest, sig_sha1)
    sig_pss = sign_attest(key, attest, scheme=TpmAlgId.RSAPSS)
    with pytest.raises(SchemeMismatchError):
        verify_quote_signature(ak, attest, sig_pss)
    assert isinstance(ak.parameters, RsaParms)
    any_scheme = dataclasses.replace(ak, parameters=dataclasses.replace(ak.parameters, scheme=Scheme()), raw=b"")
    assert verify_quote_signature(any_scheme, attest, sig_sha1) is HashAlg.SHA1
    assert verify_quote_signature(any_scheme, attest, sig_pss) is HashAlg.SHA256


@pytest.mark.parametrize(
    ("make_key", "scheme", "hash_alg"),
    [
        (rsa_key, TpmAlgId.RSASSA, HashAlg.SHA256),
        (rsa_key, TpmAlgId.RSASSA, HashAlg.SHA384),
        (rsa_key, TpmAlgId.RSAPSS, HashAlg.SHA256),
        (ec_key, TpmAlgId.ECDSA, HashAlg.SHA256),
        (lambda: ec_key("secp384r1"), TpmAlgId.ECDSA, HashAlg.SHA384),
        (lambda: ec_key("secp521r1"), TpmAlgId.ECDSA, HashAlg.SHA512),
    ],
)
def test_software_quotes_verify_for_every_scheme(
    make_key: Callable[[], object], scheme: TpmAlgId, hash_alg: HashAlg
) -> None:
    key = make_key()
    ak, attest, sig, _ = software_quote(key, hash_alg=hash_alg)  # type: ignore[arg-type]
    if scheme is TpmAlgId.RSAPSS:
        assert isinstance(ak.parameters, RsaParms)
        ak = dataclasses.replace(
            ak, parameters=dataclasses.replace(ak.parameters, scheme=Scheme(scheme, TpmAlgId(hash_alg))), raw=b""
        )
        sig = sign_attest(key, attest, hash_alg=hash_alg, scheme=scheme)  # type: ignore[arg-type]
    assert sig.sig_alg is scheme
    verified = verify_quote(ak, attest, sig.pack(), BANKS, b"nonce-1234")
    assert verified.hash_alg is hash_alg
    assert list(verified.pcrs[HashAlg.SHA256]) == list(SELECTION.pcrs)
    if scheme is TpmAlgId.ECDSA:
        size = (ak.public_key().curve.key_size + 7) // 8  # type: ignore[union-attr]
        assert len(sig.r) == len(sig.s) == size


def test_pss_salt_lengths_digest_and_max_are_accepted_others_are_not() -> None:
    key = rsa_key()
    ak, attest, _, _ = software_quote(key)
    assert isinstance(ak.parameters, RsaParms)
    ak = dataclasses.replace(ak, parameters=dataclasses.replace(ak.parameters, scheme=Scheme()), raw=b"")
    digest = HashAlg.SHA256.digest(attest)

    def pss(salt: int) -> TpmtSignature:
        pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt)
        return TpmtSignature(TpmAlgId.RSAPSS, HashAlg.SHA256, key.sign(digest, pad, Prehashed(hashes.SHA256())))

    verify_quote_signature(ak, attest, pss(32))
    verify_quote_signature(ak, attest, pss(256 - 32 - 2))  # the maximum for a 2048-bit key and SHA-256
    with pytest.raises(SignatureError):
        verify_quote_signature(ak, attest, pss(20))


def test_pcr_digest_uses_the_signature_hash_not_the_bank_hash() -> None:
    ak, attest, sig, _ = software_quote(rsa_key(), hash_alg=HashAlg.SHA384)
    verified = verify_quote(ak, attest, sig, BANKS, b"nonce-1234")
    assert verified.hash_alg is HashAlg.SHA384
    parsed = TpmsAttest.unpack(attest)
    assert check_pcr_digest(parsed, BANKS, HashAlg.SHA384) == verified.pcrs
    with pytest.raises(PcrDigestMismatchError):
        check_pcr_digest(parsed, BANKS, HashAlg.SHA256)


def test_signed_non_quote_and_non_tpm_structures_are_rejected() -> None:
    key = rsa_key()
    ak = TpmtPublic.from_public_key(key.public_key())
    clock = TpmsClockInfo(1, 0, 0, True)
    certify = TpmsAttest(TPM_GENERATED_VALUE, TpmSt.ATTEST_CERTIFY, ak.name(), b"n", clock, 0, CertifyInfo(b"", b""))
    with pytest.raises(AttestFormatError):
        verify_quote(ak, certify.pack(), sign_attest(key, certify.pack()), BANKS, b"n")
    _, attest, _, _ = software_quote(key, nonce=b"n")
    forged = b"\x00TCG" + attest[4:]
    with pytest.raises(AttestFormatError) as exc:
        verify_quote(ak, forged, sign_attest(key, forged), BANKS, b"n")
    assert isinstance(exc.value, ValidationError)
    with pytest.raises(AttestFormatError):
        check_attest(certify, b"n")


def test_null_and_hmac_signatures_are_not_quote_signatures() -> None:
    b = e2e_bundle()
    with pytest.raises(SignatureError):
        verify_quote_signature(b.ak.public_key(), b.attest, TpmtSignature(TpmAlgId.NULL, None))
    with pytest.raises(UnsupportedAlgorithmError):
        verify_quote_signature(b.ak.public_key(), b.attest, TpmtSignature(TpmAlgId.HMAC, HashAlg.SHA256, b"\x00" * 32))
    schnorr = TpmtSignature(TpmAlgId.ECSCHNORR, HashAlg.SHA256, r=b"\x01" * 32, s=b"\x02" * 32)
    with pytest.raises(UnsupportedAlgorithmError):
        verify_quote_signature(ec_key().public_key(), b.attest, schnorr)


def test_verified_quote_reports_only_the_quoted_pcrs() -> None:
    ak, attest, sig, _ = software_quote(rsa_key())
    verified = verify_quote(ak, attest, sig, BANKS, b"nonce-1234")
    assert verified.pcrs == {HashAlg.SHA256: {i: BANKS[HashAlg.SHA256][i] for i in SELECTION.pcrs}}
    assert verified.signature == sig


def test_pss_with_a_modulus_too_small_for_the_salt_is_a_signature_error() -> None:
    ak = TpmtPublic.from_public_key(rsa_key().public_key(), scheme=TpmAlgId.RSAPSS, scheme_hash=HashAlg.SHA512)
    assert isinstance(ak.parameters, RsaParms)
    tiny = dataclasses.replace(
        ak, parameters=dataclasses.replace(ak.parameters, key_bits=512), unique=b"\xc1" * 63 + b"\x01", raw=b""
    )
    with pytest.raises(SignatureError):  # max salt for 512 bits and SHA-512 is negative: nothing can verify
        verify_quote_signature(tiny, b"attest", TpmtSignature(TpmAlgId.RSAPSS, HashAlg.SHA512, b"\x01" * 64))
