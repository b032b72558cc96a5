"""TPM 2.0 constants (TCG Algorithm Registry, TPM 2.0 Part 2): algorithm ids, structure tags, curves, attributes."""

from __future__ import annotations

from enum import IntEnum, IntFlag

TPM_GENERATED_VALUE = 0xFF544347
"""TPMS_ATTEST.magic of every structure the TPM signs ("\\xffTCG")."""


class TpmAlgId(IntEnum):
    """TPM_ALG_ID (TCG Algorithm Registry)."""

    ERROR = 0x0000
    RSA = 0x0001
    TDES = 0x0003
    SHA1 = 0x0004
    HMAC = 0x0005
    AES = 0x0006
    MGF1 = 0x0007
    KEYEDHASH = 0x0008
    XOR = 0x000A
    SHA256 = 0x000B
    SHA384 = 0x000C
    SHA512 = 0x000D
    SHA256_192 = 0x000E
    NULL = 0x0010
    SM3_256 = 0x0012
    SM4 = 0x0013
    RSASSA = 0x0014
    RSAES = 0x0015
    RSAPSS = 0x0016
    OAEP = 0x0017
    ECDSA = 0x0018
    ECDH = 0x0019
    ECDAA = 0x001A
    SM2 = 0x001B
    ECSCHNORR = 0x001C
    ECMQV = 0x001D
    KDF1_SP800_56A = 0x0020
    KDF2 = 0x0021
    KDF1_SP800_108 = 0x0022
    ECC = 0x0023
    SYMCIPHER = 0x0025
    CAMELLIA = 0x0026
    SHA3_256 = 0x0027
    SHA3_384 = 0x0028
    SHA3_512 = 0x0029
    CMAC = 0x003F
    CTR = 0x0040
    OFB = 0x0041
    CBC = 0x0042
    CFB = 0x0043
    ECB = 0x0044


class TpmSt(IntEnum):
    """TPM_ST structure tags used in attestation structures (TPMI_ST_ATTEST)."""

    ATTEST_NV = 0x8014
    ATTEST_COMMAND_AUDIT = 0x8015
    ATTEST_SESSION_AUDIT = 0x8016
    ATTEST_CERTIFY = 0x8017
    ATTEST_QUOTE = 0x8018
    ATTEST_TIME = 0x8019
    ATTEST_CREATION = 0x801A
    ATTEST_NV_DIGEST = 0x801C


class TpmEccCurve(IntEnum):
    """TPM_ECC_CURVE."""

    NONE = 0x0000
    NIST_P192 = 0x0001
    NIST_P224 = 0x0002
    NIST_P256 = 0x0003
    NIST_P384 = 0x0004
    NIST_P521 = 0x0005
    BN_P256 = 0x0010
    BN_P638 = 0x0011
    SM2_P256 = 0x0020


class ObjectAttributes(IntFlag):
    """TPMA_OBJECT bits. Unknown (reserved) bits are kept as they are, so an area re-marshals byte for byte."""

    FIXED_TPM = 0x00000002
    ST_CLEAR = 0x00000004
    FIXED_PARENT = 0x00000010
    SENSITIVE_DATA_ORIGIN = 0x00000020
    USER_WITH_AUTH = 0x00000040
    ADMIN_WITH_POLICY = 0x00000080
    FIRMWARE_LIMITED = 0x00000100
    SVN_LIMITED = 0x00000200
    NO_DA = 0x00000400
    ENCRYPTED_DUPLICATION = 0x00000800
    RESTRICTED = 0x00010000
    DECRYPT = 0x00020000
    SIGN_ENCRYPT = 0x00040000
    X509_SIGN = 0x00080000


AK_ATTRIBUTES = (
    ObjectAttributes.FIXED_TPM
    | ObjectAttributes.FIXED_PARENT
    | ObjectAttributes.SENSITIVE_DATA_ORIGIN
    | ObjectAttributes.USER_WITH_AUTH
    | ObjectAttributes.RESTRICTED
    | ObjectAttributes.SIGN_ENCRYPT
)
"""The attributes `tpm2_createak` gives an attestation key (0x00050072)."""

HASH_ALGS = frozenset(
    {
        TpmAlgId.SHA1,
        TpmAlgId.SHA256,
        TpmAlgId.SHA384,
        TpmAlgId.SHA512,
        TpmAlgId.SM3_256,
        TpmAlgId.SHA3_256,
        TpmAlgId.SHA3_384,
        TpmAlgId.SHA3_512,
    }
)
"""TPMI_ALG_HASH values (without NULL)."""

HASH_DIGEST_SIZES = {
    TpmAlgId.SHA1: 20,
    TpmAlgId.SHA256: 32,
    TpmAlgId.SHA384: 48,
    TpmAlgId.SHA512: 64,
    TpmAlgId.SM3_256: 32,
    TpmAlgId.SHA3_256: 32,
    TpmAlgId.SHA3_384: 48,
    TpmAlgId.SHA3_512: 64,
}

ECC_CURVE_BYTES = {
    TpmEccCurve.NIST_P192: 24,
    TpmEccCurve.NIST_P224: 28,
    TpmEccCurve.NIST_P256: 32,
    TpmEccCurve.NIST_P384: 48,
    TpmEccCurve.NIST_P521: 66,
    TpmEccCurve.BN_P256: 32,
    TpmEccCurve.BN_P638: 80,
    TpmEccCurve.SM2_P256: 32,
}
"""Size in bytes of a coordinate (and of an ECDSA r or s) on each curve."""

# Largest sizes of the sized buffers (TPM 2.0 Part 2, with the TSS's MAX_* values).
MAX_DIGEST = 64  # TPM2B_DIGEST: sizeof(TPMU_HA)
MAX_NAME = 66  # TPM2B_NAME: sizeof(TPMU_NAME) = TPMT_HA (2 + 64) or a 4-byte handle
MAX_DATA = 66  # TPM2B_DATA: sizeof(TPMT_HA)
MAX_RSA_KEY_BYTES = 512  # TPM2B_PUBLIC_KEY_RSA (4096-bit keys)
MAX_ECC_KEY_BYTES = 128  # TPM2B_ECC_PARAMETER
MAX_NV_BUFFER = 2048  # TPM2B_MAX_NV_BUFFER
NUM_PCR_BANKS = 16  # TPML_PCR_SELECTION.count
PCR_SELECT_MAX = 4  # TPMS_PCR_SELECTION.sizeofSelect (32 PCRs)
MAX_PUBLIC = 1024  # sizeof(TPMT_PUBLIC) bound for TPM2B_PUBLIC


class Hierarchy(IntEnum):
    """TPM_RH handles of the hierarchies: the parent "name" of a primary object in its qualified name."""

    OWNER = 0x40000001
    NULL = 0x40000007
    ENDORSEMENT = 0x4000000B
    PLATFORM = 0x4000000C
