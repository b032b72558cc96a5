"""TPM structures decoded from real TPM output (swtpm, a GCP vTPM, Keylime's test data) and built in code."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from tpm_testdata import KEYLIME_NONCE, b64, e2e_bundle, ec_key, keylime_bundle, rsa_key, windows_bundle, windows_dump

from helpers import shared_path
from veritee.errors import DecodeError, EncodeError, KeyFormatError, UnsupportedAlgorithmError
from veritee.tpm.alg import HashAlg
from veritee.tpm.constants import Hierarchy
from veritee.tpm.errors import UnknownAlgorithmError
from veritee.tpm.public import qualified_name
from veritee.tpm.quote import verify_quote_signature
from veritee.tpm.structures import (
    AK_ATTRIBUTES,
    TPM_GENERATED_VALUE,
    CertifyInfo,
    CommandAuditInfo,
    CreationInfo,
    EccParms,
    EccPoint,
    KeyedHashParms,
    NvCertifyInfo,
    NvDigestCertifyInfo,
    ObjectAttributes,
    PcrSelection,
    QuoteInfo,
    RsaParms,
    Scheme,
    SessionAuditInfo,
    SymDefObject,
    TimeAttestInfo,
    TpmAlgId,
    TpmEccCurve,
    TpmlPcrSelection,
    TpmsAttest,
    TpmsClockInfo,
    TpmSt,
    TpmtPublic,
    TpmtSignature,
)


def _pem_key(*parts: str) -> rsa.RSAPublicKey:
    key = load_pem_public_key(shared_path(*parts).read_bytes())
    assert isinstance(key, rsa.RSAPublicKey)
    return key


# --- TPMT_PUBLIC ---------------------------------------------------------------------------------------------
def test_swtpm_ak_public_area_name_and_key() -> None:
    b = e2e_bundle()
    ak = b.ak
    assert ak.type is TpmAlgId.RSA
    assert ak.name_alg is TpmAlgId.SHA256
    assert ak.object_attributes == AK_ATTRIBUTES == 0x00050072
    assert ak.auth_policy == b""
    assert isinstance(ak.parameters, RsaParms)
    assert ak.parameters.symmetric == SymDefObject()
    assert (ak.parameters.scheme.scheme, ak.parameters.scheme.hash_alg) == (TpmAlgId.RSASSA, TpmAlgId.SHA256)
    assert (ak.parameters.key_bits, ak.parameters.exponent, ak.parameters.public_exponent) == (2048, 0, 65537)
    assert ak.name() == shared_path("tpm", "e2e-swtpm", "ak.name").read_bytes()
    assert ak.public_key().public_numbers() == _pem_key("tpm", "e2e-swtpm", "ak.pem").public_numbers()
    assert ak.to_tpm2b() == b.ak_bytes


def test_keylime_ak_matches_its_pem() -> None:
    ak = keylime_bundle().ak
    pem = _pem_key("tpm", "quotes", "keylime_tpm2tools_quote", "akpub.pem")
    assert ak.public_key().public_numbers() == pem.public_numbers()


def test_swtpm_ek_is_a_restricted_decryption_key_with_aes_cfb() -> None:
    ek = TpmtPublic.from_tpm2b(shared_path("tpm", "e2e-swtpm", "ek.pub").read_bytes())
    assert isinstance(ek.parameters, RsaParms)
    assert ek.parameters.symmetric == SymDefObject(TpmAlgId.AES, 128, TpmAlgId.CFB)
    assert ek.parameters.scheme.scheme is TpmAlgId.NULL
    assert ek.object_attributes & ObjectAttributes.RESTRICTED
    assert ek.object_attributes & ObjectAttributes.DECRYPT
    assert ek.object_attributes & ObjectAttributes.ADMIN_WITH_POLICY
    assert len(ek.auth_policy) == 32  # the TCG EK policy (PolicySecret(endorsement))


def test_qualified_signer_is_the_ak_qualified_name_under_the_ek() -> None:
    ek = TpmtPublic.from_tpm2b(shared_path("tpm", "e2e-swtpm", "ek.pub").read_bytes())
    b = e2e_bundle()
    attest = TpmsAttest.unpack(b.attest)
    assert attest.qualified_signer == qualified_name(qualified_name(Hierarchy.ENDORSEMENT, ek.name()), b.ak.name())
    assert attest.qualified_signer != b.ak.name()


def test_goattestation_ak_certify_creation_binds_its_name() -> None:
    """go-attestation's AK: TPMT_PUBLIC with a policy, SHA1 RSASSA; its creation attestation names it."""
    b = windows_bundle()
    ak = b.ak
    assert ak.object_attributes == AK_ATTRIBUTES | ObjectAttributes.NO_DA
    assert isinstance(ak.parameters, RsaParms)
    assert ak.parameters.scheme.hash_alg is TpmAlgId.SHA1
    assert ak.pack() == b.ak_bytes
    dump = windows_dump()
    creation_raw = b64(dump["AK"]["CreateAttestation"])
    creation = TpmsAttest.unpack(creation_raw)
    assert creation.type is TpmSt.ATTEST_CREATION
    assert isinstance(creation.attested, CreationInfo)
    assert creation.attested.object_name == ak.name()
    assert creation.attested.creation_hash == HashAlg.SHA256.digest(b64(dump["AK"]["CreateData"]))
    sig = TpmtSignature.unpack(b64(dump["AK"]["CreateSignature"]))
    assert verify_quote_signature(ak, creation_raw, sig) is HashAlg.SHA1


