"""COSE registries used by veritee: algorithms, header labels, key types, curves and key parameters.

Identifiers come from the IANA COSE registries: RFC 9053 (ES256/384/512, EdDSA, HMAC, AES-KW, AES-GCM, ECDH-ES,
direct), RFC 9864 (fully-specified ESP256 -9, ESP384 -51, ESP512 -52, Ed25519 -19) and RFC 9459 (AES-CTR -65534..).
"""

from __future__ import annotations

from enum import Enum, IntEnum

from veritee.errors import UnsupportedAlgorithmError

__all__ = ["AlgKind", "Algorithm", "Curve", "HeaderLabel", "KeyParam", "KeyType"]


class AlgKind(Enum):
    """What an algorithm does, which decides which COSE structure and key it belongs to."""

    SIGNATURE = "signature"
    MAC = "mac"
    CONTENT = "content-encryption"
    KEY_WRAP = "key-wrap"
    KEY_AGREEMENT = "key-agreement"
    DIRECT = "direct"


class Algorithm(IntEnum):
    """COSE algorithm identifiers veritee implements."""

    # signatures
    ES256 = -7
    EdDSA = -8
    ESP256 = -9
    Ed25519 = -19
    ES384 = -35
    ES512 = -36
    ESP384 = -51
    ESP512 = -52
    # MAC
    HMAC_256_64 = 4
    HMAC_256_256 = 5
    HMAC_384_384 = 6
    HMAC_512_512 = 7
    # AES key wrap and direct
    A128KW = -3
    A192KW = -4
    A256KW = -5
    direct = -6
    # ECDH-ES key agreement (ephemeral-static) with HKDF-SHA256
    ECDH_ES_HKDF_256 = -25
    ECDH_ES_A128KW = -29
    ECDH_ES_A192KW = -30
    ECDH_ES_A256KW = -31
    # content encryption
    A128GCM = 1
    A192GCM = 2
    A256GCM = 3
    A128CTR = -65534
    A192CTR = -65533
    A256CTR = -65532

    @classmethod
    def from_id(cls, value: object) -> Algorithm:
        """The algorithm for a header/key value; :class:`UnsupportedAlgorithmError` for anything else."""
        if type(value) is int or (isinstance(value, int) and not isinstance(value, bool)):
            found = cls._value2member_map_.get(value)
            if found is not None:
                return found  # type: ignore[return-value]
        raise UnsupportedAlgorithmError(f"unsupported COSE algorithm {value!r}")

    @property
    def kind(self) -> AlgKind:
        return _KIND[self]

    @property
    def key_size(self) -> int:
        """Symmetric key (or derived key) length in bytes for MAC, key-wrap and content algorithms."""
        size = _KEY_SIZE.get(self)
        if size is None:
            raise UnsupportedAlgorithmError(f"{self.name} has no symmetric key size")
        return size

    @property
    def hash_name(self) -> str:
        """The hash of a signature or MAC algorithm (``sha256``, ``sha384``, ``sha512``, or ``""`` for EdDSA)."""
        return _HASH.get(self, "")

    @property
    def curve(self) -> Curve | None:
        """The curve a signature algorithm requires (``None`` when any EdDSA curve is allowed)."""
        return _CURVE.get(self)

    @property
    def wrap_alg(self) -> Algorithm | None:
        """For ECDH-ES + AES-KW: the key-wrap algorithm applied to the derived key-encryption key."""
        return _ECDH_WRAP.get(self)


class HeaderLabel(IntEnum):
    """COSE header parameter labels (RFC 9052 §3.1, RFC 9053 §6, RFC 9360)."""

    ALG = 1
    CRIT = 2
    CONTENT_TYPE = 3
    KID = 4
    IV = 5
    PARTIAL_IV = 6
    COUNTER_SIGNATURE = 7
    KID_CONTEXT = 10
    X5BAG = 32
    X5CHAIN = 33
    X5T = 34
    X5U = 35
    EPHEMERAL_KEY = -1
    STATIC_KEY = -2
    STATIC_KEY_ID = -3
    SALT = -20
    PARTY_U_IDENTITY = -21
    PARTY_U_NONCE = -22
    PARTY_U_OTHER = -23
    PARTY_V_IDENTITY = -24
    PARTY_V_NONCE = -25
    PARTY_V_OTHER = -26


