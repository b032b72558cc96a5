"""How the verifier stores appraisal state in JSON columns: TPM clock info, incremental IMA state, canonical JSON.

Stored values come back through the same strict decoders: a row someone edited into nonsense raises a typed
:class:`~veritee.errors.DecodeError` naming the column, never a KeyError or TypeError.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from veritee.errors import DecodeError, UnsupportedAlgorithmError, ValidationError
from veritee.ima import IMA_PCR, ImaState
from veritee.tpm.alg import HashAlg
from veritee.tpm.attest import TpmsClockInfo

__all__ = [
    "boot_pcrs_digest",
    "canonical_json",
    "clock_from_json",
    "clock_to_json",
    "ima_state_from_json",
    "ima_state_to_json",
]


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the same bytes for the same value, however it was built."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def clock_to_json(clock: TpmsClockInfo) -> dict[str, Any]:
    return {
        "clock": clock.clock,
        "reset_count": clock.reset_count,
        "restart_count": clock.restart_count,
        "safe": clock.safe,
    }


def _int(data: Mapping[str, Any], key: str, where: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise DecodeError(f"{where}.{key} must be a non-negative integer, not {value!r}")
    return value


def clock_from_json(value: Any) -> TpmsClockInfo | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise DecodeError(f"stored clock must be an object, not {type(value).__name__}")
    safe = value.get("safe")
    if not isinstance(safe, bool):
        raise DecodeError("stored clock.safe must be true or false")
    return TpmsClockInfo(
        clock=_int(value, "clock", "clock"),
        reset_count=_int(value, "reset_count", "clock"),
        restart_count=_int(value, "restart_count", "clock"),
        safe=safe,
    )


def _bank_to_json(values: Mapping[HashAlg, bytes]) -> dict[str, str]:
    return {alg.label: value.hex() for alg, value in values.items()}


def ima_state_to_json(state: ImaState) -> dict[str, Any]:
    return {
        "next_line": state.next_line,
        "pcrs": _bank_to_json(state.pcrs),
        "other_pcrs": {str(pcr): _bank_to_json(values) for pcr, values in state.other_pcrs.items()},
    }


def _bank_from_json(value: Any, where: str) -> dict[HashAlg, bytes]:
    if not isinstance(value, Mapping):
        raise DecodeError(f"{where} must be an object")
    out: dict[HashAlg, bytes] = {}
    for label, hexval in value.items():
        try:
            alg = HashAlg.from_label(str(label))
            out[alg] = bytes.fromhex(hexval) if isinstance(hexval, str) else b""
        except (UnsupportedAlgorithmError, ValueError) as exc:
            raise DecodeError(f"{where}.{label}: {exc}") from None
        if len(out[alg]) != alg.digest_size:
            raise DecodeError(f"{where}.{label} must be {alg.digest_size} bytes of hex")
    return out


def ima_state_from_json(value: Any) -> ImaState | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise DecodeError(f"stored IMA state must be an object, not {type(value).__name__}")
    others_json = value.get("other_pcrs") or {}
    if not isinstance(others_json, Mapping):
        raise DecodeError("stored IMA state other_pcrs must be an object")
    others: dict[int, dict[HashAlg, bytes]] = {}
    for pcr, bank in others_json.items():
        if not str(pcr).isdigit() or int(pcr) == IMA_PCR:
            raise DecodeError(f"stored IMA state names PCR {pcr!r} among the other PCRs")
        others[int(pcr)] = _bank_from_json(bank, f"ima_state.other_pcrs.{pcr}")
    try:
        return ImaState(
            _int(value, "next_line", "ima_state"), _bank_from_json(value.get("pcrs"), "ima_state.pcrs"), others
        )
    except ValidationError as exc:
        raise DecodeError(f"stored IMA state is inconsistent: {exc}") from None


def boot_pcrs_digest(banks: Mapping[HashAlg, Mapping[int, bytes]]) -> str:
    """SHA-256 over every supplied PCR value except the IMA PCR: changes when (and only when) the boot changed."""
    h = hashlib.sha256()
    for alg in sorted(banks):
        for index in sorted(banks[alg]):
            if index != IMA_PCR:
                h.update(int(alg).to_bytes(2, "big") + index.to_bytes(1, "big") + bytes(banks[alg][index]))
    return h.hexdigest()
