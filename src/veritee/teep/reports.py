"""SUIT Reports as TEEP carries them: ``suit-reports => [+ bstr .cbor (SUIT_Report_Protected / _Unprotected)]``.

An unprotected report is the SUIT_Report map itself; a protected one is a COSE_Sign1 whose payload is that map,
signed by the TEEP Agent. When a TAM request carried a token, every report must carry it as suit-report-nonce.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence

from veritee import cbor
from veritee.cose import CoseKey, Sign1Message
from veritee.errors import DecodeError, FreshnessError, SignatureError
from veritee.suit.report import Report, decode_report, encode_report
from veritee.teep.cose_wrap import sign_message

__all__ = ["check_report_nonces", "open_report", "open_reports", "wrap_report"]

_SIGN1_TAG = 18


def wrap_report(report: Report, signer: CoseKey | None = None) -> bytes:
    """The bytes that go into suit-reports: the encoded report, or a COSE_Sign1 over it when ``signer`` is given."""
    encoded = encode_report(report)
    return encoded if signer is None else sign_message(encoded, signer)


def open_report(data: bytes, agent_key: CoseKey | None = None) -> Report:
    """Decode one suit-reports entry; a COSE_Sign1-protected report is verified with ``agent_key``."""
    outer = cbor.decode(data)
    if isinstance(outer, cbor.CBORTag) and outer.tag == _SIGN1_TAG:
        if agent_key is None:
            raise SignatureError("a protected SUIT report needs the Agent's key to verify")
        message = Sign1Message.decode(data)
        message.verify(agent_key)
        if message.payload is None:
            raise DecodeError("a protected SUIT report carries the report as its payload")
        return decode_report(message.payload)
    return decode_report(data)


def open_reports(entries: Iterable[bytes] | None, agent_key: CoseKey | None = None) -> tuple[Report, ...]:
    return tuple(open_report(e, agent_key) for e in (entries or ()))


def check_report_nonces(reports: Sequence[Report], token: bytes | None) -> None:
    """FreshnessError unless every report carries ``token`` as its nonce (nothing to check without a token)."""
    if token is None:
        return
    for index, report in enumerate(reports):
        if report.nonce is None or not hmac.compare_digest(report.nonce, token):
            raise FreshnessError(f"SUIT report {index}: suit-report-nonce does not match the request's token")
