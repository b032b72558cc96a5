"""Independent builders of IMA ASCII lines and template data for the IMA tests (not using veritee.ima)."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

from helpers import shared_path

RUST_KEYLIME_LOG = ("tpm", "ima", "rustkeylime_ascii_runtime_measurements_ima-ng_sha1.txt")
RUST_KEYLIME_SHA1_PCR10 = "82231c67a69da98dc5b3aa10f6343d33109225fc"

# The IMA wiki's examples of the original 'ima' template (sourceforge linux-ima wiki, "Example 3").
WIKI_IMA_LINES = (
    "10 7971593a7ad22a7cce5b234e4bc5d71b04696af4 ima b5a166c10d153b7cc3e5b4f1eab1f71672b7c524 boot_aggregate\n"
    "10 2c7020ad8cab6b7419e4973171cb704bdbf52f77 ima e09e048c48301268ff38645f4c006137e42951d0 /init\n"
    "10 247dba6fc82b346803660382d1973c019243e59f ima 747acb096b906392a62734916e0bb39cef540931 ld-2.9.so\n"
)
# The IMA wiki's ima-sig example (a SHA-1 file digest and an RSA v2 signature of /usr/bin/mkdir).
WIKI_IMA_SIG_LINE = (
    "10 d27747646f317e3ca1205287d0615073fe676bc6 ima-sig sha1:08f8f20c14e89da468bb238d2012c9458ae67f6a /usr/bin/mkdir "
    "030202afab451100802b22e3ed9f6a70fb5babf030d11818152b493bd6bfd916005fad7fdcfd7f88d43f6cffaf6fd1ea3b75032dd702b66"
    "1d4717729e4a3fa4ee95a47f239955491fc8064eca8cb96302d305d59750ae4ffde0a5f615f910475eee72ae0306e4ae0269d7d04af2a485"
    "898eec3286795d621e83b7dedc99f5019b7ee49b189f3ded0a2"
)
# keylime/keylime keylime/ima/ima_test.py: ima-sig entries with an empty signature (note the kernel's trailing space).
KEYLIME_UNSIGNED = (
    "10 0c8a706a75a5689c1e168f0a573a3cbec33061b5 ima-sig "
    "sha256:e4cb9f5709c88376b5fc3743cd88e76b9aae8f3d992d845678de5215edb31216 boot_aggregate \n"
    "10 5426cf3031a43f5bfca183d79950698a95a728f6 ima-sig "
    "sha256:f1125b940480d20ad841d26d5ea253edc0704b5ec1548c891edf212cb1a9365e "
    "/lib/modules/5.4.48-openpower1/kernel/drivers/usb/common/usb-common.ko \n"
)
# keylime/keylime keylime/ima/ima_test.py KEYRINGS: an ima-buf entry carrying a certificate loaded onto .ima.
KEYLIME_IMA_BUF = (
    "10 978351440c6c8a17568f0c366b9ede28efd14f8c ima-buf "
    "sha256:a7d52aaa18c23d2d9bb2abb4308c0eeee67387a42259f4a6b1a42257065f3d5a .ima "
    "308201d130820178a003020102020101300906072a8648ce3d0401301b3119301706035504030c1054657374696e672d45434453412d4341"
    "301e170d3231303631313133353831365a170d3232303631313133353831365a3021311f301d06035504030c1665636473612d63612d7369"
    "676e65642d65632d6b65793059301306072a8648ce3d020106082a8648ce3d030107034200044ce55be36765b59de2767f6d6721be8bea8e"
    "3db4ccc25ab76c30f5d1c11752ae1699cc39d31b378f69fecbe65ce1eb09e075f840fe4c052bafb9039742b76202a381a73081a430090603"
    "551d1304023000301d0603551d0e04160414b6fb3c083d19695be441c5f59afb95742cb6058c30560603551d23044f304d80140a51da379e"
    "45bd7ac623c3f765b53e1e2dde5195a11fa41d301b3119301706035504030c1054657374696e672d45434453412d434182142bb351b0d645"
    "e4d8594316ac3c96fc6d9c83791530130603551d25040c300a06082b06010505070302300b0603551d0f040403020780300906072a8648ce"
    "3d04010348003045022033d47b623c9feefab7d6e68b001ac6463433f99b61ce7b951a32da065a5d17af022100f3d73e38070053aec63a94"
    "1ed36ae0dcfa25ed9cd538c459732a7e782132a4ca"
)


def log_text() -> str:
    return shared_path(*RUST_KEYLIME_LOG).read_text()


def e2e_dir() -> Path:
    return shared_path("tpm", "e2e-swtpm")


def read_pcrs_yaml(path: Path) -> dict[str, dict[int, bytes]]:
    """tpm2_pcrread's YAML ("  sha1:" then "    10: 0xABC..."), read as text so hex never becomes an int."""
    banks: dict[str, dict[int, bytes]] = {}
    current: dict[int, bytes] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line.endswith(":") and not line[0].isdigit():
            current = banks.setdefault(line[:-1], {})
        elif current is not None and ":" in line:
            index, value = line.split(":", 1)
            current[int(index)] = bytes.fromhex(value.strip().removeprefix("0x"))
    return banks


def field(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


def ng_data(alg: str, digest: bytes, path: bytes, *extra: bytes) -> bytes:
    return field(alg.encode() + b":\0" + digest) + field(path + b"\0") + b"".join(field(e) for e in extra)


def ima_data(digest: bytes, path: bytes) -> bytes:
    return digest + path + b"\0" * (256 - len(path))


def ng_line(alg: str, digest: bytes, path: str, *, pcr: int = 10, hash_name: str = "sha1") -> str:
    data = ng_data(alg, digest, path.encode("utf-8", "surrogateescape"))
    template_hash = hashlib.new(hash_name, data).hexdigest()
    return f"{pcr} {template_hash} ima-ng {alg}:{digest.hex()} {path}"


def sig_line(alg: str, digest: bytes, path: str, sig: bytes, *, pcr: int = 10) -> str:
    data = ng_data(alg, digest, path.encode(), sig)
    return f"{pcr} {hashlib.sha1(data).hexdigest()} ima-sig {alg}:{digest.hex()} {path} {sig.hex()}"


def buf_line(alg: str, path: str, buf: bytes) -> str:
    digest = hashlib.new(alg, buf).digest()
    data = ng_data(alg, digest, path.encode(), buf)
    return f"10 {hashlib.sha1(data).hexdigest()} ima-buf {alg}:{digest.hex()} {path} {buf.hex()}"


def ima_line(digest: bytes, path: str) -> str:
    return f"10 {hashlib.sha1(ima_data(digest, path.encode())).hexdigest()} ima {digest.hex()} {path}"


def extend(name: str, pcr: bytes, digest: bytes) -> bytes:
    return hashlib.new(name, pcr + digest).digest()
