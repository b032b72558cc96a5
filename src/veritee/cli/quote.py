"""``veritee quote``: verify a TPM 2.0 quote made by `tpm2_quote` (the `tpm2_checkquote` equivalent)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from veritee.errors import DecodeError, KeyFormatError, VeriteeError
from veritee.tpm.attest import QuoteInfo
from veritee.tpm.pcrs import parse_tpm2tools_pcr_blob
from veritee.tpm.public import PublicKey, TpmtPublic
from veritee.tpm.quote import VerifiedQuote, verify_quote

NAME = "quote"
app = typer.Typer(help="TPM 2.0 quotes.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """TPM 2.0 quotes (tpm2-tools file formats)."""


def load_ak(data: bytes) -> TpmtPublic | PublicKey:
    """An AK from a PEM public key, a TPM2B_PUBLIC (`tpm2_createak -u`) or a bare TPMT_PUBLIC."""
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = load_pem_public_key(data)
        except ValueError as exc:
            raise KeyFormatError(f"unreadable PEM public key: {exc}") from exc
        if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise KeyFormatError(f"an attestation key cannot be a {type(key).__name__}")
        return key
    if len(data) >= 2 and int.from_bytes(data[:2], "big") == len(data) - 2:
        return TpmtPublic.from_tpm2b(data)
    return TpmtPublic.unpack(data)


def _parse_hex(text: str, option: str) -> bytes:
    cleaned = text.strip().removeprefix("0x")
    try:
        return bytes.fromhex(cleaned)
    except ValueError as exc:
        raise DecodeError(f"{option} is not hex: {text!r}") from exc


def _report(verified: VerifiedQuote, ak: TpmtPublic | PublicKey) -> dict[str, object]:
    attest = verified.attest
    clock = attest.clock_info
    return {
        "verified": True,
        "signature": {"scheme": verified.signature.sig_alg.name.lower(), "hash": verified.hash_alg.label},
        "ak": {
            "format": "tpm2b_public" if isinstance(ak, TpmtPublic) else "pem",
            "name": ak.name().hex() if isinstance(ak, TpmtPublic) else None,
            "attributes_checked": isinstance(ak, TpmtPublic),
        },
        "qualified_signer": attest.qualified_signer.hex(),
        "nonce": attest.extra_data.hex(),
        "clock": {
            "clock": clock.clock,
            "reset_count": clock.reset_count,
            "restart_count": clock.restart_count,
            "safe": clock.safe,
        },
        "firmware_version": attest.firmware_version,
        "pcr_digest": attest.attested.pcr_digest.hex() if isinstance(attest.attested, QuoteInfo) else None,
        "pcrs": {alg.label: {str(i): v.hex() for i, v in bank.items()} for alg, bank in verified.pcrs.items()},
    }


@app.command("verify")
def verify(
    ak: Path = typer.Option(
        ..., "--ak", help="AK public key: TPM2B_PUBLIC (tpm2_createak -u) or PEM.", exists=True, dir_okay=False
    ),
    quote: Path = typer.Option(..., "--quote", help="TPMS_ATTEST (tpm2_quote -m).", exists=True, dir_okay=False),
    sig: Path = typer.Option(
        ..., "--sig", help="TPMT_SIGNATURE (tpm2_quote -s, tss format).", exists=True, dir_okay=False
    ),
    pcrs: Path = typer.Option(
        ..., "--pcrs", help="PCR values (tpm2_quote -o, serialized format).", exists=True, dir_okay=False
    ),
    nonce: str = typer.Option(..., "--nonce", help="Expected qualifying data (extraData), hex; '' for none."),
    qualified_signer: str | None = typer.Option(
        None, "--qualified-signer", help="Expected qualified name of the AK, hex (optional)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Verify signature, nonce and PCR digest of a quote; print the quoted PCR values."""
    try:
        key = load_ak(ak.read_bytes())
        _, banks = parse_tpm2tools_pcr_blob(pcrs.read_bytes())
        expected = None if qualified_signer is None else _parse_hex(qualified_signer, "--qualified-signer")
        verified = verify_quote(
            key,
            quote.read_bytes(),
            sig.read_bytes(),
            banks,
            _parse_hex(nonce, "--nonce"),
            expected_qualified_signer=expected,
        )
    except VeriteeError as exc:
        if as_json:
            error = {"type": type(exc).__name__, "message": str(exc)}
            typer.echo(json.dumps({"verified": False, "error": error}, indent=2))
        else:
            typer.echo(f"quote verification failed: {type(exc).__name__}: {exc}", err=True)
        raise typer.Exit(1) from None
    report = _report(verified, key)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"quote verified ({verified.signature.sig_alg.name.lower()}/{verified.hash_alg.label})")
    typer.echo("pcrs:")
    for alg, bank in verified.pcrs.items():
        typer.echo(f"  {alg.label}:")
        for index, value in bank.items():
            typer.echo(f"    {index:<2}: 0x{value.hex().upper()}")
