"""JWS compact serialisation (RFC 7515) for ES256 and EdDSA (Ed25519), just enough for signed JWTs.

Signing picks the algorithm from the key. Verification takes the expected public key, accepts only the algorithm
that key implies (never "none", never an algorithm named by the token alone), rejects ``crit`` headers, and raises.
"""

from __future__ import annotations

import base64
import binascii
import json
from enum import Enum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from veritee.errors import DecodeError, KeyFormatError, SignatureError, UnsupportedAlgorithmError

__all__ = ["JwsAlg", "PrivateKey", "PublicKey", "b64url_decode", "b64url_encode", "sign_compact", "verify_compact"]

PrivateKey = ec.EllipticCurvePrivateKey | Ed25519PrivateKey
PublicKey = ec.EllipticCurvePublicKey | Ed25519PublicKey


class JwsAlg(Enum):
    """JWS "alg" values veritee signs and verifies with."""

    ES256 = "ES256"
    EDDSA = "EdDSA"


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, what: str = "base64url", *, allow_empty: bool = False) -> bytes:
    if not text and allow_empty:
        return b""
    if not text or any(c not in _B64URL for c in text) or len(text) % 4 == 1:
        raise DecodeError(f"{what}: not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise DecodeError(f"{what}: {exc}") from None


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _alg_for_public(key: PublicKey) -> JwsAlg:
    if isinstance(key, Ed25519PublicKey):
        return JwsAlg.EDDSA
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return JwsAlg.ES256
    raise UnsupportedAlgorithmError(f"no JWS algorithm for a {type(key).__name__} here (ES256 on P-256, or Ed25519)")


def sign_compact(payload: bytes, key: PrivateKey, *, typ: str = "JWT") -> str:
    """``base64url(header).base64url(payload).base64url(signature)``."""
    alg = _alg_for_public(key.public_key())
    header = json.dumps({"alg": alg.value, "typ": typ}, separators=(",", ":")).encode()
    signing_input = f"{b64url_encode(header)}.{b64url_encode(payload)}".encode("ascii")
    if isinstance(key, Ed25519PrivateKey):
        signature = key.sign(signing_input)
    else:
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input.decode('ascii')}.{b64url_encode(signature)}"


def verify_compact(token: str, key: PublicKey) -> tuple[dict[str, Any], bytes]:
    """Verify and return (protected header, payload bytes). Raises DecodeError, SignatureError, KeyFormatError."""
    expected = _alg_for_public(key)
    parts = token.split(".")
    if len(parts) != 3:
        raise DecodeError(f"JWS compact serialisation has 3 parts, got {len(parts)}")
    header_bytes = b64url_decode(parts[0], "JWS header")
    try:
        header = json.loads(header_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DecodeError(f"JWS header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise DecodeError("JWS header is not a JSON object")
    if "crit" in header:
        raise SignatureError(f"JWS header has critical extensions {header['crit']!r} that veritee does not understand")
    if header.get("alg") != expected.value:
        raise SignatureError(f"JWS alg {header.get('alg')!r} is not {expected.value}, the only one this key allows")
    payload = b64url_decode(parts[1], "JWS payload")
    signature = b64url_decode(parts[2], "JWS signature", allow_empty=True)
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    try:
        if isinstance(key, Ed25519PublicKey):
            key.verify(signature, signing_input)
        else:
            if len(signature) != 64:
                raise SignatureError(f"ES256 signature is 64 bytes, got {len(signature)}")
            der = encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
            key.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("JWS signature does not verify with the given key") from None
    except ValueError as exc:
        raise KeyFormatError(f"cannot verify with this key: {exc}") from None
    return header, payload
