"""Helpers for the appraisal tests: the shared e2e-swtpm bundle, copies to alter, and a software TPM for quotes."""

from __future__ import annotations

import hashlib
import shutil
import struct
from collections.abc import Mapping
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from helpers import shared_path
from veritee.appraisal import Evidence
from veritee.appraisal.bundle import evidence_from_bundle
from veritee.appraisal.policy import (
    CompiledPolicy,
    compile_policy,
    import_keylime_refstate,
    import_keylime_runtime_policy,
)
from veritee.tpm.alg import HashAlg, extend
from veritee.tpm.attest import PcrSelection, TpmsClockInfo
from veritee.tpm.public import TpmtPublic
from veritee.tpm.quote import build_quote_attest, sign_attest

BUNDLE_FILES = (
    "ak.pub",
    "quote.msg",
    "quote.sig",
    "quote.pcrs",
    "nonce.hex",
    "binary_bios_measurements",
    "ascii_runtime_measurements",
    "runtime_policy.json",
    "mb_refstate.json",
)


def bundle_dir() -> Path:
    return shared_path("tpm", "e2e-swtpm")


@cache
def _bundle_bytes() -> dict[str, bytes]:
    root = bundle_dir()
    return {name: (root / name).read_bytes() for name in BUNDLE_FILES}


def bundle_files() -> dict[str, bytes]:
    """A fresh, mutable copy of the bundle's file contents."""
    return dict(_bundle_bytes())


def copy_bundle(tmp_path: Path) -> Path:
    """The bundle copied into ``tmp_path / "bundle"`` (writable), for tests that alter files on disk."""
    target = tmp_path / "bundle"
    target.mkdir(parents=True)
    for name in BUNDLE_FILES:
        shutil.copyfile(bundle_dir() / name, target / name)
    return target


def evidence(files: Mapping[str, bytes]) -> Evidence:
    return evidence_from_bundle(files)


def keylime_policy(files: Mapping[str, bytes]) -> CompiledPolicy:
    return compile_policy(
        import_keylime_refstate(files["mb_refstate.json"]),
        import_keylime_runtime_policy(files["runtime_policy.json"]),
        name="e2e-keylime",
    )


# --- IMA lines built independently of veritee.ima ------------------------------------------------------------------
def _field(data: bytes) -> bytes:
    return struct.pack("<I", len(data)) + data


def ima_ng_line(path: str, digest: bytes, alg: str = "sha256", *, pcr: int = 10) -> tuple[str, bytes]:
    """An ``ima-ng`` line with a correct SHA-1 template hash, and its template data."""
    data = _field(alg.encode() + b":\x00" + digest) + _field(path.encode() + b"\x00")
    return f"{pcr} {hashlib.sha1(data).hexdigest()} ima-ng {alg}:{digest.hex()} {path}", data


def ima_sig_line(path: str, digest: bytes, signature: bytes, alg: str = "sha256") -> tuple[str, bytes]:
    data = _field(alg.encode() + b":\x00" + digest) + _field(path.encode() + b"\x00") + _field(signature)
    return f"10 {hashlib.sha1(data).hexdigest()} ima-sig {alg}:{digest.hex()} {path} {signature.hex()}", data


def ima_buf_line(name: str, buffer: bytes) -> tuple[str, bytes]:
    digest = hashlib.sha256(buffer).digest()
    data = _field(b"sha256:\x00" + digest) + _field(name.encode() + b"\x00") + _field(buffer)
    return f"10 {hashlib.sha1(data).hexdigest()} ima-buf sha256:{digest.hex()} {name} {buffer.hex()}", data


def pcr10(template_datas: list[bytes]) -> bytes:
    """SHA-256 PCR 10 after extending SHA-256 of each template data."""
    value = bytes(32)
    for data in template_datas:
        value = extend(HashAlg.SHA256, value, hashlib.sha256(data).digest())
    return value


# --- a software TPM ---------------------------------------------------------------------------------------------
class SoftTpm:
    """Quotes signed by a software P-256 attestation key (what a TPM would return), for synthetic evidence."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.public = TpmtPublic.from_public_key(self.key.public_key())

    def evidence(
        self,
        pcrs: Mapping[int, bytes],
        *,
        nonce: bytes = b"0123456789abcdef0123",
        ima_log: str | None = None,
        event_log: bytes | None = None,
        clock: TpmsClockInfo | None = None,
    ) -> Evidence:
        banks = {HashAlg.SHA256: dict(pcrs)}
        selection = PcrSelection.of(HashAlg.SHA256, sorted(pcrs))
        attest = build_quote_attest(
            qualified_signer=b"\x00\x0b" + bytes(32),
            selections=[selection],
            banks=banks,
            nonce=nonce,
            clock_info=clock,
        )
        signature = sign_attest(self.key, attest)
        return Evidence(
            ak_public=self.public.to_tpm2b(),
            quote=attest,
            signature=signature.pack(),
            pcrs=banks,
            nonce=nonce,
            event_log=event_log,
            ima_log=ima_log,
        )
