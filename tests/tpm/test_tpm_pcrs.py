"""tpm2-tools' serialized PCR file and the PCR composite digest."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from tpm_testdata import Bundle, e2e_bundle, keylime_bundle, read_pcrs_yaml

from helpers import shared_path
from veritee.errors import DecodeError, EncodeError, ValidationError
from veritee.tpm.alg import HashAlg
from veritee.tpm.attest import PcrSelection, QuoteInfo, TpmsAttest
from veritee.tpm.errors import MissingPcrError, UnknownAlgorithmError
from veritee.tpm.pcrs import (
    build_tpm2tools_pcr_blob,
    parse_tpm2tools_pcr_blob,
    pcr_composite_digest,
    selected_values,
)


def test_keylime_blob_has_the_values_keylime_asserts() -> None:
    selections, banks = parse_tpm2tools_pcr_blob(keylime_bundle().pcr_blob or b"")
    assert [s.describe() for s in selections] == ["sha256:15,16,22"]
    assert list(banks) == [HashAlg.SHA256]
    sha256 = banks[HashAlg.SHA256]
    assert list(sha256) == [15, 16, 22]
    assert sha256[15] == b"\x00" * 32
    assert sha256[16].hex().startswith("9dbb2238") and sha256[16].hex().endswith("b6f0")
    assert sha256[22] == b"\xff" * 32


def test_swtpm_blob_matches_tpm2_pcrread_yaml() -> None:
    b = e2e_bundle()
    selections, banks = parse_tpm2tools_pcr_blob(b.pcr_blob or b"")
    assert [s.describe() for s in selections] == ["sha256:0,1,2,3,4,5,6,7,8,9,10,14"]
    expected = read_pcrs_yaml(shared_path("tpm", "e2e-swtpm", "pcrs.yaml"))
    assert banks[HashAlg.SHA256] == expected[HashAlg.SHA256]
    assert expected[HashAlg.SHA1][10].hex() == "82231c67a69da98dc5b3aa10f6343d33109225fc"  # the IMA replay (SOURCES.md)


@pytest.mark.parametrize("bundle", [e2e_bundle, keylime_bundle])
def test_builder_reproduces_tpm2_tools_files_byte_for_byte(bundle: Callable[[], Bundle]) -> None:
    blob = bundle().pcr_blob or b""
    selections, banks = parse_tpm2tools_pcr_blob(blob)
    assert build_tpm2tools_pcr_blob(selections, banks) == blob


@pytest.mark.parametrize("bundle", [e2e_bundle, keylime_bundle])
def test_composite_digest_is_the_signed_pcr_digest(bundle: Callable[[], Bundle]) -> None:
    b = bundle()
    attest = TpmsAttest.unpack(b.attest)
    assert isinstance(attest.attested, QuoteInfo)
    selections = attest.attested.pcr_select.selections
    assert pcr_composite_digest(HashAlg.SHA256, selections, b.banks) == attest.attested.pcr_digest
    assert pcr_composite_digest(HashAlg.SHA1, selections, b.banks) != attest.attested.pcr_digest


def test_multi_bank_blob_groups_eight_digests_per_list() -> None:
    selections = [PcrSelection.of(HashAlg.SHA1, range(10)), PcrSelection.of(HashAlg.SHA256, [0, 7, 23])]
    banks = {
        HashAlg.SHA1: {i: bytes([i]) * 20 for i in range(24)},
        HashAlg.SHA256: {i: bytes([0x80 | i]) * 32 for i in range(24)},
    }
    blob = build_tpm2tools_pcr_blob(selections, banks)
    assert len(blob) == 136 + 2 * 532  # 13 digests: 8 + 5
    assert struct.unpack_from("<I", blob, 136)[0] == 8 and struct.unpack_from("<I", blob, 136 + 532)[0] == 5
    parsed_selections, parsed = parse_tpm2tools_pcr_blob(blob)
    assert parsed_selections == selections
    assert parsed == selected_values(selections, banks)
    assert list(parsed[HashAlg.SHA256]) == [0, 7, 23]


def _to_big_endian(blob: bytes) -> bytes:
    """The same file as an old tpm2-tools on a big-endian host would have written it."""
    out = bytearray(blob)
    count = struct.unpack_from("<I", blob, 0)[0]
    struct.pack_into(">I", out, 0, count)
    for i in range(count):
        struct.pack_into(">H", out, 4 + 8 * i, struct.unpack_from("<H", blob, 4 + 8 * i)[0])
    lists = struct.unpack_from("<I", blob, 132)[0]
    struct.pack_into(">I", out, 132, lists)
    for j in range(lists):
        base = 136 + 532 * j
        struct.pack_into(">I", out, base, struct.unpack_from("<I", blob, base)[0])
        for k in range(8):
            at = base + 4 + 66 * k
            struct.pack_into(">H", out, at, struct.unpack_from("<H", blob, at)[0])
    return bytes(out)


def test_big_endian_host_order_is_detected() -> None:
    blob = e2e_bundle().pcr_blob or b""
    big = _to_big_endian(blob)
    assert big != blob
    assert parse_tpm2tools_pcr_blob(big) == parse_tpm2tools_pcr_blob(blob)


def _patched(blob: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(blob)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def test_malformed_blobs_are_decode_errors() -> None:
    blob = e2e_bundle().pcr_blob or b""
    cases: list[tuple[bytes, int | None]] = [
        (blob[:100], None),  # shorter than the header
        (blob[:-1], 132),  # body not a whole number of lists
        (blob + b"\x00" * 532, 132),  # one more list than announced
        (_patched(blob, 0, "<I", 0x01010101), 0),  # count invalid in both byte orders
        (_patched(blob, 6, "<B", 5), 6),  # sizeofSelect > 4
        (_patched(blob, 136, "<I", 9), 136),  # TPML_DIGEST.count > 8
        (_patched(blob, 140, "<H", 65), 140),  # TPM2B_DIGEST.size > 64
        (_patched(blob, 140, "<H", 20), 140),  # a SHA1-sized value in the sha256 bank
        (_patched(blob, 136 + 532, "<I", 3), None),  # fewer values than selected PCRs
        (_patched(blob, 9, "<B", 0x01), None),  # one more PCR selected than values
    ]
    for bad, offset in cases:
        with pytest.raises(DecodeError) as exc:
            parse_tpm2tools_pcr_blob(bad)
        if offset is not None:
            assert exc.value.offset == offset, bad[:16].hex()
    with pytest.raises(UnknownAlgorithmError) as exc:
        parse_tpm2tools_pcr_blob(_patched(blob, 4, "<H", 0x0099))
    assert exc.value.offset == 4


def test_padding_and_unused_slots_are_ignored() -> None:
    blob = bytearray(e2e_bundle().pcr_blob or b"")
    blob[4 + 7] = 0xAA  # struct padding after pcrSelect[4]
    blob[4 + 6] = 0xBB  # pcrSelect[3], beyond sizeofSelect = 3
    blob[4 + 8 : 4 + 16] = b"\xcc" * 8  # selection slot 1, beyond count = 1
    assert parse_tpm2tools_pcr_blob(bytes(blob)) == parse_tpm2tools_pcr_blob(e2e_bundle().pcr_blob or b"")


def test_duplicate_selection_with_conflicting_values_is_rejected() -> None:
    sel = PcrSelection.of(HashAlg.SHA256, [3])
    same = build_tpm2tools_pcr_blob([sel, sel], {HashAlg.SHA256: {3: b"\x01" * 32}})
    assert parse_tpm2tools_pcr_blob(same)[1] == {HashAlg.SHA256: {3: b"\x01" * 32}}
    conflicting = bytearray(same)
    conflicting[136 + 4 + 66 + 2] ^= 0xFF  # second digest, first byte
    with pytest.raises(DecodeError):
        parse_tpm2tools_pcr_blob(bytes(conflicting))


def test_missing_or_wrong_size_values_name_the_pcr() -> None:
    sel = [PcrSelection.of(HashAlg.SHA256, [0, 1])]
    with pytest.raises(MissingPcrError) as exc:
        pcr_composite_digest(HashAlg.SHA256, sel, {HashAlg.SHA256: {0: b"\x00" * 32}})
    assert (exc.value.bank, exc.value.index) == ("sha256", 1)
    assert isinstance(exc.value, ValidationError)
    with pytest.raises(MissingPcrError):
        pcr_composite_digest(HashAlg.SHA256, sel, {HashAlg.SHA1: {0: b"\x00" * 20, 1: b"\x00" * 20}})
    with pytest.raises(MissingPcrError):
        pcr_composite_digest(HashAlg.SHA256, sel, {HashAlg.SHA256: {0: b"\x00" * 32, 1: b"\x00" * 20}})
    with pytest.raises(MissingPcrError):
        build_tpm2tools_pcr_blob(sel, {})


def test_composite_digest_follows_selection_order() -> None:
    banks = {HashAlg.SHA1: {0: b"\x01" * 20}, HashAlg.SHA256: {0: b"\x02" * 32}}
    a = [PcrSelection.of(HashAlg.SHA1, [0]), PcrSelection.of(HashAlg.SHA256, [0])]
    assert pcr_composite_digest(HashAlg.SHA256, a, banks) == HashAlg.SHA256.digest(b"\x01" * 20 + b"\x02" * 32)
    assert pcr_composite_digest(HashAlg.SHA256, a[::-1], banks) == HashAlg.SHA256.digest(b"\x02" * 32 + b"\x01" * 20)
    assert pcr_composite_digest(HashAlg.SHA384, [], banks) == HashAlg.SHA384.digest(b"")


def test_builder_limits() -> None:
    with pytest.raises(EncodeError):
        build_tpm2tools_pcr_blob([PcrSelection(HashAlg.SHA1, b"")] * 17, {})
    with pytest.raises(EncodeError):
        build_tpm2tools_pcr_blob([PcrSelection(HashAlg.SHA1, b"\x00" * 5)], {})
