"""AKs, quotes and PCRs on swtpm, verified with `cryptography` and with tpm2_checkquote (tpm2-tools) as a peer."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from tpm_device_checks import composite, parse_quote, parse_signing_public, tools_pcr_file, verify_quote_signature

from swtpm_harness import start_swtpm
from veritee.errors import DecodeError, DeviceError, UnsupportedAlgorithmError, ValidationError
from veritee.tpm.alg import HashAlg, extend
from veritee.tpm.device import AkAlg, AttestationKey, EkKind, TpmCommandError, TpmDevice
from veritee.tpm.swtpm import SwtpmProcess

pytestmark = pytest.mark.swtpm

AKS = [(alg, parent) for alg in AkAlg for parent in EkKind]
SHA256_0_10 = {"sha256": list(range(11))}
RESTRICTED_SIGN = 0x00010000 | 0x00040000
FIXED = 0x00000002 | 0x00000010


@pytest.mark.parametrize(("alg", "parent"), AKS)
def test_ak_public_and_name(aks: dict[tuple[AkAlg, EkKind], AttestationKey], alg: AkAlg, parent: EkKind) -> None:
    ak = aks[(alg, parent)]
    public = parse_signing_public(ak.public)
    assert public.attributes & (RESTRICTED_SIGN | FIXED) == RESTRICTED_SIGN | FIXED
    assert public.scheme == (0x0014 if alg is AkAlg.RSA2048_RSASSA_SHA256 else 0x0018)
    assert public.scheme_hash == 0x000B
    assert public.name == ak.name
    assert (ak.alg, ak.parent) == (alg, parent)


@pytest.mark.parametrize(("alg", "parent"), AKS)
def test_quote_verifies_with_cryptography(
    tpm: TpmDevice, aks: dict[tuple[AkAlg, EkKind], AttestationKey], alg: AkAlg, parent: EkKind
) -> None:
    ak = aks[(alg, parent)]
    nonce = os.urandom(32)
    quote = tpm.quote(ak, SHA256_0_10, nonce)
    info = parse_quote(quote.attest)
    assert info.extra_data == nonce
    assert info.selection == [("sha256", list(range(11)))]
    assert list(quote.pcrs) == ["sha256"] and sorted(quote.pcrs["sha256"]) == list(range(11))
    assert info.pcr_digest == composite(quote.pcrs)
    assert quote.pcrs == tpm.pcr_read(SHA256_0_10)
    public = parse_signing_public(ak.public)
    verify_quote_signature(public, quote.attest, quote.signature)
    # endorsement-hierarchy AK: clock and counters are real, not obfuscated
    assert info.reset_count < 1000 and info.restart_count < 1000 and info.safe == 1
    tampered = bytearray(quote.attest)
    tampered[-1] ^= 1
    with pytest.raises(InvalidSignature):
        verify_quote_signature(public, bytes(tampered), quote.signature)


def test_quote_with_two_banks(tpm: TpmDevice, aks: dict[tuple[AkAlg, EkKind], AttestationKey]) -> None:
    selection = {"sha1": [0, 7, 10], "sha256": [10, 0, 7, 7]}
    quote = tpm.quote(aks[(AkAlg.ECC_P256_ECDSA_SHA256, EkKind.ECC)], selection, b"")
    info = parse_quote(quote.attest)
    assert info.selection == [("sha1", [0, 7, 10]), ("sha256", [0, 7, 10])]
    assert [len(v) for bank in quote.pcrs.values() for v in bank.values()] == [20] * 3 + [32] * 3
    assert info.pcr_digest == composite(quote.pcrs)
    assert info.extra_data == b""


@pytest.mark.parametrize(
    ("alg", "parent"), [(AkAlg.RSA2048_RSASSA_SHA256, EkKind.RSA), (AkAlg.ECC_P256_ECDSA_SHA256, EkKind.ECC)]
)
def test_tpm2_checkquote_accepts_our_quote(
    tpm: TpmDevice, aks: dict[tuple[AkAlg, EkKind], AttestationKey], tmp_path: Path, alg: AkAlg, parent: EkKind
) -> None:
    checkquote = shutil.which("tpm2_checkquote")
    if checkquote is None:
        pytest.skip("tpm2_checkquote (tpm2-tools) is not installed")
    ak = aks[(alg, parent)]
    nonce = os.urandom(20)
    quote = tpm.quote(ak, SHA256_0_10, nonce)
    files = {"ak.pub": ak.public, "quote.msg": quote.attest, "quote.sig": quote.signature}
    files["quote.pcrs"] = tools_pcr_file(quote.pcrs)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)

    def run(nonce_hex: str, pcrs_file: str = "quote.pcrs") -> subprocess.CompletedProcess[str]:
        args = [checkquote, "-u", "ak.pub", "-m", "quote.msg", "-s", "quote.sig", "-g", "sha256"]
        args += ["-f", pcrs_file, "-q", nonce_hex]
        return subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False)

    ok = run(nonce.hex())
    assert ok.returncode == 0, ok.stderr
    assert run(os.urandom(20).hex()).returncode != 0
    wrong = {"sha256": {**quote.pcrs["sha256"], 3: b"\x01" * 32}}
    (tmp_path / "bad.pcrs").write_bytes(tools_pcr_file(wrong))
    assert run(nonce.hex(), "bad.pcrs").returncode != 0


def test_pcr_extend_changes_the_quote(tpm: TpmDevice, aks: dict[tuple[AkAlg, EkKind], AttestationKey]) -> None:
    ak = aks[(AkAlg.RSA2048_RSASSA_SHA256, EkKind.RSA)]
    before = tpm.quote(ak, SHA256_0_10, b"n1")
    sha1_before = tpm.pcr_read({"sha1": [10]})["sha1"][10]
    digest256, digest1 = HashAlg.SHA256.digest(b"measured"), HashAlg.SHA1.digest(b"measured")
    tpm.pcr_extend(10, {"sha256": digest256, "sha1": digest1})
    after = tpm.quote(ak, SHA256_0_10, b"n2")
    assert after.pcrs["sha256"][10] == extend(HashAlg.SHA256, before.pcrs["sha256"][10], digest256)
    assert {i: v for i, v in after.pcrs["sha256"].items() if i != 10} == {
        i: v for i, v in before.pcrs["sha256"].items() if i != 10
    }
    assert tpm.pcr_read({"sha1": [10]})["sha1"][10] == extend(HashAlg.SHA1, sha1_before, digest1)
    assert parse_quote(after.attest).pcr_digest != parse_quote(before.attest).pcr_digest
    assert parse_quote(after.attest).pcr_digest == composite(after.pcrs)


def test_fifty_quotes_do_not_exhaust_the_three_slots(
    tpm: TpmDevice, aks: dict[tuple[AkAlg, EkKind], AttestationKey]
) -> None:
    ak = aks[(AkAlg.RSA2048_RSASSA_SHA256, EkKind.RSA)]
    public = parse_signing_public(ak.public)
    for i in range(50):
        quote = tpm.quote(ak, SHA256_0_10, i.to_bytes(4, "big"))
        verify_quote_signature(public, quote.attest, quote.signature)
    assert tpm.open_handles() == []


def test_pcr_read_all_24_in_several_calls(tpm: TpmDevice) -> None:
    values = tpm.pcr_read({"sha256": range(24), "sha1": range(24)})
    assert [sorted(bank) for bank in values.values()] == [list(range(24))] * 2
    assert values["sha256"][17] == b"\xff" * 32  # locality PCRs 17-22 start at all-ones
    assert values["sha1"][0] == b"\x00" * 20


def test_inactive_bank_is_a_device_error(tpm: TpmDevice) -> None:
    with pytest.raises(DeviceError, match="sha384"):
        tpm.pcr_read({"sha256": [0], "sha384": [0]})


@pytest.mark.parametrize(
    ("selection", "error"),
    [
        ({}, ValidationError),
        ({"sha256": []}, ValidationError),
        ({"sha256": [24]}, ValidationError),
        ({"sha256": [-1]}, ValidationError),
        ({"sha256": [True]}, ValidationError),
        ({"sha256": [0], "SHA-256": [1]}, ValidationError),
        ({"md5": [0]}, UnsupportedAlgorithmError),
    ],
)
def test_bad_selection(tpm: TpmDevice, selection: dict[str, list[int]], error: type[Exception]) -> None:
    with pytest.raises(error):
        tpm.pcr_read(selection)


def test_bad_extend_and_nonce(tpm: TpmDevice, aks: dict[tuple[AkAlg, EkKind], AttestationKey]) -> None:
    with pytest.raises(ValidationError):
        tpm.pcr_extend(24, {"sha256": b"\x00" * 32})
    with pytest.raises(ValidationError):
        tpm.pcr_extend(10, {"sha256": b"\x00" * 20})
    with pytest.raises(ValidationError):
        tpm.pcr_extend(10, {})
    with pytest.raises(ValidationError):
        tpm.quote(aks[(AkAlg.ECC_P256_ECDSA_SHA256, EkKind.ECC)], SHA256_0_10, b"\x00" * 65)


def test_pcrs_changing_during_the_quote_are_detected(
    tpm: TpmDevice, aks: dict[tuple[AkAlg, EkKind], AttestationKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_read = tpm.pcr_read
    calls: list[int] = []

    def racing_read(selection: dict[str, list[int]]) -> dict[str, dict[int, bytes]]:
        calls.append(1)
        values = real_read(selection)
        tpm.pcr_extend(16, {"sha256": b"\x01" * 32})  # someone else extends between quote and read
        return real_read(selection) if len(calls) < 3 else values

    monkeypatch.setattr(tpm, "pcr_read", racing_read)
    ak = aks[(AkAlg.ECC_P256_ECDSA_SHA256, EkKind.ECC)]
    with pytest.raises(DeviceError, match="kept changing"):
        tpm.quote(ak, {"sha256": [16]}, b"", attempts=2)
    calls.clear()
    quote = tpm.quote(ak, {"sha256": [16]}, b"", attempts=3)  # third read is consistent again
    assert len(calls) == 3 and parse_quote(quote.attest).pcr_digest == composite(quote.pcrs)


def test_ak_from_another_tpm_fails_cleanly(
    tpm: TpmDevice, aks: dict[tuple[AkAlg, EkKind], AttestationKey], tmp_path: Path
) -> None:
    ak = aks[(AkAlg.RSA2048_RSASSA_SHA256, EkKind.RSA)]
    with start_swtpm(tmp_path, unique_ek=True) as other, TpmDevice(other.tcti) as foreign:
        with pytest.raises(TpmCommandError, match=r"TPM2_Load failed: response code 0x0000") as excinfo:
            foreign.quote(ak, SHA256_0_10, b"")
        assert excinfo.value.rc != 0 and isinstance(excinfo.value, OSError)
        assert foreign.open_handles() == []


def test_malformed_ak_blob(tpm: TpmDevice, aks: dict[tuple[AkAlg, EkKind], AttestationKey]) -> None:
    ak = aks[(AkAlg.RSA2048_RSASSA_SHA256, EkKind.RSA)]
    with pytest.raises(DecodeError):
        tpm.quote(dataclasses.replace(ak, private=ak.private[:-1]), SHA256_0_10, b"")
    with pytest.raises(DecodeError):
        tpm.quote(dataclasses.replace(ak, public=ak.public + b"\x00"), SHA256_0_10, b"")


def test_closed_and_unreachable_devices(node: SwtpmProcess) -> None:
    device = TpmDevice(node.tcti)
    with pytest.raises(DeviceError, match="not open"):
        device.pcr_read(SHA256_0_10)
    unreachable = TpmDevice("swtpm:host=127.0.0.1,port=1")
    with pytest.raises(TpmCommandError, match="response code 0x") as excinfo:
        unreachable.open()
    assert isinstance(excinfo.value, OSError)
