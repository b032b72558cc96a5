"""One IMA measurement-list entry and the binary template data its template hash covers.

Template data layouts (Linux security/integrity/ima/ima_template_lib.c, ima_crypto.c):

* every template except ``ima``: each field as ``<u32 little-endian length><bytes>``;
* ``d-ng`` field bytes: ``<hash algo name> ":" NUL <digest>`` (the ASCII list prints ``<algo>:<hex>``);
* ``n-ng`` field bytes: the path name followed by one NUL (the length counts the NUL);
* ``sig``, ``buf``, ``modsig`` field bytes: raw bytes, length 0 when absent (the ASCII list prints nothing);
* the original ``ima`` template hashes ``<digest (20 or 16 bytes)> <name padded with NULs to 256 bytes>``
  without any length prefixes.

A template hash of all zeros marks a violation (time-of-measure/time-of-use or open-writers): the kernel logs zeros
and extends the PCR with all-0xff bytes of each bank's size.
"""

from __future__ import annotations

import struct
from enum import StrEnum
from typing import NamedTuple

from veritee.tpm.alg import HashAlg


class ImaTemplate(StrEnum):
    """The measurement templates this package parses (the third column of the ASCII list)."""

    IMA = "ima"
    IMA_NG = "ima-ng"
    IMA_SIG = "ima-sig"
    IMA_BUF = "ima-buf"
    IMA_MODSIG = "ima-modsig"


#: hash_algo_name[] of the kernel (crypto/hash_info.c): the names a ``d-ng`` field may carry, with digest sizes.
KERNEL_HASH_SIZES: dict[str, int] = {
    "md4": 16,
    "md5": 16,
    "sha1": 20,
    "rmd160": 20,
    "sha256": 32,
    "sha384": 48,
    "sha512": 64,
    "sha224": 28,
    "rmd128": 16,
    "rmd256": 32,
    "rmd320": 40,
    "wp256": 32,
    "wp384": 48,
    "wp512": 64,
    "tgr128": 16,
    "tgr160": 20,
    "tgr192": 24,
    "sm3": 32,
    "streebog256": 32,
    "streebog512": 64,
    "sha3-256": 32,
    "sha3-384": 48,
    "sha3-512": 64,
    "ascon-hash256": 32,
}

#: Hash algorithm of a logged template hash, from its size (the ASCII list of each bank prints that bank's hash).
TEMPLATE_HASH_ALGS: dict[int, HashAlg] = {
    20: HashAlg.SHA1,
    32: HashAlg.SHA256,
    48: HashAlg.SHA384,
    64: HashAlg.SHA512,
}

#: Name field size of the original ``ima`` template: IMA_EVENT_NAME_LEN_MAX (255) + 1.
IMA_NAME_FIELD_SIZE = 256

_U32 = struct.Struct("<I").pack


class ImaEntry(NamedTuple):
    """One line of ``ascii_runtime_measurements``.

    Immutable and slot-free (a tuple): building one costs about as much as a tuple, which matters at a million lines.
    ``line`` is the 0-based line number in the whole measurement list. ``template_data`` is the exact byte string the
    template hash covers. ``signature`` is the ``sig`` field (None when empty or not in the template), ``buffer`` the
    ``buf`` field of ``ima-buf`` (None for other templates). The ``modsig_*`` fields are set for ``ima-modsig`` entries
    that carry an appended signature.
    """

    line: int
    pcr: int
    template_hash: bytes
    template_name: ImaTemplate
    file_digest_alg: str
    file_digest: bytes
    path: str
    signature: bytes | None
    buffer: bytes | None
    template_data: bytes
    modsig_digest_alg: str | None = None
    modsig_digest: bytes | None = None
    modsig: bytes | None = None

    @property
    def is_violation(self) -> bool:
        """True for a violation entry (template hash all zeros): the PCR was extended with all-0xff bytes."""
        return not any(self.template_hash)

    @property
    def template_hash_alg(self) -> HashAlg:
        """The hash algorithm of the logged template hash (SHA-1 in the classic list), from its size."""
        return TEMPLATE_HASH_ALGS[len(self.template_hash)]

    @property
    def path_bytes(self) -> bytes:
        """The path name as the kernel recorded it (non-UTF-8 bytes survive via surrogateescape)."""
        return self.path.encode("utf-8", "surrogateescape")

    def template_digest(self, alg: HashAlg) -> bytes:
        """The digest this entry extends into the ``alg`` bank (all-0xff for violations)."""
        if self.is_violation:
            return b"\xff" * alg.digest_size
        return alg.digest(self.template_data)


def digest_ng_field(alg: str, digest: bytes) -> bytes:
    """The bytes of a ``d-ng`` field (without its length prefix)."""
    return alg.encode("ascii") + b":\x00" + digest


def name_ng_field(path: bytes) -> bytes:
    """The bytes of an ``n-ng`` field (without its length prefix): the name and its NUL."""
    return path + b"\x00"


def ng_template_data(*fields: bytes) -> bytes:
    """Template data of a non-legacy template: each field as ``<u32 le length><bytes>``."""
    return b"".join(_U32(len(field)) + field for field in fields)


def ima_template_data(digest: bytes, path: bytes) -> bytes:
    """Template data of the original ``ima`` template: digest and the name NUL-padded to 256 bytes."""
    return digest + path.ljust(IMA_NAME_FIELD_SIZE, b"\x00")


def format_entry(entry: ImaEntry) -> str:
    """The ASCII-list line (without newline) the kernel prints for ``entry``."""
    head = f"{entry.pcr:2d} {entry.template_hash.hex()} {entry.template_name.value} "
    if entry.template_name is ImaTemplate.IMA:
        return f"{head}{entry.file_digest.hex()} {entry.path}"
    fields = [f"{entry.file_digest_alg}:{entry.file_digest.hex()}", entry.path]
    if entry.template_name is ImaTemplate.IMA_SIG:
        fields.append((entry.signature or b"").hex())
    elif entry.template_name is ImaTemplate.IMA_BUF:
        fields.append((entry.buffer or b"").hex())
    elif entry.template_name is ImaTemplate.IMA_MODSIG:
        modsig_digest = ""
        if entry.modsig_digest_alg is not None and entry.modsig_digest is not None:
            modsig_digest = f"{entry.modsig_digest_alg}:{entry.modsig_digest.hex()}"
        fields += [(entry.signature or b"").hex(), modsig_digest, (entry.modsig or b"").hex()]
    return head + " ".join(fields)
