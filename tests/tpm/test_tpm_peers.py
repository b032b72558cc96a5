"""Peer cross-checks: tpm2-tools' `tpm2_checkquote` accepts our software quotes; the TSS (tpm2-pytss) decodes what
we decode the same way, and decodes what we marshal."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from tpm2_pytss import types as tss
from tpm_testdata import e2e_bundle, ec_key, keylime_bundle, rsa_key, software_quote, windows_bundle

from veritee.tpm.alg import HashAlg
from veritee.tpm.attest import PcrSelection, QuoteInfo, TpmsAttest
from veritee.tpm.public import RsaParms, TpmtPublic
from veritee.tpm.signature import TpmtSignature

NONCE = b"nonce-1234"
SELECTIONS = (PcrSelection.of(HashAlg.SHA1, range(10)), PcrSelection.of(HashAlg.SHA256, [0, 7, 10, 23]))
BANKS = {
    HashAlg.SHA1: {i: bytes([i + 1]) * 20 for i in range(24)},
    HashAlg.SHA256: {i: bytes([i + 100]) * 32 for i in range(24)},
}


def _checkquote(tmp: Path, ak: bytes, attest: bytes, sig: bytes, blob: bytes, nonce: bytes) -> int:
    tool = shutil.which("tpm2_checkquote")
    if tool is None:
        pytest.skip("tpm2_checkquote (Debian tpm2-tools) is not installed")
    files = {"ak.pub": ak, "quote.msg": attest, "quote.sig": sig, "quote.pcrs": blob}
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    args = ["-u", "ak.pub", "-m", "quote.msg", "-s", "quote.sig", "-f", "quote.pcrs", "-g", "sha256", "-q", nonce.hex()]
    return subprocess.run([tool, *args], cwd=tmp, capture_output=True, timeout=60, check=False).returncode


@pytest.mark.parametrize("kind", ["rsa", "ecc"])
def test_tpm2_checkquote_accepts_software_quotes(tmp_path: Path, kind: str) -> None:
    key = rsa_key() if kind == "rsa" else ec_key()
    ak, attest, sig, blob = software_quote(key, selections=SELECTIONS, banks=BANKS, nonce=NONCE)
    assert _checkquote(tmp_path, ak.to_tpm2b(), attest, sig.pack(), blob, NONCE) == 0
    # ... and the peer check can fail: another nonce, another PCR value.
    assert _checkquote(tmp_path, ak.to_tpm2b(), attest, sig.pack(), blob, b"other") != 0
    tampered = bytearray(blob)
    tampered[136 + 4 + 2] ^= 0x01
    assert _checkquote(tmp_path, ak.to_tpm2b(), attest, sig.pack(), bytes(tampered), NONCE) != 0


def test_tss_decodes_real_structures_like_we_do() -> None:
    for bundle in (e2e_bundle(), keylime_bundle(), windows_bundle()):
        ours = TpmsAttest.unpack(bundle.attest)
        theirs, consumed = tss.TPMS_ATTEST.unmarshal(bundle.attest)
        assert consumed == len(bundle.attest)
        assert int(theirs.magic) == ours.magic and int(theirs.type) == ours.type
        assert bytes(theirs.qualifiedSigner) == ours.qualified_signer
        assert bytes(theirs.extraData) == ours.extra_data
        info = theirs.clockInfo
        assert (int(info.clock), int(info.resetCount), int(info.restartCount), bool(info.safe)) == (
            ours.clock_info.clock,
            ours.clock_info.reset_count,
            ours.clock_info.restart_count,
            ours.clock_info.safe,
        )
        assert int(theirs.firmwareVersion) == ours.firmware_version
        assert isinstance(ours.attested, QuoteInfo)
        assert bytes(theirs.attested.quote.pcrDigest) == ours.attested.pcr_digest
        their_sels = theirs.attested.quote.pcrSelect
        assert int(their_sels.count) == len(ours.attested.pcr_select.selections)

        pub, consumed = tss.TPMT_PUBLIC.unmarshal(bundle.ak.pack())
        assert consumed == len(bundle.ak.pack())
        assert int(pub.objectAttributes) == bundle.ak.object_attributes
        assert isinstance(bundle.ak.parameters, RsaParms)
        assert int(pub.parameters.rsaDetail.keyBits) == bundle.ak.parameters.key_bits
        assert bytes(pub.unique.rsa) == bundle.ak.unique
        assert tss.TPM2B_PUBLIC(publicArea=pub).get_name().marshal()[2:] == bundle.ak.name()

        sig, consumed = tss.TPMT_SIGNATURE.unmarshal(bundle.sig)
        ours_sig = TpmtSignature.unpack(bundle.sig)
        assert consumed == len(bundle.sig)
        assert int(sig.sigAlg) == ours_sig.sig_alg and bytes(sig.signature.rsassa.sig) == ours_sig.signature


def test_tss_decodes_what_we_marshal() -> None:
    ak, attest, sig, _ = software_quote(ec_key(), selections=SELECTIONS, banks=BANKS, nonce=NONCE)
    theirs, _ = tss.TPMS_ATTEST.unmarshal(attest)
    assert bytes(theirs.extraData) == NONCE
    assert theirs.marshal() == attest
    their_pub, _ = tss.TPMT_PUBLIC.unmarshal(ak.pack())
    assert their_pub.marshal() == ak.pack()
    assert TpmtPublic.unpack(their_pub.marshal()) == ak
    their_sig, _ = tss.TPMT_SIGNATURE.unmarshal(sig.pack())
    assert bytes(their_sig.signature.ecdsa.signatureR) == sig.r
    assert bytes(their_sig.signature.ecdsa.signatureS) == sig.s
