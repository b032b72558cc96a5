"""PCR replay: real lists against real PCR values, edited lines, violations, other PCRs, incremental rounds."""

from __future__ import annotations

import hashlib
import random

import pytest
from ima_lines import (
    RUST_KEYLIME_SHA1_PCR10,
    e2e_dir,
    extend,
    ima_line,
    log_text,
    ng_data,
    ng_line,
    read_pcrs_yaml,
    sig_line,
)

from veritee import ima
from veritee.errors import DigestMismatchError, FreshnessError, UnsupportedAlgorithmError, ValidationError
from veritee.ima import ImaState, TemplateHashMismatchError
from veritee.tpm.alg import HashAlg

SHA1, SHA256, SHA384 = HashAlg.SHA1, HashAlg.SHA256, HashAlg.SHA384


def _manual_replay(lines: list[str], name: str, size: int) -> bytes:
    """Replay by hand: template data rebuilt from the ima-ng text, hashed with ``name``."""
    pcr = bytes(size)
    for line in lines:
        _, template_hash, _, digest, path = line.split(" ", 4)
        if template_hash == "00" * 20:
            pcr = extend(name, pcr, b"\xff" * size)
            continue
        alg, hex_digest = digest.split(":")
        data = ng_data(alg, bytes.fromhex(hex_digest), path.encode())
        pcr = extend(name, pcr, hashlib.new(name, data).digest())
    return pcr


def test_rust_keylime_log_replays_to_its_sha1_pcr10() -> None:
    entries = ima.parse(log_text())
    result = ima.replay(entries)
    assert result[SHA1].hex() == RUST_KEYLIME_SHA1_PCR10
    assert result[SHA256] == _manual_replay(log_text().splitlines(), "sha256", 32)
    assert list(result) == [SHA1, SHA256]


def test_e2e_swtpm_log_matches_the_quoted_pcr10_in_both_banks() -> None:
    folder = e2e_dir()
    pcrs = read_pcrs_yaml(folder / "pcrs.yaml")
    entries = ima.parse((folder / "ascii_runtime_measurements").read_bytes())
    result = ima.replay(entries, banks=(SHA1, SHA256))
    assert result[SHA1] == pcrs["sha1"][10]
    assert result[SHA256] == pcrs["sha256"][10]
    assert ima.replay_pcrs(entries) == {10: result}


def test_sha384_bank_and_single_bank() -> None:
    lines = log_text().splitlines()[:50]
    entries = ima.parse("\n".join(lines))
    assert ima.replay(entries, banks=[SHA384]) == {SHA384: _manual_replay(lines, "sha384", 48)}
    assert ima.replay(entries, banks=[SHA1])[SHA1] == _manual_replay(lines, "sha1", 20)


def test_edited_line_is_named() -> None:
    lines = log_text().splitlines()
    # Change the digest of /init on line 1: the logged template hash no longer covers the template data.
    lines[1] = lines[1].replace("sha1:19f13b42", "sha1:29f13b42")
    entries = ima.parse("\n".join(lines))
    with pytest.raises(TemplateHashMismatchError, match="line 1: logged template hash") as caught:
        ima.replay(entries)
    assert caught.value.line == 1
    assert isinstance(caught.value, DigestMismatchError)
    # The first edited line in list order is named, also when it was measured into another PCR.
    lines = log_text().splitlines()
    lines[700] = _flip_template_hash(lines[700])
    lines[5] = "11" + _flip_template_hash(lines[5])[2:]
    with pytest.raises(TemplateHashMismatchError) as caught:
        ima.replay(ima.parse("\n".join(lines)))
    assert caught.value.line == 5


def _flip_template_hash(line: str) -> str:
    return line[:3] + ("0" if line[3] != "0" else "1") + line[4:]


def test_edited_template_hash_on_the_slow_path_is_named() -> None:
    good = [ng_line("sha1", bytes([i]) * 20, f"/f{i}") for i in range(5)]
    mixed = [*good, ng_line("sha256", b"\x01" * 32, "/s", hash_name="sha256")]  # two template-hash sizes
    mixed[3] = _flip_template_hash(mixed[3])
    with pytest.raises(TemplateHashMismatchError, match="line 3"):
        ima.replay(ima.parse("\n".join(mixed)))
    with pytest.raises(TemplateHashMismatchError, match="does not fit sha1"):
        ima.replay(ima.parse(mixed[-1]), template_hash_alg=SHA1)


