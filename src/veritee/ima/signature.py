"""IMA file signatures (``security.ima`` digital signature v2) and their verification against a keyring.

Layout (security/integrity/integrity.h, ``struct signature_v2_hdr``), all big-endian::

    u8 type (3 = EVM_IMA_XATTR_DIGSIG) | u8 version (2) | u8 hash_algo (enum hash_algo) | u32 keyid | u16 sig_size | sig

The signature is made over the file digest itself: RSA PKCS#1 v1.5 with the DigestInfo of ``hash_algo``, or an ECDSA
signature (DER) over the digest. ``keyid`` is the last four bytes of the signing key's Subject Key Identifier, by
default SHA-1 over the public key bits (the PKCS#1 RSAPublicKey, or the X9.62 uncompressed EC point).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from veritee.errors import EncodeError, KeyFormatError, UnsupportedAlgorithmError, UntrustedSignerError
from veritee.ima.entry import ImaEntry
from veritee.ima.errors import ImaSignatureError, ImaSignatureFormatError

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
#: Public keys by key id: the 32-bit id as an int (as Keylime stores them) or its 4 big-endian bytes.
Keyring = Mapping[int, PublicKey] | Mapping[bytes, PublicKey] | Mapping[int | bytes, PublicKey]


class XattrType(IntEnum):
    """``enum evm_ima_xattr_type`` (security/integrity/integrity.h): the first byte of ``security.ima``."""

    IMA_XATTR_DIGEST = 0x01
    EVM_XATTR_HMAC = 0x02
    EVM_IMA_XATTR_DIGSIG = 0x03
    IMA_XATTR_DIGEST_NG = 0x04
    EVM_XATTR_PORTABLE_DIGSIG = 0x05
    IMA_VERITY_DIGSIG = 0x06


class KernelHashAlgo(IntEnum):
    """``enum hash_algo`` (include/uapi/linux/hash_info.h), the hash byte of a signature header."""

    MD4 = 0
    MD5 = 1
    SHA1 = 2
    RIPE_MD_160 = 3
    SHA256 = 4
    SHA384 = 5
    SHA512 = 6
    SHA224 = 7
    RIPE_MD_128 = 8
    RIPE_MD_256 = 9
    RIPE_MD_320 = 10
    WP_256 = 11
    WP_384 = 12
    WP_512 = 13
    TGR_128 = 14
    TGR_160 = 15
    TGR_192 = 16
    SM3_256 = 17
    STREEBOG_256 = 18
    STREEBOG_512 = 19
    SHA3_256 = 20
    SHA3_384 = 21
    SHA3_512 = 22

    @property
    def kernel_name(self) -> str:
        """The kernel's hash_algo_name[] entry, as a ``d-ng`` field spells the algorithm."""
        return _KERNEL_NAMES[self]


_KERNEL_NAMES = {
    KernelHashAlgo.MD4: "md4",
    KernelHashAlgo.MD5: "md5",
    KernelHashAlgo.SHA1: "sha1",
    KernelHashAlgo.RIPE_MD_160: "rmd160",
    KernelHashAlgo.SHA256: "sha256",
    KernelHashAlgo.SHA384: "sha384",
    KernelHashAlgo.SHA512: "sha512",
    KernelHashAlgo.SHA224: "sha224",
    KernelHashAlgo.RIPE_MD_128: "rmd128",
    KernelHashAlgo.RIPE_MD_256: "rmd256",
    KernelHashAlgo.RIPE_MD_320: "rmd320",
    KernelHashAlgo.WP_256: "wp256",
    KernelHashAlgo.WP_384: "wp384",
    KernelHashAlgo.WP_512: "wp512",
    KernelHashAlgo.TGR_128: "tgr128",
    KernelHashAlgo.TGR_160: "tgr160",
    KernelHashAlgo.TGR_192: "tgr192",
    KernelHashAlgo.SM3_256: "sm3",
    KernelHashAlgo.STREEBOG_256: "streebog256",
    KernelHashAlgo.STREEBOG_512: "streebog512",
    KernelHashAlgo.SHA3_256: "sha3-256",
    KernelHashAlgo.SHA3_384: "sha3-384",
    KernelHashAlgo.SHA3_512: "sha3-512",
}

