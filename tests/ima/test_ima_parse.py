"""Parser of ascii_runtime_measurements: real lists, real vectors of every template, malformed lines."""

from __future__ import annotations

import hashlib

import pytest
from ima_lines import (
    KEYLIME_IMA_BUF,
    KEYLIME_UNSIGNED,
    WIKI_IMA_LINES,
    WIKI_IMA_SIG_LINE,
    buf_line,
    ima_data,
    ima_line,
    log_text,
    ng_data,
    ng_line,
    sig_line,
)

from veritee import ima
from veritee.errors import DecodeError
from veritee.ima import ImaLogError, ImaTemplate
from veritee.ima.entry import format_entry


def _sha1_ok(entry: ima.ImaEntry) -> bool:
    return hashlib.sha1(entry.template_data).digest() == entry.template_hash


def test_rust_keylime_log_parses_into_826_ima_ng_entries() -> None:
    text = log_text()
    entries = ima.parse(text)
    assert len(entries) == 826
    assert [entry.line for entry in entries] == list(range(826))
    assert {entry.template_name for entry in entries} == {ImaTemplate.IMA_NG}
    assert {entry.pcr for entry in entries} == {10}
    first = entries[0]
    assert first.path == "boot_aggregate"
    assert first.file_digest_alg == "sha1"
    assert first.file_digest == bytes(20)
    assert first.template_data == ng_data("sha1", bytes(20), b"boot_aggregate")
    assert entries[1].path == "/init"
    assert entries[1].file_digest.hex() == "19f13b42c2745066347e76454788c0fe083643f3"
    assert all(_sha1_ok(entry) for entry in entries)
    assert all(entry.signature is None and entry.buffer is None for entry in entries)
    # The same list as bytes, and re-printed line by line, gives the same entries.
    assert ima.parse(text.encode()) == entries
    assert "\n".join(format_entry(entry) for entry in entries) + "\n" == text


def test_start_line_numbers_entries_from_there() -> None:
    lines = log_text().splitlines()[100:110]
    entries = ima.parse("\n".join(lines), start_line=100)
    assert [entry.line for entry in entries] == list(range(100, 110))
    with pytest.raises(ImaLogError):
        ima.parse("", start_line=-1)


def test_empty_input_has_no_entries() -> None:
    assert ima.parse("") == []
    assert ima.parse(b"") == []
    with pytest.raises(ImaLogError, match="line 0"):
        ima.parse("\n")  # one empty line is a malformed line, not an empty list


def test_original_ima_template_real_vectors() -> None:
    entries = ima.parse(WIKI_IMA_LINES)
    assert [entry.path for entry in entries] == ["boot_aggregate", "/init", "ld-2.9.so"]
    for entry in entries:
        assert entry.template_name is ImaTemplate.IMA
        assert entry.file_digest_alg == "sha1"
        assert entry.template_data == ima_data(entry.file_digest, entry.path.encode())
        assert len(entry.template_data) == 20 + 256
        assert _sha1_ok(entry)


def test_original_ima_template_md5_and_name_limit() -> None:
    (entry,) = ima.parse(ima_line(bytes(range(16)), "/etc/x"))
    assert entry.file_digest_alg == "md5"
    assert _sha1_ok(entry)
    longest = "/" + "a" * 254
    assert _sha1_ok(ima.parse(ima_line(bytes(20), longest))[0])
    with pytest.raises(ImaLogError, match="at most 255"):
        ima.parse(f"10 {'00' * 20} ima {'11' * 20} /{'a' * 255}")
    with pytest.raises(ImaLogError, match="SHA-1 or MD5"):
        ima.parse(f"10 {'00' * 20} ima {'11' * 32} /x")


def test_ima_sig_real_vectors() -> None:
    (signed,) = ima.parse(WIKI_IMA_SIG_LINE)
    assert signed.template_name is ImaTemplate.IMA_SIG
    assert signed.signature is not None and signed.signature[:2] == b"\x03\x02"
    assert len(signed.signature) == 137
    assert _sha1_ok(signed)
    unsigned = ima.parse(KEYLIME_UNSIGNED)
    assert [entry.signature for entry in unsigned] == [None, None]
    assert unsigned[1].path.endswith("usb-common.ko")
    assert all(_sha1_ok(entry) for entry in unsigned)
    # Tools that strip the trailing space of an unsigned entry: same entries.
    stripped = "\n".join(line.rstrip(" ") for line in KEYLIME_UNSIGNED.splitlines())
    assert ima.parse(stripped) == unsigned
    # The line fast path and the reference parser agree.
    for text in (WIKI_IMA_SIG_LINE, KEYLIME_UNSIGNED, stripped):
        assert ima.parse(text) == [ima.parse_line(line, n) for n, line in enumerate(ima.split_lines(text))]


