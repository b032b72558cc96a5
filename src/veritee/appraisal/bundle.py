"""Evidence from a bundle of tpm2-tools outputs, given as file contents (the CLI reads the files; this does no I/O).

Layout (as in the shared e2e-swtpm bundle): ``ak.pub`` (TPM2B_PUBLIC), ``quote.msg`` (TPMS_ATTEST), ``quote.sig``
(TPMT_SIGNATURE), ``quote.pcrs`` (tpm2-tools PCR file), ``nonce.hex``, and optionally ``binary_bios_measurements``
and ``ascii_runtime_measurements``; ``runtime_policy.json`` and ``mb_refstate.json`` are the Keylime policies.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping

from veritee.appraisal.result import Evidence
from veritee.errors import DecodeError, ValidationError
from veritee.tpm.pcrs import parse_tpm2tools_pcr_blob

__all__ = ["BUNDLE_FILES", "REQUIRED_FILES", "evidence_from_bundle"]

REQUIRED_FILES = ("ak.pub", "quote.msg", "quote.sig", "quote.pcrs", "nonce.hex")
OPTIONAL_FILES = ("binary_bios_measurements", "ascii_runtime_measurements")
BUNDLE_FILES = REQUIRED_FILES + OPTIONAL_FILES


def evidence_from_bundle(files: Mapping[str, bytes]) -> Evidence:
    """Build Evidence from the bundle's file contents (name -> bytes).

    Raises ValidationError when a required file is missing, DecodeError when the PCR file or the nonce cannot be
    read (without them there is nothing to appraise). Other parts are passed on as they are, for the appraisal to
    judge.
    """
    missing = [name for name in REQUIRED_FILES if name not in files]
    if missing:
        raise ValidationError(f"evidence bundle lacks {', '.join(missing)}")
    _, banks = parse_tpm2tools_pcr_blob(files["quote.pcrs"])
    try:
        nonce = bytes.fromhex(files["nonce.hex"].decode("ascii").strip())
    except (UnicodeDecodeError, ValueError, binascii.Error) as exc:
        raise DecodeError(f"nonce.hex is not hexadecimal text: {exc}") from None
    ima = files.get("ascii_runtime_measurements")
    return Evidence(
        ak_public=files["ak.pub"],
        quote=files["quote.msg"],
        signature=files["quote.sig"],
        pcrs=banks,
        nonce=nonce,
        event_log=files.get("binary_bios_measurements"),
        ima_log=None if ima is None else ima.decode("utf-8", "surrogateescape"),
    )