def test_violations_extend_all_ff() -> None:
    lines = [
        ng_line("sha1", b"\x01" * 20, "/etc/a"),
        f"10 {'00' * 20} ima-ng sha1:{'00' * 20} /var/log/wtmp",
        ng_line("sha1", b"\x02" * 20, "/etc/b"),
    ]
    result = ima.replay(ima.parse("\n".join(lines)), banks=(SHA1, SHA256, SHA384))
    assert result[SHA1] == _manual_replay(lines, "sha1", 20)
    assert result[SHA256] == _manual_replay(lines, "sha256", 32)
    assert result[SHA384] == _manual_replay(lines, "sha384", 48)
    only = ima.replay(ima.parse(lines[1]), banks=(SHA1, SHA256))
    assert only == {SHA1: extend("sha1", bytes(20), b"\xff" * 20), SHA256: extend("sha256", bytes(32), b"\xff" * 32)}
    assert ima.parse(lines[1])[0].template_digest(SHA256) == b"\xff" * 32


def test_entries_for_other_pcrs_go_to_their_own_pcr() -> None:
    ten = [ng_line("sha1", bytes([i]) * 20, f"/ten{i}") for i in range(3)]
    eleven = [ng_line("sha256", bytes([i]) * 32, f"/eleven{i}", pcr=11) for i in range(2)]
    nine = [" " + ng_line("sha1", b"\x09" * 20, "/nine", pcr=9)]
    lines = [ten[0], eleven[0], ten[1], nine[0], eleven[1], ten[2]]
    entries = ima.parse("\n".join(lines))
    assert [entry.pcr for entry in entries] == [10, 11, 10, 9, 11, 10]
    everything = ima.replay_pcrs(entries, banks=(SHA1, SHA256))
    assert sorted(everything) == [9, 10, 11]
    assert everything[10][SHA256] == _manual_replay(ten, "sha256", 32)
    assert everything[11][SHA1] == _manual_replay(eleven, "sha1", 20)
    assert everything[9][SHA1] == _manual_replay([nine[0][1:]], "sha1", 20)
    assert ima.replay(entries) == everything[10]
    # The per-entry path (used with expected values) agrees with the column-wise one.
    _, state = ima.replay_incremental("\n".join(lines), ImaState.initial(), expect={SHA1: everything[10][SHA1]})
    assert state.pcrs == everything[10]
    assert state.other_pcrs == {9: everything[9], 11: everything[11]}
    assert state.next_line == 6


def test_original_ima_and_ima_sig_entries_replay() -> None:
    lines = [
        ima_line(b"\x01" * 20, "boot_aggregate"),
        ima_line(b"\x02" * 16, "/bin/md5sum"),
        sig_line("sha256", b"\x03" * 32, "/bin/signed", b"\x03\x02\x04\x01\x02\x03\x04\x00\x02\xab\xcd"),
    ]
    entries = ima.parse("\n".join(lines))
    expected = bytes(32)
    for entry in entries:
        expected = extend("sha256", expected, hashlib.sha256(entry.template_data).digest())
    assert ima.replay(entries, banks=[SHA256]) == {SHA256: expected}


def test_start_values_and_sha256_template_hashes() -> None:
    lines = log_text().splitlines()
    entries = ima.parse("\n".join(lines))
    half = ima.replay(entries[:400])
    assert ima.replay(entries[400:], start=half) == ima.replay(entries)
    # An ascii_runtime_measurements_sha256 list: the template-hash column is SHA-256; the PCRs are the same.
    sha256_list = [
        f"10 {hashlib.sha256(entry.template_data).hexdigest()} {line.split(' ', 2)[2]}"
        for entry, line in zip(entries, lines, strict=True)
    ]
    sha256_entries = ima.parse("\n".join(sha256_list))
    assert ima.replay(sha256_entries) == ima.replay(entries)
    assert ima.replay(sha256_entries, template_hash_alg=SHA256) == ima.replay(entries)
    with pytest.raises(TemplateHashMismatchError, match="line 0"):
        ima.replay(sha256_entries, template_hash_alg=HashAlg.SM3_256)
    with pytest.raises(TemplateHashMismatchError, match="line 0"):
        ima.replay(entries, template_hash_alg=SHA256)