def test_ima_buf_real_vector() -> None:
    (entry,) = ima.parse(KEYLIME_IMA_BUF)
    assert entry.template_name is ImaTemplate.IMA_BUF
    assert entry.path == ".ima"
    assert entry.buffer is not None and entry.buffer[:2] == b"\x30\x82"
    assert hashlib.sha256(entry.buffer).digest() == entry.file_digest
    assert _sha1_ok(entry)


def test_synthetic_buf_sig_and_empty_buffer() -> None:
    (kexec,) = ima.parse(buf_line("sha256", "kexec-cmdline", b"root=/dev/sda1 ro"))
    assert kexec.buffer == b"root=/dev/sda1 ro"
    assert _sha1_ok(kexec)
    kernel_line = buf_line("sha256", "empty", b"")
    assert kernel_line.endswith("empty ")  # the kernel prints nothing for an empty buffer after its space
    empty = ima.parse(kernel_line + "\n")
    assert empty == ima.parse(kernel_line.rstrip(" "))
    assert empty[0].buffer == b""
    assert _sha1_ok(empty[0])
    (sig,) = ima.parse(sig_line("sha512", b"\x01" * 64, "/bin/x", b"\x03\x02\x06abcd\x00\x01Z"))
    assert sig.signature == b"\x03\x02\x06abcd\x00\x01Z"
    assert sig.file_digest_alg == "sha512"
    assert _sha1_ok(sig)


def test_ima_modsig_with_and_without_appended_signature() -> None:
    digest, modsig_digest, modsig = b"\x11" * 32, b"\x22" * 32, b"\x30\x82\x01\x02pkcs7"
    path = "/lib/modules/6.1/kernel/fs/x.ko"
    data = ng_data("sha256", digest, path.encode(), b"", b"sha256:\0" + modsig_digest, modsig)
    line = (
        f"10 {hashlib.sha1(data).hexdigest()} ima-modsig sha256:{digest.hex()} {path}  "
        f"sha256:{modsig_digest.hex()} {modsig.hex()}"
    )
    (entry,) = ima.parse(line)
    assert entry.template_name is ImaTemplate.IMA_MODSIG
    assert (entry.signature, entry.modsig_digest_alg, entry.modsig_digest, entry.modsig) == (
        None,
        "sha256",
        modsig_digest,
        modsig,
    )
    assert entry.template_data == data
    assert format_entry(entry) == line
    plain_data = ng_data("sha256", digest, path.encode(), b"", b"", b"")
    (plain,) = ima.parse(f"10 {hashlib.sha1(plain_data).hexdigest()} ima-modsig sha256:{digest.hex()} {path}   ")
    assert plain.modsig is None and plain.template_data == plain_data
    with pytest.raises(ImaLogError, match="only one of"):
        ima.parse(f"10 {'00' * 20} ima-modsig sha256:{digest.hex()} {path}   {modsig.hex()}")


def test_single_digit_pcr_is_printed_with_a_leading_space() -> None:
    line = ng_line("sha256", b"\x05" * 32, "/usr/bin/a", pcr=9)
    (entry,) = ima.parse(" " + line)  # the kernel prints "%2d "
    assert entry.pcr == 9
    assert format_entry(entry) == " " + line
    assert ima.parse(line) == [entry]  # tools that drop the padding
    with pytest.raises(ImaLogError, match="single digit"):
        ima.parse(" 10" + line[1:])


def test_path_names_with_spaces_from_old_kernels() -> None:
    ng = ng_line("sha1", b"\x01" * 20, "/home/u/my file.txt")
    (entry,) = ima.parse(ng)
    assert entry.path == "/home/u/my file.txt"
    assert _sha1_ok(entry)
    signed = sig_line("sha256", b"\x02" * 32, "/opt/a b/c", b"\x03\x02\x04\x00\x00\x00\x01\x00\x01\x99")
    (entry,) = ima.parse(signed)
    assert entry.path == "/opt/a b/c"
    assert entry.signature is not None
    assert _sha1_ok(entry)


