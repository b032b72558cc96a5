"""Software MakeCredential (the verifier's side) against TPM2_ActivateCredential on swtpm, both EK kinds."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from veritee.errors import DecodeError
from veritee.tpm.credential import make_credential
from veritee.tpm.device import AkAlg, AttestationKey, EkKind, TpmCommandError, TpmDevice

pytestmark = pytest.mark.swtpm

AKS = [(alg, parent) for alg in AkAlg for parent in EkKind]
TPM_RC_INTEGRITY = 0x09F
RC_FMT1 = 0x080


def _base(rc: int) -> int:
    """The format-1 error number of a TPM response code (parameter/handle/session number stripped)."""
    return rc & (0x3F | RC_FMT1) if rc & RC_FMT1 else rc


@pytest.mark.parametrize(("alg", "parent"), AKS)
@pytest.mark.parametrize("ek", list(EkKind))
def test_software_make_credential_activates_on_the_tpm(
    tpm: TpmDevice, aks: dict[tuple[AkAlg, EkKind], AttestationKey], alg: AkAlg, parent: EkKind, ek: EkKind
) -> None:
    ak = aks[(alg, parent)]
    secret = os.urandom(32)
    blob, encrypted = make_credential(tpm.create_ek(ek), ak.name, secret)
    assert tpm.activate_credential(ak, ek, blob, encrypted) == secret


def test_longest_credential_for_the_p384_ek(tpm: TpmDevice, aks: dict[tuple[AkAlg, EkKind], AttestationKey]) -> None:
    ak = aks[(AkAlg.ECC_P256_ECDSA_SHA256, EkKind.ECC)]
    secret = os.urandom(48)  # SHA-384 name algorithm: up to 48 bytes
    blob, encrypted = make_credential(tpm.create_ek(EkKind.ECC), ak.name, secret)
    assert tpm.activate_credential(ak, EkKind.ECC, blob, encrypted) == secret


@pytest.mark.parametrize("ek", list(EkKind))
def test_credential_for_another_ak_name_fails(
    tpm: TpmDevice, aks: dict[tuple[AkAlg, EkKind], AttestationKey], ek: EkKind
) -> None:
    intended = aks[(AkAlg.RSA2048_RSASSA_SHA256, EkKind.RSA)]
    other = aks[(AkAlg.ECC_P256_ECDSA_SHA256, EkKind.ECC)]
    blob, encrypted = make_credential(tpm.create_ek(ek), intended.name, b"top secret")
    with pytest.raises(TpmCommandError, match="TPM2_ActivateCredential failed") as excinfo:
        tpm.activate_credential(other, ek, blob, encrypted)
    assert _base(excinfo.value.rc) == TPM_RC_INTEGRITY
    assert tpm.open_handles() == []  # the failure path flushed the AK, the EK and the policy session


def test_credential_for_the_other_ek_fails(tpm: TpmDevice, aks: dict[tuple[AkAlg, EkKind], AttestationKey]) -> None:
    ak = aks[(AkAlg.RSA2048_RSASSA_SHA256, EkKind.RSA)]
    blob, encrypted = make_credential(tpm.create_ek(EkKind.RSA), ak.name, b"top secret")
    with pytest.raises(TpmCommandError):
        tpm.activate_credential(ak, EkKind.ECC, blob, encrypted)
    assert tpm.open_handles() == []


def test_tampered_credential_blob_fails(tpm: TpmDevice, aks: dict[tuple[AkAlg, EkKind], AttestationKey]) -> None:
    ak = aks[(AkAlg.RSA2048_RSASSA_SHA256, EkKind.RSA)]
    blob, encrypted = make_credential(tpm.create_ek(EkKind.RSA), ak.name, b"top secret")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(TpmCommandError) as excinfo:
        tpm.activate_credential(ak, EkKind.RSA, tampered, encrypted)
    assert _base(excinfo.value.rc) == TPM_RC_INTEGRITY


def test_malformed_blobs_are_decode_errors(tpm: TpmDevice, aks: dict[tuple[AkAlg, EkKind], AttestationKey]) -> None:
    ak = aks[(AkAlg.RSA2048_RSASSA_SHA256, EkKind.RSA)]
    blob, encrypted = make_credential(tpm.create_ek(EkKind.RSA), ak.name, b"top secret")
    with pytest.raises(DecodeError):
        tpm.activate_credential(ak, EkKind.RSA, blob[:-1], encrypted)
    with pytest.raises(DecodeError):
        tpm.activate_credential(ak, EkKind.RSA, blob, encrypted + b"\x00")
    with pytest.raises(DecodeError):
        tpm.activate_credential(ak, EkKind.RSA, b"", encrypted)


def test_tpm2_makecredential_blob_activates_with_our_device(
    tpm: TpmDevice, aks: dict[tuple[AkAlg, EkKind], AttestationKey], tmp_path: Path
) -> None:
    """tpm2-tools' software MakeCredential (a peer implementation) feeding our ActivateCredential."""
    tool = shutil.which("tpm2_makecredential")
    if tool is None:
        pytest.skip("tpm2_makecredential (tpm2-tools) is not installed")
    ak = aks[(AkAlg.ECC_P256_ECDSA_SHA256, EkKind.RSA)]
    (tmp_path / "ek.pub").write_bytes(tpm.create_ek(EkKind.RSA))
    (tmp_path / "secret.bin").write_bytes(b"sixteen byte key")
    args = [tool, "-T", "none", "-u", "ek.pub", "-s", "secret.bin", "-n", ak.name.hex(), "-o", "cred.out"]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    data = (tmp_path / "cred.out").read_bytes()
    magic, version = struct.unpack(">II", data[:8])
    assert (magic, version) == (0xBADCC0DE, 1)
    id_size = struct.unpack(">H", data[8:10])[0]
    blob, encrypted = data[8 : 10 + id_size], data[10 + id_size :]
    assert tpm.activate_credential(ak, EkKind.RSA, blob, encrypted) == b"sixteen byte key"
