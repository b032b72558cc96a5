"""Replay and rollback detection from TPMS_CLOCK_INFO, on signed synthetic quotes and on a real vTPM's values."""

from __future__ import annotations

import pytest
from tpm_testdata import BANKS, b64, rsa_key, software_quote, windows_bundle, windows_dump

from veritee.errors import FreshnessError
from veritee.tpm.attest import TpmsAttest, TpmsClockInfo
from veritee.tpm.errors import QuoteReplayError, QuoteRollbackError
from veritee.tpm.quote import ClockCheck, ClockTransition, check_clock, verify_quote

NONCE = b"nonce-1234"


def _quote_clock(clock: int, resets: int, restarts: int, safe: bool = True) -> TpmsClockInfo:
    """Sign a quote carrying this clock info and return the clock info as the verifier decodes it."""
    ak, attest, sig, _ = software_quote(rsa_key(), clock=TpmsClockInfo(clock, resets, restarts, safe))
    return verify_quote(ak, attest, sig, BANKS, NONCE).attest.clock_info


def _verify_after(previous: TpmsClockInfo, clock: int, resets: int, restarts: int, safe: bool = True) -> ClockCheck:
    ak, attest, sig, _ = software_quote(rsa_key(), clock=TpmsClockInfo(clock, resets, restarts, safe))
    return verify_quote(ak, attest, sig, BANKS, NONCE, previous_clock=previous).clock


def test_clock_moving_forward_in_the_same_boot_is_accepted() -> None:
    previous = _quote_clock(10_000, 3, 1)
    result = _verify_after(previous, 12_500, 3, 1)
    assert result.transition is ClockTransition.SAME_BOOT
    assert result.clock_delta_ms == 2_500
    assert result.safe is True


@pytest.mark.parametrize("clock", [10_000, 9_999, 0])
def test_same_boot_with_clock_not_increasing_is_a_replay(clock: int) -> None:
    previous = _quote_clock(10_000, 3, 1)
    with pytest.raises(QuoteReplayError) as exc:
        _verify_after(previous, clock, 3, 1)
    assert isinstance(exc.value, FreshnessError)


def test_replaying_the_same_signed_quote_is_detected() -> None:
    ak, attest, sig, _ = software_quote(rsa_key(), clock=TpmsClockInfo(777, 1, 0, True))
    first = verify_quote(ak, attest, sig, BANKS, NONCE)
    with pytest.raises(QuoteReplayError):
        verify_quote(ak, attest, sig, BANKS, NONCE, previous_clock=first.attest.clock_info)


@pytest.mark.parametrize(
    ("resets", "restarts"),
    [(2, 1), (2, 5), (0, 0), (3, 0)],  # resetCount back; restartCount back within the same reset cycle
)
def test_counters_going_backwards_are_a_rollback(resets: int, restarts: int) -> None:
    previous = _quote_clock(10_000, 3, 1)
    with pytest.raises(QuoteRollbackError) as exc:
        _verify_after(previous, 20_000, resets, restarts)
    assert isinstance(exc.value, FreshnessError)


def test_reset_is_legal_and_reported_even_when_restart_count_starts_over() -> None:
    previous = _quote_clock(10_000, 3, 4)
    result = _verify_after(previous, 11_000, 5, 0)
    assert result.transition is ClockTransition.RESET
    assert result.resets == 2 and result.restarts == 0


def test_restart_is_legal_and_reported() -> None:
    previous = _quote_clock(10_000, 3, 4)
    result = _verify_after(previous, 10_500, 3, 5)
    assert result.transition is ClockTransition.RESTART
    assert result.restarts == 1


def test_clock_back_after_reset_needs_safe_no() -> None:
    previous = _quote_clock(10_000, 3, 0)
    unsafe = _verify_after(previous, 9_000, 4, 0, safe=False)  # restored after an unorderly shutdown
    assert unsafe.transition is ClockTransition.RESET and unsafe.safe is False
    assert unsafe.clock_delta_ms == -1_000
    with pytest.raises(QuoteRollbackError):
        _verify_after(previous, 9_000, 4, 0, safe=True)


def test_first_quote_has_nothing_to_compare() -> None:
    result = check_clock(None, TpmsClockInfo(5, 0, 0, False))
    assert result.transition is ClockTransition.FIRST and result.clock_delta_ms is None and result.safe is False


def test_obfuscated_counters_compare_modulo_2_32() -> None:
    """Outside the endorsement/platform hierarchies the TPM adds a per-key constant to both counters."""
    offset = 0xFFFF_FFF0
    before = TpmsClockInfo(50_000, (offset + 14) % 2**32, (offset + 3) % 2**32, True)
    after_reset = TpmsClockInfo(60_000, (offset + 17) % 2**32, offset, True)  # wrapped past 2**32
    result = check_clock(before, after_reset)
    assert result.transition is ClockTransition.RESET and result.resets == 3
    with pytest.raises(QuoteRollbackError):
        check_clock(after_reset, TpmsClockInfo(70_000, (offset + 16) % 2**32, offset, True))


def test_real_vtpm_creation_then_quote_is_the_same_boot() -> None:
    """go-attestation's dump: the AK's creation attestation and the later quote, from one boot of a GCP vTPM."""
    creation = TpmsAttest.unpack(b64(windows_dump()["AK"]["CreateAttestation"])).clock_info
    quote = TpmsAttest.unpack(windows_bundle().attest).clock_info
    result = check_clock(creation, quote)
    assert result.transition is ClockTransition.SAME_BOOT and result.clock_delta_ms == 44
    with pytest.raises(QuoteReplayError):
        check_clock(quote, creation)
