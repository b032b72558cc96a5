"""`veritee quote verify` on tpm2-tools files."""

from __future__ import annotations

import json
from pathlib import Path

from tpm_testdata import KEYLIME_NONCE, ec_key, software_quote
from typer.testing import CliRunner

from helpers import shared_path
from veritee.cli import quote as quote_cli

RUNNER = CliRunner()


def _e2e_args(ak: str = "ak.pub") -> list[str]:
    d = shared_path("tpm", "e2e-swtpm")
    nonce = (d / "nonce.hex").read_text().strip()
    return [
        "verify",
        "--ak",
        str(d / ak),
        "--quote",
        str(d / "quote.msg"),
        "--sig",
        str(d / "quote.sig"),
        "--pcrs",
        str(d / "quote.pcrs"),
        "--nonce",
        nonce,
    ]


def test_verify_prints_the_quoted_pcrs() -> None:
    result = RUNNER.invoke(quote_cli.app, _e2e_args())
    assert result.exit_code == 0, result.output
    assert "quote verified (rsassa/sha256)" in result.output
    assert "    0 : 0x0D993CF4BAEC1DC2A47013C8BCC13E1593D5E6BA9CC4630F422E98D310212AFF" in result.output
    assert "    14: 0x66C465262F16D108FD77F2F94C4AE0040F81B3168242A827FCF5EFCD812DE053" in result.output


def test_verify_json_and_pem_ak() -> None:
    result = RUNNER.invoke(quote_cli.app, [*_e2e_args("ak.pem"), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["verified"] is True
    assert report["ak"] == {"format": "pem", "name": None, "attributes_checked": False}
    assert report["clock"] == {"clock": 6652, "reset_count": 2, "restart_count": 0, "safe": True}
    assert list(report["pcrs"]["sha256"]) == ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "14"]
    assert report["pcrs"]["sha256"]["10"] == "c4a065637fc6a7c55f2811dd06cb45dd037133be2b3dc5c3e6fbe6bf061db724"

    tpm2b = json.loads(RUNNER.invoke(quote_cli.app, [*_e2e_args(), "--json"]).output)
    assert tpm2b["ak"]["name"] == shared_path("tpm", "e2e-swtpm", "ak.name").read_bytes().hex()
    assert tpm2b["ak"]["attributes_checked"] is True


def test_keylime_quote_with_qualified_signer_check() -> None:
    d = shared_path("tpm", "quotes", "keylime_tpm2tools_quote")
    args = [
        "verify",
        "--ak",
        str(d / "akpub.pem"),
        "--quote",
        str(d / "quote.out"),
        "--sig",
        str(d / "quotesig.out"),
        "--pcrs",
        str(d / "quotepcr.out"),
        "--nonce",
        KEYLIME_NONCE.hex(),
    ]
    assert RUNNER.invoke(quote_cli.app, args).exit_code == 0
    wrong = RUNNER.invoke(quote_cli.app, [*args, "--qualified-signer", "000b" + "00" * 32, "--json"])
    assert wrong.exit_code == 1
    assert json.loads(wrong.output)["error"]["type"] == "QualifiedSignerError"


def test_failures_exit_1_with_the_typed_error(tmp_path: Path) -> None:
    args = _e2e_args()
    wrong_nonce = RUNNER.invoke(quote_cli.app, [*args[:-1], "00" * 20, "--json"])
    assert wrong_nonce.exit_code == 1
    assert json.loads(wrong_nonce.output) == {
        "verified": False,
        "error": {
            "type": "NonceMismatchError",
            "message": f"quote extraData {args[-1]} is not the nonce {'00' * 20}",
        },
    }

    blob = bytearray(Path(args[8]).read_bytes())
    blob[136 + 4 + 2] ^= 0x01
    (tmp_path / "pcrs").write_bytes(bytes(blob))
    tampered = RUNNER.invoke(quote_cli.app, [*args[:8], str(tmp_path / "pcrs"), *args[9:]])
    assert tampered.exit_code == 1
    assert "PcrDigestMismatchError" in tampered.output and "sha256:0,1,2,3,4,5,6,7,8,9,10,14" in tampered.output

    not_hex = RUNNER.invoke(quote_cli.app, [*args[:-1], "xyz", "--json"])
    assert not_hex.exit_code == 1 and json.loads(not_hex.output)["error"]["type"] == "DecodeError"

    (tmp_path / "garbage.pub").write_bytes(b"\x00\x01\x02")
    garbage = RUNNER.invoke(quote_cli.app, ["verify", "--ak", str(tmp_path / "garbage.pub"), *args[3:], "--json"])
    assert garbage.exit_code == 1 and json.loads(garbage.output)["error"]["type"] == "DecodeError"


def test_bare_tpmt_public_and_ecc_software_quote(tmp_path: Path) -> None:
    ak, attest, sig, blob = software_quote(ec_key(), nonce=b"\x01\x02")
    files = {"ak.bin": ak.pack(), "q": attest, "s": sig.pack(), "p": blob}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    args = ["verify", "--ak", str(tmp_path / "ak.bin"), "--quote", str(tmp_path / "q"), "--sig", str(tmp_path / "s")]
    args += ["--pcrs", str(tmp_path / "p"), "--nonce", "0x0102", "--qualified-signer", ak.name().hex(), "--json"]
    result = RUNNER.invoke(quote_cli.app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["signature"] == {"scheme": "ecdsa", "hash": "sha256"}
    assert report["ak"]["name"] == ak.name().hex()

    wrong_signer = RUNNER.invoke(quote_cli.app, [*args[:-3], "--qualified-signer", "000b" + "11" * 32, "--json"])
    assert json.loads(wrong_signer.output)["error"]["type"] == "QualifiedSignerError"


def test_missing_file_is_a_usage_error() -> None:
    result = RUNNER.invoke(quote_cli.app, ["verify", "--ak", "/nonexistent", *_e2e_args()[3:]])
    assert result.exit_code == 2
    assert quote_cli.NAME == "quote"
