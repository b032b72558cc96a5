"""COSE (RFC 9052/9053, RFC 9864, RFC 9459, RFC 9679) on ``cryptography``: the subset SUIT and TEEP need.

* Signatures: :class:`Sign1Message` / :func:`sign1` (tag 18) and :class:`SignMessage` / :func:`sign` (tag 98) with
  ES256/384/512, ESP256/384/512, EdDSA and Ed25519; ECDSA is deterministic (RFC 6979) and raw ``r || s``.
  :class:`Sign1Template` prepares fixed COSE_Sign1 headers once for signing many payloads.
* MAC: :class:`Mac0Message` / :func:`mac0` (tag 17) with HMAC.
* Encryption: :class:`EncryptMessage` (tag 96) / :class:`Encrypt0Message` (tag 16), :func:`decrypt`, :func:`encrypt`;
  recipients direct, A128/192/256KW, ECDH-ES + HKDF-SHA256 (direct or + AES-KW); content AES-GCM and AES-CTR.
* Keys: :class:`CoseKey` (PEM, COSE_Key, generation, RFC 9679 thumbprints).

Every decoder is strict: malformed input raises :class:`veritee.errors.DecodeError`; verification raises
:class:`~veritee.errors.SignatureError`, decryption :class:`~veritee.errors.DecryptionError`.
"""

from veritee.cose.algorithms import AlgKind, Algorithm, Curve, HeaderLabel, KeyParam, KeyType
from veritee.cose.common import (
    COSE_ENCRYPT0_TAG,
    COSE_ENCRYPT_TAG,
    COSE_MAC0_TAG,
    COSE_SIGN1_TAG,
    COSE_SIGN_TAG,
    Headers,
    KeysArg,
)
from veritee.cose.encrypt import (
    Encrypt0Message,
    EncryptMessage,
    decrypt,
    encrypt,
    encrypt0,
    encrypt0_detached,
    encrypt_detached,
)
from veritee.cose.keys import CoseKey
from veritee.cose.mac import Mac0Message, mac0
from veritee.cose.recipients import SUIT_KDF_OTHER, Recipient, RecipientInfo, kdf_context
from veritee.cose.sign import Sign1Message, Sign1Template, Signature, Signer, SignMessage, sign, sign1

__all__ = [
    "COSE_ENCRYPT0_TAG",
    "COSE_ENCRYPT_TAG",
    "COSE_MAC0_TAG",
    "COSE_SIGN1_TAG",
    "COSE_SIGN_TAG",
    "SUIT_KDF_OTHER",
    "AlgKind",
    "Algorithm",
    "CoseKey",
    "Curve",
    "Encrypt0Message",
    "EncryptMessage",
    "HeaderLabel",
    "Headers",
    "KeyParam",
    "KeyType",
    "KeysArg",
    "Mac0Message",
    "Recipient",
    "RecipientInfo",
    "Sign1Message",
    "Sign1Template",
    "SignMessage",
    "Signature",
    "Signer",
    "decrypt",
    "encrypt",
    "encrypt0",
    "encrypt0_detached",
    "encrypt_detached",
    "kdf_context",
    "mac0",
    "sign",
    "sign1",
]