class KeyType(IntEnum):
    """COSE key types (``kty``)."""

    OKP = 1
    EC2 = 2
    SYMMETRIC = 4


class Curve(IntEnum):
    """COSE elliptic curves (``crv``)."""

    P256 = 1
    P384 = 2
    P521 = 3
    X25519 = 4
    X448 = 5
    Ed25519 = 6
    Ed448 = 7

    @property
    def coordinate_size(self) -> int:
        return _COORD[self]


class KeyParam(IntEnum):
    """COSE_Key parameter labels (RFC 9052 §7.1, RFC 9053 §7)."""

    KTY = 1
    KID = 2
    ALG = 3
    KEY_OPS = 4
    BASE_IV = 5
    CRV = -1
    X = -2
    Y = -3
    D = -4
    K = -1  # symmetric key value (same label as crv, kty 4 only)


A = Algorithm
_KIND: dict[Algorithm, AlgKind] = {
    **{a: AlgKind.SIGNATURE for a in (A.ES256, A.EdDSA, A.ESP256, A.Ed25519, A.ES384, A.ES512, A.ESP384, A.ESP512)},
    **{a: AlgKind.MAC for a in (A.HMAC_256_64, A.HMAC_256_256, A.HMAC_384_384, A.HMAC_512_512)},
    **{a: AlgKind.KEY_WRAP for a in (A.A128KW, A.A192KW, A.A256KW)},
    A.direct: AlgKind.DIRECT,
    **{a: AlgKind.KEY_AGREEMENT for a in (A.ECDH_ES_HKDF_256, A.ECDH_ES_A128KW, A.ECDH_ES_A192KW, A.ECDH_ES_A256KW)},
    **{a: AlgKind.CONTENT for a in (A.A128GCM, A.A192GCM, A.A256GCM, A.A128CTR, A.A192CTR, A.A256CTR)},
}
_KEY_SIZE: dict[Algorithm, int] = {
    A.HMAC_256_64: 32, A.HMAC_256_256: 32, A.HMAC_384_384: 48, A.HMAC_512_512: 64,
    A.A128KW: 16, A.A192KW: 24, A.A256KW: 32,
    A.A128GCM: 16, A.A192GCM: 24, A.A256GCM: 32, A.A128CTR: 16, A.A192CTR: 24, A.A256CTR: 32,
}  # fmt: skip
_HASH: dict[Algorithm, str] = {
    A.ES256: "sha256", A.ESP256: "sha256", A.ES384: "sha384", A.ESP384: "sha384", A.ES512: "sha512",
    A.ESP512: "sha512", A.HMAC_256_64: "sha256", A.HMAC_256_256: "sha256", A.HMAC_384_384: "sha384",
    A.HMAC_512_512: "sha512",
}  # fmt: skip
# ES256/384/512 are used with their matching curve only (RFC 9864 §2.1 deprecates the other pairings).
_CURVE: dict[Algorithm, Curve] = {
    A.ES256: Curve.P256, A.ESP256: Curve.P256, A.ES384: Curve.P384, A.ESP384: Curve.P384,
    A.ES512: Curve.P521, A.ESP512: Curve.P521, A.Ed25519: Curve.Ed25519,
}  # fmt: skip
_ECDH_WRAP: dict[Algorithm, Algorithm] = {A.ECDH_ES_A128KW: A.A128KW, A.ECDH_ES_A192KW: A.A192KW,
                                          A.ECDH_ES_A256KW: A.A256KW}  # fmt: skip
_COORD: dict[Curve, int] = {Curve.P256: 32, Curve.P384: 48, Curve.P521: 66, Curve.X25519: 32, Curve.X448: 56,
                            Curve.Ed25519: 32, Curve.Ed448: 57}  # fmt: skip
del A