#: The hashes signatures are verified with; the others (MD4, MD5, RIPEMD, Whirlpool, Tiger, Streebog, SM3) are refused.
_VERIFY_HASHES: dict[KernelHashAlgo, hashes.HashAlgorithm] = {
    KernelHashAlgo.SHA1: hashes.SHA1(),
    KernelHashAlgo.SHA224: hashes.SHA224(),
    KernelHashAlgo.SHA256: hashes.SHA256(),
    KernelHashAlgo.SHA384: hashes.SHA384(),
    KernelHashAlgo.SHA512: hashes.SHA512(),
    KernelHashAlgo.SHA3_256: hashes.SHA3_256(),
    KernelHashAlgo.SHA3_384: hashes.SHA3_384(),
    KernelHashAlgo.SHA3_512: hashes.SHA3_512(),
}

_HEADER = struct.Struct(">BBBIH")
_DIGSIG_VERSION = 2


@dataclass(frozen=True, slots=True)
class ImaSignature:
    """A parsed ``signature_v2_hdr`` and the signature bytes after it."""

    xattr_type: XattrType
    version: int
    hash_algo: KernelHashAlgo
    key_id: bytes
    signature: bytes

    @property
    def key_id_int(self) -> int:
        return int.from_bytes(self.key_id, "big")

    def encode(self) -> bytes:
        """The ``security.ima`` bytes (as the ``sig`` field of an ``ima-sig`` entry carries them)."""
        if len(self.key_id) != 4 or len(self.signature) > 0xFFFF:
            raise EncodeError("an IMA signature needs a 4-byte key id and at most 65535 signature bytes")
        header = _HEADER.pack(self.xattr_type, self.version, self.hash_algo, self.key_id_int, len(self.signature))
        return header + self.signature


def parse_signature(data: bytes) -> ImaSignature:
    """Parse a ``security.ima`` digital signature v2 (type 3, version 2).

    Raises :class:`ImaSignatureFormatError` for malformed bytes and :class:`UnsupportedAlgorithmError` for
    well-formed blobs of another kind (EVM portable or fs-verity signatures, signature version 1 or 3, hashes the
    kernel does not define).
    """
    data = bytes(data)
    if len(data) < 2:
        raise ImaSignatureFormatError(f"signature of {len(data)} bytes has no type and version", offset=0)
    try:
        xattr_type = XattrType(data[0])
    except ValueError:
        raise ImaSignatureFormatError(f"unknown security.ima type 0x{data[0]:02x}", offset=0) from None
    if xattr_type is not XattrType.EVM_IMA_XATTR_DIGSIG:
        raise UnsupportedAlgorithmError(f"security.ima of type {xattr_type.name} is not an IMA digital signature")
    if data[1] != _DIGSIG_VERSION:
        raise UnsupportedAlgorithmError(f"IMA digital signature version {data[1]} (only version 2 is supported)")
    if len(data) < _HEADER.size:
        raise ImaSignatureFormatError(f"signature header needs {_HEADER.size} bytes, got {len(data)}", offset=0)
    _, version, hash_byte, key_id, sig_size = _HEADER.unpack_from(data)
    if sig_size != len(data) - _HEADER.size:
        raise ImaSignatureFormatError(
            f"signature header announces {sig_size} signature bytes, {len(data) - _HEADER.size} follow",
            offset=_HEADER.size - 2,
        )
    if sig_size == 0:
        raise ImaSignatureFormatError("signature is empty", offset=_HEADER.size)
    try:
        hash_algo = KernelHashAlgo(hash_byte)
    except ValueError:
        raise UnsupportedAlgorithmError(f"unknown kernel hash algorithm {hash_byte} in IMA signature") from None
    return ImaSignature(xattr_type, version, hash_algo, key_id.to_bytes(4, "big"), data[_HEADER.size :])


def key_id(public_key: PublicKey) -> bytes:
    """The 4-byte IMA key id of ``public_key``: the last four bytes of SHA-1 over its public key bits."""
    if isinstance(public_key, rsa.RSAPublicKey):
        bits = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        bits = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    else:
        raise KeyFormatError(f"IMA signatures use RSA or ECDSA keys, not {type(public_key).__name__}")
    return hashlib.sha1(bits).digest()[-4:]