def test_from_tpm2b_requires_the_exact_size() -> None:
    raw = e2e_bundle().ak_bytes
    with pytest.raises(DecodeError) as exc:
        TpmtPublic.from_tpm2b(raw + b"\x00")
    assert exc.value.offset == 0
    with pytest.raises(DecodeError):
        TpmtPublic.from_tpm2b(raw[:-1])
    with pytest.raises(DecodeError) as exc:
        TpmtPublic.unpack(raw[2:] + b"\x00")
    assert exc.value.offset == len(raw) - 2


@pytest.mark.parametrize("curve", ["secp256r1", "secp384r1", "secp521r1"])
def test_ecc_public_area_round_trip(curve: str) -> None:
    key = ec_key(curve).public_key()
    ak = TpmtPublic.from_public_key(key, scheme_hash=HashAlg.SHA384)
    assert isinstance(ak.parameters, EccParms) and isinstance(ak.unique, EccPoint)
    assert ak.parameters.scheme.scheme is TpmAlgId.ECDSA
    size = {"secp256r1": 32, "secp384r1": 48, "secp521r1": 66}[curve]
    assert len(ak.unique.x) == len(ak.unique.y) == size
    again = TpmtPublic.unpack(ak.pack())
    assert again == ak
    assert again.public_key().public_numbers() == key.public_numbers()
    assert again.name()[:2] == b"\x00\x0b" and len(again.name()) == 34


def test_ecc_coordinates_shorter_than_the_curve_are_left_padded() -> None:
    key = ec_key("secp256r1").public_key()
    ak = TpmtPublic.from_public_key(key)
    assert isinstance(ak.unique, EccPoint)
    # A point whose x starts with a zero byte may be written without it; the key must still be the same.
    stripped = dataclasses.replace(ak, unique=EccPoint(ak.unique.x.lstrip(b"\x00"), ak.unique.y), raw=b"")
    assert stripped.public_key().public_numbers() == key.public_numbers()
    too_long = dataclasses.replace(ak, unique=EccPoint(b"\x01" + ak.unique.x, ak.unique.y), raw=b"")
    with pytest.raises(KeyFormatError):
        too_long.public_key()


def test_invalid_ecc_point_is_a_key_format_error() -> None:
    ak = TpmtPublic.from_public_key(ec_key().public_key())
    off_curve = dataclasses.replace(ak, unique=EccPoint(b"\x01" * 32, b"\x02" * 32), raw=b"")
    with pytest.raises(KeyFormatError):
        off_curve.public_key()


def test_rsa_exponent_zero_means_65537_and_others_are_kept() -> None:
    default = TpmtPublic.from_public_key(rsa_key().public_key())
    assert isinstance(default.parameters, RsaParms) and default.parameters.exponent == 0
    key3 = rsa.generate_private_key(public_exponent=3, key_size=1024).public_key()
    ak3 = TpmtPublic.from_public_key(key3)
    assert isinstance(ak3.parameters, RsaParms) and ak3.parameters.exponent == 3
    assert TpmtPublic.unpack(ak3.pack()).public_key().public_numbers() == key3.public_numbers()


