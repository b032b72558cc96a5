"""TPM algorithm identifiers (TCG Algorithm Registry) and the hash functions behind them."""

from __future__ import annotations

import hashlib
from enum import IntEnum

from veritee.errors import UnsupportedAlgorithmError


class HashAlg(IntEnum):
    """TPM_ALG_ID values of the hash algorithms used for PCR banks and event logs."""

    SHA1 = 0x0004
    SHA256 = 0x000B
    SHA384 = 0x000C
    SHA512 = 0x000D
    SM3_256 = 0x0012

    @property
    def digest_size(self) -> int:
        return _SIZES[self]

    @property
    def label(self) -> str:
        """The bank name used in JSON output and tpm2-tools ("sha1", "sha256", ...)."""
        return self.name.lower().replace("_", "")

    def new(self) -> hashlib._Hash:
        """A fresh hashlib object for this algorithm."""
        try:
            return hashlib.new(_HASHLIB[self])
        except ValueError as exc:  # sm3 is missing from some OpenSSL builds
            raise UnsupportedAlgorithmError(f"hash {self.name} is not available here") from exc

    def digest(self, data: bytes) -> bytes:
        h = self.new()
        h.update(data)
        return h.digest()

    @classmethod
    def from_id(cls, value: int) -> HashAlg:
        try:
            return cls(value)
        except ValueError:
            raise UnsupportedAlgorithmError(f"unknown TPM hash algorithm 0x{value:04x}") from None

    @classmethod
    def from_label(cls, label: str) -> HashAlg:
        for alg in cls:
            if alg.label == label.lower().replace("-", "").replace("_", ""):
                return alg
        raise UnsupportedAlgorithmError(f"unknown hash bank {label!r}")


_SIZES = {HashAlg.SHA1: 20, HashAlg.SHA256: 32, HashAlg.SHA384: 48, HashAlg.SHA512: 64, HashAlg.SM3_256: 32}
_HASHLIB = {
    HashAlg.SHA1: "sha1",
    HashAlg.SHA256: "sha256",
    HashAlg.SHA384: "sha384",
    HashAlg.SHA512: "sha512",
    HashAlg.SM3_256: "sm3",
}


def extend(alg: HashAlg, pcr: bytes, digest: bytes) -> bytes:
    """PCR extend: H(pcr || digest)."""
    h = alg.new()
    h.update(pcr)
    h.update(digest)
    return h.digest()