def key_id_from_certificate(certificate: x509.Certificate) -> bytes:
    """The key id the kernel gives a certificate's key: its Subject Key Identifier's last four bytes, if present."""
    try:
        ski = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        ski = b""
    if len(ski) >= 4:
        return ski[-4:]
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise KeyFormatError(f"IMA signatures use RSA or ECDSA keys, not {type(public_key).__name__}")
    return key_id(public_key)


def _lookup(keyring: Keyring, key: bytes) -> PublicKey | None:
    ring = cast(Mapping[object, PublicKey], keyring)
    found = ring.get(int.from_bytes(key, "big"))
    return found if found is not None else ring.get(key)


def verify_signature(
    signature: ImaSignature | bytes, file_digest: bytes, file_digest_alg: str, keyring: Keyring
) -> ImaSignature:
    """Verify an IMA signature over ``file_digest`` (hashed with the kernel-named ``file_digest_alg``).

    Returns the parsed signature. Raises :class:`ImaSignatureError` if it does not verify or was made over another
    hash, :class:`~veritee.errors.UntrustedSignerError` if no key of ``keyring`` has its key id,
    :class:`~veritee.errors.UnsupportedAlgorithmError` for hashes not allowed here, :class:`KeyFormatError` for a key
    of the wrong type, :class:`ImaSignatureFormatError` for malformed signature bytes.
    """
    sig = signature if isinstance(signature, ImaSignature) else parse_signature(signature)
    if sig.hash_algo.kernel_name != file_digest_alg:
        raise ImaSignatureError(
            f"signature is over a {sig.hash_algo.kernel_name} digest but the measured digest is {file_digest_alg}"
        )
    algorithm = _VERIFY_HASHES.get(sig.hash_algo)
    if algorithm is None:
        raise UnsupportedAlgorithmError(f"IMA signatures over {sig.hash_algo.kernel_name} digests are not accepted")
    if len(file_digest) != algorithm.digest_size:
        raise ImaSignatureError(
            f"{sig.hash_algo.kernel_name} file digest has {len(file_digest)} bytes, expected {algorithm.digest_size}"
        )
    public_key = _lookup(keyring, sig.key_id)
    if public_key is None:
        raise UntrustedSignerError(f"no key with IMA key id {sig.key_id.hex()} in the keyring")
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(sig.signature, file_digest, padding.PKCS1v15(), Prehashed(algorithm))
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(sig.signature, file_digest, ec.ECDSA(Prehashed(algorithm)))
        else:
            raise KeyFormatError(f"key {sig.key_id.hex()} is a {type(public_key).__name__}, not RSA or ECDSA")
    except InvalidSignature:
        raise ImaSignatureError(f"signature with key {sig.key_id.hex()} does not verify over the file digest") from None
    return sig


def verify_entry(entry: ImaEntry, keyring: Keyring) -> ImaSignature:
    """Verify the signature an ``ima-sig`` (or ``ima-modsig``) entry logged over its file digest.

    Raises :class:`ImaSignatureError` when the entry has no signature; otherwise as :func:`verify_signature`, with
    the line number in the message.
    """
    if entry.signature is None:
        raise ImaSignatureError(f"IMA measurement list line {entry.line} ({entry.path}) carries no file signature")
    try:
        return verify_signature(entry.signature, entry.file_digest, entry.file_digest_alg, keyring)
    except ImaSignatureError as exc:
        raise ImaSignatureError(f"IMA measurement list line {entry.line} ({entry.path}): {exc}") from exc
    except UntrustedSignerError as exc:
        raise UntrustedSignerError(f"IMA measurement list line {entry.line} ({entry.path}): {exc}") from exc
    except UnsupportedAlgorithmError as exc:
        raise UnsupportedAlgorithmError(f"IMA measurement list line {entry.line} ({entry.path}): {exc}") from exc
    except ImaSignatureFormatError as exc:
        raise ImaSignatureFormatError(f"IMA measurement list line {entry.line} ({entry.path}): {exc}") from exc