def test_bad_bank_arguments() -> None:
    entries = ima.parse(log_text())[:3]
    with pytest.raises(ValidationError, match="at least one"):
        ima.replay(entries, banks=[])
    with pytest.raises(ValidationError, match="duplicate"):
        ima.replay(entries, banks=[SHA1, SHA1])
    with pytest.raises(ValidationError, match="no sha256"):
        ima.replay(entries, start={SHA1: bytes(20)})
    with pytest.raises(ValidationError, match="19 bytes"):
        ima.replay(entries, start={SHA1: bytes(19), SHA256: bytes(32)})
    with pytest.raises(ValidationError, match="negative"):
        ImaState(-1, {SHA1: bytes(20)})
    with pytest.raises(ValidationError, match="belongs in pcrs"):
        ImaState(0, {SHA1: bytes(20)}, {10: {SHA1: bytes(20)}})


def test_sm3_bank_when_available() -> None:
    entries = ima.parse(log_text())[:5]
    try:
        result = ima.replay(entries, banks=[HashAlg.SM3_256])
    except UnsupportedAlgorithmError:
        pytest.skip("this OpenSSL has no SM3")
    expected = bytes(32)
    for entry in entries:
        expected = HashAlg.SM3_256.digest(expected + HashAlg.SM3_256.digest(entry.template_data))
    assert result == {HashAlg.SM3_256: expected}


@pytest.mark.parametrize("seed", range(5))
def test_incremental_rounds_equal_one_full_replay(seed: int) -> None:
    lines = log_text().splitlines(keepends=True)
    full = ima.replay(ima.parse("".join(lines)), banks=(SHA1, SHA256))
    rng = random.Random(seed)
    state = ImaState.initial((SHA1, SHA256))
    seen: list[ima.ImaEntry] = []
    rounds = 0
    while state.next_line < len(lines):
        end = min(len(lines), state.next_line + rng.choice([0, 1, 2, 7, 50, 300]))
        new, state = ima.replay_incremental("".join(lines[state.next_line : end]), state)
        assert [entry.line for entry in new] == list(range(end - len(new), end))
        seen.extend(new)
        rounds += 1
    assert rounds > 3
    assert state.pcrs == full
    assert state.next_line == len(lines) == len(seen)
    assert seen == ima.parse("".join(lines))
    assert state.pcrs[SHA1].hex() == RUST_KEYLIME_SHA1_PCR10


def test_incremental_with_the_whole_list_skips_old_lines() -> None:
    text = log_text()
    entries = ima.parse(text)
    state = ima.replay_incremental("".join(text.splitlines(keepends=True)[:300]), ImaState.initial())[1]
    new, state = ima.replay_incremental(text, state, first_line=0)
    assert [entry.line for entry in new] == list(range(300, 826))
    assert state.pcrs == ima.replay(entries)
    again, same = ima.replay_incremental(text, state, first_line=0)
    assert again == [] and same == state
    nothing, same = ima.replay_incremental("", state)
    assert nothing == [] and same == state


def test_incremental_gaps_and_shrunk_lists_are_refused() -> None:
    text = log_text()
    state = ima.replay_incremental("".join(text.splitlines(keepends=True)[:10]), ImaState.initial())[1]
    with pytest.raises(ValidationError, match="gap"):
        ima.replay_incremental(text, state, first_line=11)
    with pytest.raises(FreshnessError, match="rebooted"):
        ima.replay_incremental("".join(text.splitlines(keepends=True)[:5]), state, first_line=0)


def test_incremental_error_leaves_the_state_usable() -> None:
    lines = log_text().splitlines(keepends=True)
    state = ima.replay_incremental("".join(lines[:100]), ImaState.initial())[1]
    bad = list(lines[100:200])
    bad[50] = _flip_template_hash(bad[50])
    with pytest.raises(TemplateHashMismatchError, match="line 150"):
        ima.replay_incremental("".join(bad), state)
    _, after = ima.replay_incremental("".join(lines[100:]), state)
    assert after.pcrs == ima.replay(ima.parse("".join(lines)))


