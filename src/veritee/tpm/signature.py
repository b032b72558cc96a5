"""TPMT_SIGNATURE (TPM 2.0 Part 2, 11.3.4): what TPM2_Quote, TPM2_Certify and TPM2_Sign return."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from veritee.errors import EncodeError, UnsupportedAlgorithmError
from veritee.tpm.alg import HashAlg
from veritee.tpm.constants import MAX_ECC_KEY_BYTES, MAX_RSA_KEY_BYTES, TpmAlgId
from veritee.tpm.marshal import Reader, Writer, lookup_table, to_bytes

_ALGS = lookup_table(TpmAlgId)
_HASHES = lookup_table(HashAlg)

RSA_SIG_ALGS = frozenset({TpmAlgId.RSASSA, TpmAlgId.RSAPSS})
ECC_SIG_ALGS = frozenset({TpmAlgId.ECDSA, TpmAlgId.ECDAA, TpmAlgId.SM2, TpmAlgId.ECSCHNORR})
_SIG_ALGS = RSA_SIG_ALGS | ECC_SIG_ALGS | {TpmAlgId.HMAC, TpmAlgId.NULL}


@dataclass(frozen=True, slots=True)
class TpmtSignature:
    """TPMT_SIGNATURE.

    * RSASSA / RSAPSS: ``signature`` is the RSA signature (TPMS_SIGNATURE_RSA.sig).
    * ECDSA / ECDAA / SM2 / ECSCHNORR: ``r`` and ``s`` (TPMS_SIGNATURE_ECC), as big-endian bytes.
    * HMAC: ``signature`` is the TPMT_HA digest.
    * NULL: no hash and no value (``hash_alg`` is None).
    """

    sig_alg: TpmAlgId
    hash_alg: HashAlg | None
    signature: bytes = b""
    r: bytes = b""
    s: bytes = b""
    raw: bytes = field(default=b"", repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.raw:
            object.__setattr__(self, "raw", self._marshal())

    @classmethod
    def unpack(cls, data: bytes | bytearray | memoryview) -> TpmtSignature:
        """Decode a TPMT_SIGNATURE that fills ``data`` exactly (tpm2-tools' ``-f tss`` signature file)."""
        buf = to_bytes(data)
        r = Reader(buf)
        sig = cls.read(r)
        r.finish("TPMT_SIGNATURE")
        return sig

    @classmethod
    def read(cls, r: Reader) -> TpmtSignature:
        start = r.pos
        sig_alg = r.enum(TpmAlgId, _ALGS, "sigAlg", _SIG_ALGS)
        if sig_alg is TpmAlgId.NULL:
            return cls(sig_alg, None, raw=r.data[start : r.pos])
        hash_alg = r.enum(HashAlg, _HASHES, "hash")
        if sig_alg in RSA_SIG_ALGS:
            value = r.tpm2b("signature.sig", MAX_RSA_KEY_BYTES)
            return cls(sig_alg, hash_alg, value, raw=r.data[start : r.pos])
        if sig_alg is TpmAlgId.HMAC:
            value = r.raw(hash_alg.digest_size, "signature.hmac digest")
            return cls(sig_alg, hash_alg, value, raw=r.data[start : r.pos])
        sig_r = r.tpm2b("signature.signatureR", MAX_ECC_KEY_BYTES)
        sig_s = r.tpm2b("signature.signatureS", MAX_ECC_KEY_BYTES)
        return cls(sig_alg, hash_alg, r=sig_r, s=sig_s, raw=r.data[start : r.pos])

    def pack(self) -> bytes:
        return self.raw

    def _marshal(self) -> bytes:
        w = Writer()
        w.u16(self.sig_alg)
        if self.sig_alg is TpmAlgId.NULL:
            return w.getvalue()
        if self.hash_alg is None:
            raise EncodeError(f"a {self.sig_alg.name} signature needs a hash algorithm")
        w.u16(self.hash_alg)
        if self.sig_alg in RSA_SIG_ALGS:
            w.tpm2b(self.signature, MAX_RSA_KEY_BYTES, "signature.sig")
        elif self.sig_alg is TpmAlgId.HMAC:
            if len(self.signature) != self.hash_alg.digest_size:
                raise EncodeError(f"an HMAC {self.hash_alg.name} digest is {self.hash_alg.digest_size} bytes")
            w.raw(self.signature)
        elif self.sig_alg in ECC_SIG_ALGS:
            w.tpm2b(self.r, MAX_ECC_KEY_BYTES, "signature.signatureR")
            w.tpm2b(self.s, MAX_ECC_KEY_BYTES, "signature.signatureS")
        else:
            raise EncodeError(f"{self.sig_alg.name} is not a signature algorithm")
        return w.getvalue()

    def der(self) -> bytes:
        """An ECC signature's (r, s) as the DER ``Ecdsa-Sig-Value`` that X.509 / ``cryptography`` use."""
        if self.sig_alg not in ECC_SIG_ALGS:
            raise UnsupportedAlgorithmError(f"a {self.sig_alg.name} signature has no (r, s)")
        return encode_dss_signature(int.from_bytes(self.r, "big"), int.from_bytes(self.s, "big"))
