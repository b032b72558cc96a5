"""A software "TPM" for tests and benchmarks: TPMS_ATTEST quotes and TPMT_SIGNATUREs made with a private key.

The bytes are exactly what a TPM returns from TPM2_Quote (same marshalling, same signature encodings: PKCS#1 v1.5
for RSASSA, PSS with a digest-length salt for RSAPSS, fixed-width r and s for ECDSA), so a verifier (ours,
`tpm2_checkquote`, Keylime) cannot tell them apart. Only a real TPM's restricted key makes them trustworthy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

from veritee.errors import KeyFormatError, UnsupportedAlgorithmError
from veritee.tpm.alg import HashAlg
from veritee.tpm.attest import PcrSelection, QuoteInfo, TpmlPcrSelection, TpmsAttest, TpmsClockInfo
from veritee.tpm.constants import TPM_GENERATED_VALUE, TpmAlgId, TpmSt
from veritee.tpm.pcrs import pcr_composite_digest
from veritee.tpm.signature import TpmtSignature

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_CRYPTO_HASHES: dict[HashAlg, type[hashes.HashAlgorithm]] = {
    HashAlg.SHA1: hashes.SHA1,
    HashAlg.SHA256: hashes.SHA256,
    HashAlg.SHA384: hashes.SHA384,
    HashAlg.SHA512: hashes.SHA512,
    HashAlg.SM3_256: hashes.SM3,
}


def crypto_hash(alg: HashAlg) -> hashes.HashAlgorithm:
    """The ``cryptography`` hash object for a TPM hash algorithm."""
    return _CRYPTO_HASHES[alg]()


def sign_attest(
    private_key: PrivateKey,
    attest_raw: bytes,
    *,
    hash_alg: HashAlg = HashAlg.SHA256,
    scheme: TpmAlgId | None = None,
) -> TpmtSignature:
    """Sign TPMS_ATTEST bytes the way TPM2_Quote does; ``scheme`` defaults to RSASSA (RSA) or ECDSA (ECC)."""
    digest = hash_alg.digest(bytes(attest_raw))
    hash_obj = crypto_hash(hash_alg)
    if isinstance(private_key, rsa.RSAPrivateKey):
        chosen = TpmAlgId.RSASSA if scheme is None else scheme
        if chosen is TpmAlgId.RSASSA:
            pad: padding.AsymmetricPadding = padding.PKCS1v15()
        elif chosen is TpmAlgId.RSAPSS:
            pad = padding.PSS(mgf=padding.MGF1(hash_obj), salt_length=padding.PSS.DIGEST_LENGTH)
        else:
            raise UnsupportedAlgorithmError(f"{chosen.name} is not an RSA signature scheme")
        return TpmtSignature(chosen, hash_alg, private_key.sign(digest, pad, Prehashed(hash_obj)))
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        chosen = TpmAlgId.ECDSA if scheme is None else scheme
        if chosen is not TpmAlgId.ECDSA:
            raise UnsupportedAlgorithmError(f"{chosen.name} signatures cannot be made in software here")
        r, s = decode_dss_signature(private_key.sign(digest, ec.ECDSA(Prehashed(hash_obj))))
        size = (private_key.curve.key_size + 7) // 8
        return TpmtSignature(chosen, hash_alg, r=r.to_bytes(size, "big"), s=s.to_bytes(size, "big"))
    raise KeyFormatError(f"cannot sign quotes with a {type(private_key).__name__}")


def build_quote_attest(
    *,
    qualified_signer: bytes,
    selections: Sequence[PcrSelection],
    banks: Mapping[HashAlg, Mapping[int, bytes]],
    nonce: bytes = b"",
    hash_alg: HashAlg = HashAlg.SHA256,
    clock_info: TpmsClockInfo | None = None,
    firmware_version: int = 0,
) -> bytes:
    """The TPMS_ATTEST bytes TPM2_Quote returns for these PCR values.

    ``hash_alg`` must be the hash the quote will be signed with (it computes pcrDigest); ``qualified_signer`` is
    the AK's qualified name (``public.qualified_name``), ``nonce`` the verifier's qualifying data (extraData).
    ``clock_info`` defaults to a freshly cleared TPM's (Clock 0, no resets or restarts, safe).
    """
    info = QuoteInfo(TpmlPcrSelection(tuple(selections)), pcr_composite_digest(hash_alg, selections, banks))
    attest = TpmsAttest(
        magic=TPM_GENERATED_VALUE,
        type=TpmSt.ATTEST_QUOTE,
        qualified_signer=bytes(qualified_signer),
        extra_data=bytes(nonce),
        clock_info=clock_info or TpmsClockInfo(clock=0, reset_count=0, restart_count=0, safe=True),
        firmware_version=firmware_version,
        attested=info,
    )
    return attest.pack()
