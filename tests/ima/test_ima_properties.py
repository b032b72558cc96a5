"""Property tests: arbitrary and mutated input gives entries or our typed errors, never anything else."""

from __future__ import annotations

import hashlib
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ima_lines import KEYLIME_IMA_BUF, KEYLIME_UNSIGNED, WIKI_IMA_LINES, WIKI_IMA_SIG_LINE, log_text

from veritee import ima
from veritee.errors import UnsupportedAlgorithmError, UntrustedSignerError
from veritee.ima import ImaLogError, ImaSignatureError, ImaSignatureFormatError, TemplateHashMismatchError

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def _real_lines() -> tuple[str, ...]:
    other_templates = (WIKI_IMA_LINES + KEYLIME_UNSIGNED + WIKI_IMA_SIG_LINE + "\n" + KEYLIME_IMA_BUF).splitlines()
    return (*log_text().splitlines()[:200], *other_templates * 20)


def _check(text: str | bytes) -> None:
    """Parse ``text``; on success the column-wise and line fast paths agree with the reference parser, and replay
    either succeeds or names an edited line."""
    try:
        entries = ima.parse(text)
    except ImaLogError as exc:
        assert exc.line >= 0
        return
    lines = ima.split_lines(text)
    assert entries == [ima.parse_line(line, number) for number, line in enumerate(lines)]
    try:
        ima.replay_pcrs(entries)
    except TemplateHashMismatchError as exc:
        assert 0 <= exc.line < len(entries)
        bad = entries[exc.line]
        assert hashlib.new(bad.template_hash_alg.label, bad.template_data).digest() != bad.template_hash
    else:
        for entry in entries:
            assert entry.is_violation or entry.template_hash_alg.digest(entry.template_data) == entry.template_hash


@SETTINGS
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=400))
def test_random_text(text: str) -> None:
    _check(text)


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    _check(data)


_TOKENS = st.sampled_from(
    [" ", "  ", ":", "\n", "\0", "\t", "0", "f", "g", "ima", "ima-ng", "ima-sig", "ima-buf", "ima-modsig", "sha1",
     "sha256:", "10", " 9", "\udcff", "é", "00" * 20, "ab" * 16]
)  # fmt: skip


@st.composite
def _mutated_lines(draw: st.DrawFn) -> str:
    lines = list(draw(st.lists(st.sampled_from(_real_lines()), min_size=1, max_size=6)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        index = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        line = lines[index]
        at = draw(st.integers(min_value=0, max_value=len(line)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "truncate", "upper"]))
        if kind == "insert":
            line = line[:at] + draw(_TOKENS) + line[at:]
        elif kind == "delete":
            line = line[:at] + line[at + draw(st.integers(min_value=1, max_value=5)) :]
        elif kind == "replace":
            line = line[:at] + draw(_TOKENS) + line[at + 1 :]
        elif kind == "truncate":
            line = line[:at]
        else:
            line = line[:at] + line[at:].upper()
        lines[index] = line
    return "\n".join(lines)


@SETTINGS
@given(_mutated_lines())
def test_mutated_real_lines(text: str) -> None:
    _check(text)
    _check(text.encode("utf-8", "surrogateescape"))


_HEX = st.binary(max_size=40).map(bytes.hex)
_DIGEST_HEX = st.one_of(st.binary(min_size=20, max_size=20), st.binary(min_size=32, max_size=32)).map(bytes.hex)


@st.composite
def _structured_line(draw: st.DrawFn) -> tuple[str, str]:
    """A line built from plausible parts (so the deeper checks of every template are reached), as the text
    before and after its template hash."""
    pcr = draw(st.sampled_from(["10", "10", "10", " 9", "9", "11", "010", "x", ""]))
    template = draw(st.sampled_from(["ima", "ima-ng", "ima-sig", "ima-buf", "ima-modsig", "d-ng|n-ng"]))
    alg = draw(st.sampled_from(["sha1", "sha256", "sha256", "md5", "sm3", "sha3-256", "", "SHA1"]))
    hex_digest = draw(st.one_of(_DIGEST_HEX, _HEX))
    digest = hex_digest if template == "ima" else f"{alg}:{hex_digest}"
    path = draw(st.text(alphabet="/ab _\\\0é\udcff", max_size=12))
    extra = draw(st.lists(st.one_of(_HEX, st.just(""), st.just(f"{alg}:{'11' * 4}")), max_size=4))
    return pcr, " ".join([template, digest, path, *extra])


@settings(SETTINGS, max_examples=150)
@given(st.lists(_structured_line(), min_size=1, max_size=4), st.sampled_from(["00" * 20, "ab" * 20, "cd" * 32, "1"]))
def test_structured_lines(parts: list[tuple[str, str]], template_hash: str) -> None:
    _check("\n".join(f"{pcr} {template_hash} {rest}" for pcr, rest in parts))
    # With the right template hashes, every line that parses also replays, into its own PCR.
    fixed_lines = []
    for pcr, rest in parts:
        try:
            (entry,) = ima.parse(f"{pcr} {'00' * 20} {rest}")
        except ImaLogError:
            continue
        fixed_lines.append(f"{pcr} {hashlib.sha1(entry.template_data).hexdigest()} {rest}")
    entries = ima.parse("\n".join(fixed_lines))
    expected: dict[int, bytes] = {}
    for entry in entries:
        digest = hashlib.sha256(entry.template_data).digest()
        expected[entry.pcr] = hashlib.sha256(expected.get(entry.pcr, bytes(32)) + digest).digest()
    replayed = ima.replay_pcrs(entries, banks=[ima.DEFAULT_BANKS[1]])
    assert {pcr: banks[ima.DEFAULT_BANKS[1]] for pcr, banks in replayed.items()} == expected


@SETTINGS
@given(st.binary(max_size=80))
def test_random_signature_bytes(data: bytes) -> None:
    try:
        signature = ima.parse_signature(data)
    except (ImaSignatureFormatError, UnsupportedAlgorithmError):
        return
    assert signature.encode() == data


@SETTINGS
@given(st.binary(max_size=80), st.binary(max_size=70), st.sampled_from(["sha1", "sha256", "md5", "x"]))
def test_random_signature_verification(data: bytes, digest: bytes, alg: str) -> None:
    header = bytes([3, 2, 4, 0, 0, 0, 1]) + len(data).to_bytes(2, "big")
    for blob in (data, header + data):
        try:
            ima.verify_signature(blob, digest, alg, {})
        except (ImaSignatureFormatError, UnsupportedAlgorithmError, ImaSignatureError, UntrustedSignerError):
            continue
        raise AssertionError("an empty keyring verified a signature")


@settings(SETTINGS, max_examples=60)
@given(st.lists(st.integers(min_value=0, max_value=826), max_size=8))
def test_incremental_splits_equal_full_replay(cuts: list[int]) -> None:
    lines = log_text().splitlines(keepends=True)[: 826 // 4]
    state = ima.ImaState.initial()
    for cut in sorted({min(cut // 4, len(lines)) for cut in cuts} | {len(lines)}):
        _, state = ima.replay_incremental("".join(lines[state.next_line : cut]), state)
    assert state.next_line == len(lines)
    assert state.pcrs == ima.replay(ima.parse("".join(lines)))
