"""EAR as a CWT: the CBOR claims set (see :meth:`AttestationResult.to_cbor_claims`) signed in a COSE_Sign1 (tag 18).

The protected header names the algorithm: ES256 (-7) for a P-256 key, EdDSA (-8) for Ed25519, the identifiers EAR
implementations use. Verification takes the expected public key and raises.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from veritee import cbor
from veritee.appraisal.ear import AttestationResult, check_nonce
from veritee.appraisal.jws import PrivateKey, PublicKey
from veritee.cose import Algorithm, CoseKey, HeaderLabel, Sign1Message, sign1
from veritee.errors import DecodeError, SignatureError, UnsupportedAlgorithmError

__all__ = ["sign_cwt", "verify_cwt"]

_FAMILY = {
    Algorithm.ES256: frozenset({Algorithm.ES256, Algorithm.ESP256}),
    Algorithm.EdDSA: frozenset({Algorithm.EdDSA, Algorithm.Ed25519}),
}


def _alg(key: PublicKey) -> Algorithm:
    if isinstance(key, Ed25519PublicKey):
        return Algorithm.EdDSA
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return Algorithm.ES256
    raise UnsupportedAlgorithmError(f"no EAR CWT algorithm for a {type(key).__name__} (P-256 or Ed25519)")


def sign_cwt(result: AttestationResult, key: PrivateKey) -> bytes:
    """The result as a COSE_Sign1-signed CWT."""
    alg = _alg(key.public_key())
    payload = cbor.encode(result.to_cbor_claims())
    return sign1(payload, CoseKey(key), protected={HeaderLabel.ALG.value: alg.value}, unprotected={})


def verify_cwt(token: bytes, key: PublicKey, *, expected_nonce: bytes | None = None) -> AttestationResult:
    """Verify an EAR CWT and return its result. Raises DecodeError, SignatureError, ValidationError, FreshnessError."""
    message = Sign1Message.decode(token)
    if message.alg not in _FAMILY[_alg(key)]:
        raise SignatureError(f"COSE alg {message.alg.name} is not allowed for EAR with this key")
    if message.payload is None:
        raise DecodeError("EAR CWT has a detached payload")
    message.verify(CoseKey(key))
    result = AttestationResult.from_cbor_claims(cbor.decode(message.payload))
    check_nonce(result, expected_nonce)
    return result