def test_non_utf8_path_bytes_survive() -> None:
    raw_path = b"/tmp/\xff\xfe-latin1-\xe9"
    data = ng_data("sha1", b"\x07" * 20, raw_path)
    line = f"10 {hashlib.sha1(data).hexdigest()} ima-ng sha1:{'07' * 20} ".encode() + raw_path + b"\n"
    (entry,) = ima.parse(line)
    assert entry.path_bytes == raw_path
    assert entry.template_data == data
    assert _sha1_ok(entry)


def test_sha256_template_hash_list() -> None:
    (entry,) = ima.parse(ng_line("sha256", b"\x09" * 32, "/x", hash_name="sha256"))
    assert len(entry.template_hash) == 32
    assert entry.template_hash == hashlib.sha256(entry.template_data).digest()


def test_violation_entry_is_recognised() -> None:
    line = f"10 {'00' * 20} ima-ng sha256:{'00' * 32} /var/log/messages"
    (entry,) = ima.parse(line)
    assert entry.is_violation
    assert not ima.parse(ng_line("sha1", b"\x01" * 20, "/x"))[0].is_violation


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("10 abc", "found 2 space-separated"),
        ("", "found 1 space-separated"),
        ("x10 " + "00" * 20 + " ima-ng sha1:" + "00" * 20 + " /a", "not a decimal PCR"),
        ("10 " + "0g" * 20 + " ima-ng sha1:" + "00" * 20 + " /a", "template hash"),
        ("10 " + "00" * 19 + " ima-ng sha1:" + "00" * 20 + " /a", "19 bytes"),
        ("10 " + "00" * 20 + " ima-foo sha1:" + "00" * 20 + " /a", "unsupported template"),
        ("10 " + "00" * 20 + " ima-ng sha1:" + "00" * 20, "no path name"),
        ("10 " + "00" * 20 + " ima-ng sha1" + "00" * 20 + " /a", "not '<algorithm>:<hex>'"),
        ("10 " + "00" * 20 + " ima-ng shaX:" + "00" * 20 + " /a", "unknown hash algorithm"),
        ("10 " + "00" * 20 + " ima-ng sha1: /a", "is empty"),
        ("10 " + "00" * 20 + " ima-ng sha1:" + "0" * 39 + " /a", "not hexadecimal"),
        ("10 " + "00" * 20 + " ima-ng sha1:" + "00" * 20 + " /a\0b", "NUL"),
        ("10 " + "00" * 20 + " ima-ng sha1:" + "00" * 20 + " /a\ud800", "lone surrogate"),
        ("10 " + "00" * 20 + " ima-sig sha1:" + "00" * 20 + " /a 03zz", "signature"),
        ("10 " + "00" * 20 + " ima-buf sha1:" + "00" * 20 + " /a 0", "buffer"),
        ("10 " + "00" * 20 + " ima-modsig sha1:" + "00" * 20 + " /a", "expected 4"),
        ("10 " + "00" * 20 + " ima-modsig sha1:" + "00" * 20 + " /a  sha1 00", "appended-signature digest"),
    ],
)
def test_malformed_lines_name_the_line(line: str, message: str) -> None:
    good = ng_line("sha1", b"\x01" * 20, "/ok")
    text = f"{good}\n{good}\n{line}\n{good}\n"
    with pytest.raises(ImaLogError, match=message) as caught:
        ima.parse(text, start_line=40)
    assert caught.value.line == 42
    assert caught.value.offset == 42
    assert "line 42" in str(caught.value)
    assert isinstance(caught.value, DecodeError)


def test_chunks_with_odd_lines_parse_like_the_reference_parser() -> None:
    lines = log_text().splitlines()
    mixed = [*lines, *lines[1:]]  # 1651 lines: two column-wise chunks
    mixed[1500] = " " + ng_line("sha1", b"\x03" * 20, "/pcr9", pcr=9)
    mixed[1600] = buf_line("sha256", "kexec-cmdline", b"quiet")
    mixed[1601] = "10 " + "00" * 20 + " ima-ng sha256:" + "00" * 20 + " /violation"
    entries = ima.parse("\n".join(mixed))
    assert entries == [ima.parse_line(line, number) for number, line in enumerate(mixed)]
    assert entries[1500].pcr == 9 and entries[1600].buffer == b"quiet"
    with pytest.raises(ImaLogError) as caught:
        ima.parse("\n".join([*mixed[:1300], "10 nothex ima-ng sha1:00 /x", *mixed[1300:]]))
    assert caught.value.line == 1300
