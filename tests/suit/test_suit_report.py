"""SUIT_Report encoding/decoding (report-18) and the legacy teep-protocol Appendix F form."""

from __future__ import annotations

import pytest
from suit_support import vector_path

from veritee import cbor
from veritee.errors import UnsupportedAlgorithmError, ValidationError
from veritee.suit import Record, Report, ReportFailure, ReportReason, SuitDigest, SystemProperties, decode_report
from veritee.suit import encode_report as encode

DIGEST = SuitDigest.compute(b"manifest")
F_DIGEST = bytes.fromhex("a7fd6593eac32eb4be578278e6540c5c09cfd7d4d234973054833b2b93030609")


def test_success_report_encoding() -> None:
    report = Report(DIGEST, "https://tam.example/m.suit", b"token-01", ())
    assert cbor.decode(encode(report)) == {
        99: ["https://tam.example/m.suit", [-16, DIGEST.value]],
        2: b"token-01",
        3: [],
        4: True,
    }
    assert decode_report(encode(report)) == report


def test_failure_report_round_trip() -> None:
    record = Record((0, 1), 20, 67, 2, {3: DIGEST.encode(), 14: 20})
    report = Report(
        DIGEST,
        None,
        None,
        (record, SystemProperties((b"TEEP-Device",), {14: 5})),
        ReportFailure(6, record, ReportReason.CONDITION_FAILED),
    )
    value = cbor.decode(encode(report))
    assert value[99] == [[-16, DIGEST.value]]
    assert value[4] == {5: 6, 6: [[0, 1], 20, 67, 2, {3: DIGEST.encode(), 14: 20}], 7: 10}
    assert value[3][1] == {0: [b"TEEP-Device"], 14: 5}
    assert decode_report(encode(report)) == report


def _f_report(records: list[dict[int, object]]) -> bytes:
    # teep-protocol App. F, transcribed from F_suit_report_examples.txt (diagnostic notation, pre-report-18 keys)
    return cbor.encode({1: cbor.encode([-16, F_DIGEST]), 2: "tam.teep.example/personalisation", 4: records})


def test_legacy_appendix_f_reports() -> None:
    text = vector_path("teep-protocol", "F_suit_report_examples.txt").read_text()
    assert "a7fd6593eac32eb4be578278e6540c5c" in text and "suit-record-failure-reason / 6: 404" in text
    success = decode_report(_f_report([]))
    assert success.legacy and success.success and success.uri == "tam.teep.example/personalisation"
    assert success.digest == SuitDigest.from_cbor([-16, F_DIGEST])
    failure = decode_report(_f_report([{1: [], 2: 7, 3: 66, 5: 0, 6: 404}]))
    assert failure.failure == ReportFailure(404, Record((), 7, 66, 0, {}), ReportReason.OPERATION_FAILED)
    # re-encoding gives the report-18 form
    assert decode_report(encode(failure)).failure == failure.failure
    with pytest.raises(ValidationError, match="unknown legacy"):
        decode_report(_f_report([{9: 1}]))


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ([], ValidationError),
        ({5: 1}, ValidationError),
        ({99: [[-16, DIGEST.value]], 3: []}, ValidationError),
        ({99: [[-16, DIGEST.value]], 3: [], 4: False}, ValidationError),
        ({99: [[-16, DIGEST.value]], 3: [], 4: {5: 1, 6: [[], 1, 0, 0, {}]}}, ValidationError),
        ({99: [[-16, DIGEST.value]], 3: [], 4: {5: 1, 6: [[], 1, 0, 0, {}], 7: 99}}, ValidationError),
        ({99: [[-16, DIGEST.value]], 3: [[[], 1, -1, 0, {}]], 4: True}, ValidationError),
        ({99: [[-16, DIGEST.value]], 3: [{14: 1}], 4: True}, ValidationError),
        ({99: [[-1, DIGEST.value]], 3: [], 4: True}, UnsupportedAlgorithmError),
        ({99: [5, [-16, DIGEST.value]], 3: [], 4: True}, ValidationError),
        ({99: [[-16, DIGEST.value]], 2: "nonce", 3: [], 4: True}, ValidationError),
    ],
)
def test_invalid_reports(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        decode_report(cbor.encode(value))