def test_rsa_modulus_size_must_match_keybits() -> None:
    ak = e2e_bundle().ak
    assert isinstance(ak.parameters, RsaParms)
    wrong = dataclasses.replace(ak, parameters=dataclasses.replace(ak.parameters, key_bits=1024), raw=b"")
    with pytest.raises(KeyFormatError):
        wrong.public_key()


def test_non_asymmetric_objects_have_no_public_key_and_null_name_alg_has_no_name() -> None:
    sealed = TpmtPublic(
        TpmAlgId.KEYEDHASH, TpmAlgId.SHA256, ObjectAttributes.FIXED_TPM, b"", KeyedHashParms(Scheme()), b"\x11" * 32
    )
    assert TpmtPublic.unpack(sealed.pack()) == sealed
    with pytest.raises(KeyFormatError):
        sealed.public_key()
    nameless = dataclasses.replace(sealed, name_alg=TpmAlgId.NULL, raw=b"")
    with pytest.raises(UnsupportedAlgorithmError):
        nameless.name()


def test_unknown_algorithms_are_decode_and_unsupported_errors() -> None:
    raw = bytearray(e2e_bundle().ak.pack())
    raw[0:2] = b"\x00\x99"  # type
    with pytest.raises(UnknownAlgorithmError) as exc:
        TpmtPublic.unpack(bytes(raw))
    assert isinstance(exc.value, DecodeError) and isinstance(exc.value, UnsupportedAlgorithmError)
    assert exc.value.offset == 0
    raw = bytearray(e2e_bundle().ak.pack())
    raw[2:4] = TpmAlgId.RSASSA.to_bytes(2, "big")  # nameAlg that is not a hash
    with pytest.raises(UnknownAlgorithmError) as exc:
        TpmtPublic.unpack(bytes(raw))
    assert exc.value.offset == 2


def test_marshalling_from_fields_reproduces_real_structures() -> None:
    for bundle in (e2e_bundle(), keylime_bundle(), windows_bundle()):
        ak = bundle.ak
        assert dataclasses.replace(ak, raw=b"").pack() == ak.pack()
        attest = TpmsAttest.unpack(bundle.attest)
        assert dataclasses.replace(attest, raw=b"").pack() == bundle.attest
        sig = TpmtSignature.unpack(bundle.sig)
        assert dataclasses.replace(sig, raw=b"").pack() == bundle.sig


# --- TPMS_ATTEST ---------------------------------------------------------------------------------------------
def test_swtpm_quote_fields() -> None:
    b = e2e_bundle()
    attest = TpmsAttest.unpack(b.attest)
    assert attest.magic == TPM_GENERATED_VALUE and attest.is_tpm_generated
    assert attest.type is TpmSt.ATTEST_QUOTE
    assert attest.extra_data == b.nonce
    assert attest.clock_info == TpmsClockInfo(clock=6652, reset_count=2, restart_count=0, safe=True)
    # libtpms 2019-10-23 (tpm2_print shows the same 8 bytes in little-endian order: 3636160023101920)
    assert attest.firmware_version == 0x2019102300163636
    assert isinstance(attest.attested, QuoteInfo)
    (selection,) = attest.attested.pcr_select.selections
    assert selection.hash_alg is HashAlg.SHA256
    assert selection.select == b"\xff\x47\x00"
    assert selection.pcrs == (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14)
    assert attest.attested.pcr_select.describe() == "sha256:0,1,2,3,4,5,6,7,8,9,10,14"
    assert attest.attested.pcr_digest.hex() == "61f5dba5c6a01198899e128a91545a932ff9065c80261e13f16bf55e67859314"
    assert attest.pack() == b.attest


def test_keylime_quote_fields() -> None:
    attest = TpmsAttest.unpack(keylime_bundle().attest)
    assert attest.extra_data == KEYLIME_NONCE
    assert isinstance(attest.attested, QuoteInfo)
    assert attest.attested.pcr_select.selections[0].pcrs == (15, 16, 22)