def test_incremental_stops_where_the_quote_was_taken() -> None:
    lines = log_text().splitlines(keepends=True)
    entries = ima.parse("".join(lines))
    quoted_at_500 = ima.replay(entries[:500])
    new, state = ima.replay_incremental("".join(lines), ImaState.initial(), expect={SHA256: quoted_at_500[SHA256]})
    assert len(new) == 500 and state.next_line == 500
    assert state.pcrs == quoted_at_500
    # The rest arrives with the next quote.
    rest, state = ima.replay_incremental("".join(lines[500:]), state, expect=ima.replay(entries))
    assert len(rest) == 326 and state.pcrs == ima.replay(entries)
    # Already at the quoted value: nothing consumed.
    none, same = ima.replay_incremental("".join(lines[500:]), ImaState(500, dict(quoted_at_500)), expect=quoted_at_500)
    assert none == [] and same.next_line == 500
    with pytest.raises(DigestMismatchError, match="no prefix"):
        ima.replay_incremental("".join(lines), ImaState.initial(), expect={SHA1: b"\x01" * 20})
    with pytest.raises(ValidationError, match="banks"):
        ima.replay_incremental("".join(lines), ImaState.initial(), expect={SHA384: bytes(48)})


def test_quote_bound_replay_ignores_edits_after_the_quote_point() -> None:
    lines = log_text().splitlines(keepends=True)
    entries = ima.parse("".join(lines))
    quoted = ima.replay(entries[:300])
    edited = list(lines)
    edited[600] = _flip_template_hash(edited[600])
    new, state = ima.replay_incremental("".join(edited), ImaState.initial(), expect=quoted)
    assert len(new) == 300 and state.pcrs == quoted
    with pytest.raises(TemplateHashMismatchError, match="line 600"):
        ima.replay_incremental("".join(edited[300:]), state, expect=ima.replay(entries))
    edited[200] = _flip_template_hash(edited[200])
    with pytest.raises(TemplateHashMismatchError, match="line 200"):
        ima.replay_incremental("".join(edited), ImaState.initial(), expect=quoted)
    # An edited line and no match at all: the edited line is what is reported.
    with pytest.raises(TemplateHashMismatchError, match="line 200"):
        ima.replay_incremental("".join(edited), ImaState.initial(), expect={SHA1: b"\x01" * 20})


def test_quote_bound_replay_with_violations_and_both_banks() -> None:
    lines = [ng_line("sha1", bytes([i]) * 20, f"/f{i}") for i in range(1, 9)]
    lines[3] = f"10 {'00' * 20} ima-ng sha1:{'00' * 20} /tomtou"
    entries = ima.parse("\n".join(lines))
    for cut in range(1, len(lines) + 1):
        quoted = ima.replay(entries[:cut])
        new, state = ima.replay_incremental("\n".join(lines), ImaState.initial(), expect=quoted)
        assert (len(new), state.pcrs) == (cut, quoted)
        assert state.pcrs[SHA1] == _manual_replay(lines[:cut], "sha1", 20)
    with pytest.raises(DigestMismatchError, match="no new measurement-list entries"):
        ima.replay_incremental("", ImaState.initial(), expect={SHA1: b"\x01" * 20})
    # Two banks compared: both must match at the same line.
    wrong = {SHA1: ima.replay(entries[:2])[SHA1], SHA256: ima.replay(entries[:5])[SHA256]}
    with pytest.raises(DigestMismatchError, match="no prefix"):
        ima.replay_incremental("\n".join(lines), ImaState.initial(), expect=wrong)


def test_quote_bound_replay_tolerates_a_bad_line_after_the_quote_point() -> None:
    lines = log_text().splitlines(keepends=True)[:50]
    entries = ima.parse("".join(lines))
    text = "".join(lines) + "10 1234 ima-ng sha1:ab /half-writ"
    new, state = ima.replay_incremental(text, ImaState.initial(), expect=ima.replay(entries[:20]))
    assert len(new) == 20 and state.next_line == 20
    with pytest.raises(ima.ImaLogError, match="line 50"):
        ima.replay_incremental(text, state, first_line=0, expect={SHA1: b"\x01" * 20})
    with pytest.raises(ima.ImaLogError, match="line 50"):
        ima.replay_incremental(text, state, first_line=0)