def test_goattestation_quote_selects_sha1_bank_and_has_obfuscated_counters() -> None:
    attest = TpmsAttest.unpack(windows_bundle().attest)
    assert attest.extra_data == b""
    assert isinstance(attest.attested, QuoteInfo)
    (selection,) = attest.attested.pcr_select.selections
    assert selection.hash_alg is HashAlg.SHA1 and selection.pcrs == tuple(range(24))
    # An AK under the storage hierarchy: resetCount/restartCount are offset by a per-key value (not small numbers).
    assert attest.clock_info.reset_count > 1_000_000 and attest.clock_info.restart_count > 1_000_000


def test_tpm2b_attest_offsets_are_absolute() -> None:
    raw = e2e_bundle().attest
    assert TpmsAttest.from_tpm2b(len(raw).to_bytes(2, "big") + raw) == TpmsAttest.unpack(raw)
    broken = bytearray(raw)
    broken[4:6] = b"\x80\x00"  # type
    with pytest.raises(UnknownAlgorithmError) as exc:
        TpmsAttest.from_tpm2b(len(raw).to_bytes(2, "big") + bytes(broken))
    assert exc.value.offset == 6
    with pytest.raises(DecodeError):
        TpmsAttest.from_tpm2b(raw)


_CLOCK = TpmsClockInfo(clock=123456, reset_count=7, restart_count=2, safe=False)


@pytest.mark.parametrize(
    ("tag", "info"),
    [
        (TpmSt.ATTEST_CERTIFY, CertifyInfo(b"\x00\x0b" + b"\x01" * 32, b"\x00\x0b" + b"\x02" * 32)),
        (TpmSt.ATTEST_CREATION, CreationInfo(b"\x00\x0b" + b"\x03" * 32, b"\x04" * 32)),
        (TpmSt.ATTEST_COMMAND_AUDIT, CommandAuditInfo(99, HashAlg.SHA384, b"\x05" * 48, b"\x06" * 48)),
        (TpmSt.ATTEST_SESSION_AUDIT, SessionAuditInfo(True, b"\x07" * 32)),
        (TpmSt.ATTEST_TIME, TimeAttestInfo(987654321, _CLOCK, 0x1122334455667788)),
        (TpmSt.ATTEST_NV, NvCertifyInfo(b"\x00\x0b" + b"\x08" * 32, 16, b"nv contents")),
        (TpmSt.ATTEST_NV_DIGEST, NvDigestCertifyInfo(b"\x00\x0b" + b"\x09" * 32, b"\x0a" * 32)),
        (
            TpmSt.ATTEST_QUOTE,
            QuoteInfo(
                TpmlPcrSelection(
                    (PcrSelection.of(HashAlg.SHA1, [0, 7]), PcrSelection.of(HashAlg.SHA512, [23, 31], size_of_select=4))
                ),
                b"\x0b" * 64,
            ),
        ),
    ],
)
def test_every_attestation_type_round_trips(tag: TpmSt, info: object) -> None:
    attest = TpmsAttest(TPM_GENERATED_VALUE, tag, b"\x00\x0b" + b"\xaa" * 32, b"nonce", _CLOCK, 42, info)  # type: ignore[arg-type]
    decoded = TpmsAttest.unpack(attest.pack())
    assert decoded == attest
    assert decoded.attested == info


def test_attested_info_must_fit_the_type() -> None:
    with pytest.raises(EncodeError):
        TpmsAttest(TPM_GENERATED_VALUE, TpmSt.ATTEST_QUOTE, b"", b"", _CLOCK, 0, CreationInfo(b"", b""))


def test_clock_safe_must_be_yes_or_no() -> None:
    raw = bytearray(e2e_bundle().attest)
    safe_at = 4 + 2 + 2 + 34 + 2 + 20 + 8 + 4 + 4
    assert raw[safe_at] == 1
    raw[safe_at] = 2
    with pytest.raises(DecodeError) as exc:
        TpmsAttest.unpack(bytes(raw))
    assert exc.value.offset == safe_at


# --- PCR selections --------------------------------------------------------------------------------------------
def test_pcr_selection_bitmap() -> None:
    sel = PcrSelection.of(HashAlg.SHA256, [23, 0, 8, 16, 9])
    assert sel.select == b"\x01\x03\x81" and sel.pcrs == (0, 8, 9, 16, 23) and sel.size_of_select == 3
    assert sel.describe() == "sha256:0,8,9,16,23"
    assert PcrSelection(HashAlg.SHA1, b"").pcrs == ()
    with pytest.raises(EncodeError):
        PcrSelection.of(HashAlg.SHA1, [24])


def test_pcr_selection_limits() -> None:
    ok = TpmlPcrSelection((PcrSelection.of(HashAlg.SHA256, [1]),)).pack()
    assert TpmlPcrSelection.unpack(ok).selections[0].pcrs == (1,)
    too_wide = bytearray(ok)
    too_wide[6] = 5  # sizeofSelect
    with pytest.raises(DecodeError) as exc:
        TpmlPcrSelection.unpack(bytes(too_wide) + b"\x00\x00")
    assert exc.value.offset == 6
    with pytest.raises(DecodeError) as exc:
        TpmlPcrSelection.unpack((17).to_bytes(4, "big") + ok[4:] * 17)
    assert exc.value.offset == 0


# --- TPMT_SIGNATURE ------------------------------------------------------------------------------------------
def test_swtpm_signature() -> None:
    sig = TpmtSignature.unpack(e2e_bundle().sig)
    assert (sig.sig_alg, sig.hash_alg, len(sig.signature)) == (TpmAlgId.RSASSA, HashAlg.SHA256, 256)
    with pytest.raises(UnsupportedAlgorithmError):
        sig.der()


def test_ecdsa_hmac_and_null_signatures_round_trip() -> None:
    ecdsa = TpmtSignature(TpmAlgId.ECDSA, HashAlg.SHA256, r=b"\x01" * 32, s=b"\x00\x02" + b"\x03" * 30)
    again = TpmtSignature.unpack(ecdsa.pack())
    assert again == ecdsa and again.r == ecdsa.r and again.s == ecdsa.s
    assert again.der().startswith(b"\x30")
    hmac = TpmtSignature(TpmAlgId.HMAC, HashAlg.SHA1, b"\x05" * 20)
    assert TpmtSignature.unpack(hmac.pack()) == hmac
    assert hmac.pack() == bytes.fromhex("00050004") + b"\x05" * 20
    null = TpmtSignature(TpmAlgId.NULL, None)
    assert null.pack() == b"\x00\x10" and TpmtSignature.unpack(b"\x00\x10") == null
    with pytest.raises(EncodeError):
        TpmtSignature(TpmAlgId.HMAC, HashAlg.SHA1, b"\x05" * 19)
    with pytest.raises(EncodeError):
        TpmtSignature(TpmAlgId.RSASSA, None, b"")


def test_signature_lengths_are_checked() -> None:
    raw = e2e_bundle().sig
    with pytest.raises(DecodeError) as exc:
        TpmtSignature.unpack(raw[:-1])
    assert exc.value.offset == 6
    with pytest.raises(DecodeError) as exc:
        TpmtSignature.unpack(raw + b"\x00")
    assert exc.value.offset == len(raw)
    oversized = raw[:4] + (513).to_bytes(2, "big") + b"\x00" * 513
    with pytest.raises(DecodeError) as exc:
        TpmtSignature.unpack(oversized)
    assert exc.value.offset == 4


def test_every_truncation_of_real_structures_is_a_decode_error_with_offset() -> None:
    b = e2e_bundle()
    decoders = [
        (TpmtPublic.from_tpm2b, b.ak_bytes),
        (TpmtPublic.unpack, b.ak.pack()),
        (TpmsAttest.unpack, b.attest),
        (TpmtSignature.unpack, b.sig),
    ]
    for decode, raw in decoders:
        for cut in range(len(raw)):
            with pytest.raises(DecodeError) as exc:
                decode(raw[:cut])
            assert exc.value.offset is not None and 0 <= exc.value.offset <= cut


def test_curve_enum_and_ecc_params() -> None:
    ak = TpmtPublic.from_public_key(ec_key().public_key())
    assert isinstance(ak.parameters, EccParms)
    assert ak.parameters.curve is TpmEccCurve.NIST_P256
    assert ak.parameters.kdf.scheme is TpmAlgId.NULL
    assert isinstance(ak.public_key(), ec.EllipticCurvePublicKey)
