"""Replay of IMA measurement lists into PCR values, in one pass or incrementally.

For each entry the kernel extends one digest per PCR bank into the entry's PCR (10 by default):

* the bank of the logged template hash (SHA-1 in ``ascii_runtime_measurements``) is extended with that hash, which
  must equal the hash of the entry's template data; a mismatch means the line was edited and raises
  :class:`TemplateHashMismatchError` naming the line;
* every other bank is extended with its own hash of the template data;
* a violation entry (template hash all zeros) extends every bank with all-0xff bytes of the bank's size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from veritee.errors import DigestMismatchError, FreshnessError, ValidationError
from veritee.ima.entry import TEMPLATE_HASH_ALGS, ImaEntry
from veritee.ima.errors import ImaLogError, TemplateHashMismatchError
from veritee.ima.parser import parse_lines, split_lines
from veritee.tpm.alg import HashAlg

#: The PCR IMA extends unless a policy rule says ``pcr=``.
IMA_PCR = 10
DEFAULT_BANKS: tuple[HashAlg, ...] = (HashAlg.SHA1, HashAlg.SHA256)

_Hasher = Callable[[bytes], Any]  # a hashlib constructor: hasher(data).digest()
_FAST_HASHERS: dict[HashAlg, _Hasher] = {
    HashAlg.SHA1: hashlib.sha1,
    HashAlg.SHA256: hashlib.sha256,
    HashAlg.SHA384: hashlib.sha384,
    HashAlg.SHA512: hashlib.sha512,
}
_ZERO_TEMPLATE_HASHES = frozenset(bytes(size) for size in TEMPLATE_HASH_ALGS)


def _hasher(alg: HashAlg) -> _Hasher:
    fast = _FAST_HASHERS.get(alg)
    if fast is not None:
        return fast
    alg.new()  # raises UnsupportedAlgorithmError when this OpenSSL lacks the hash

    def hasher(data: bytes) -> Any:
        h = alg.new()
        h.update(data)
        return h

    return hasher


def _check_banks(banks: Iterable[HashAlg]) -> tuple[HashAlg, ...]:
    result = tuple(banks)
    if not result:
        raise ValidationError("at least one PCR bank is needed")
    if len(set(result)) != len(result):
        raise ValidationError(f"duplicate PCR bank in {[alg.label for alg in result]}")
    for alg in result:
        if not isinstance(alg, HashAlg):
            raise ValidationError(f"PCR bank {alg!r} is not a HashAlg")
    return result


def _bank_values(banks: tuple[HashAlg, ...], values: Mapping[HashAlg, bytes] | None, what: str) -> list[bytes]:
    if values is None:
        return [bytes(alg.digest_size) for alg in banks]
    result = []
    for alg in banks:
        value = values.get(alg)
        if value is None:
            raise ValidationError(f"{what} has no {alg.label} value")
        if len(value) != alg.digest_size:
            raise ValidationError(f"{what} {alg.label} value has {len(value)} bytes, expected {alg.digest_size}")
        result.append(bytes(value))
    return result


def _log_algs(template_hash_alg: HashAlg | None) -> dict[int, HashAlg]:
    """Hash algorithm of the logged template-hash column, by hash size."""
    if template_hash_alg is None:
        return dict(TEMPLATE_HASH_ALGS)
    return {template_hash_alg.digest_size: template_hash_alg}


def _mismatch(entry: ImaEntry, log_algs: dict[int, HashAlg]) -> TemplateHashMismatchError:
    template_hash = entry.template_hash
    log_alg = log_algs.get(len(template_hash))
    if log_alg is None:
        expected = " or ".join(alg.label for alg in log_algs.values())
        return TemplateHashMismatchError(
            f"template hash of {len(template_hash)} bytes does not fit {expected}",
            line=entry.line,
        )
    computed = log_alg.digest(entry.template_data)
    return TemplateHashMismatchError(
        f"logged template hash {template_hash.hex()} is not {log_alg.label}(template data) = {computed.hex()}: "
        "the line was edited",
        line=entry.line,
    )


def _check_template_hashes(
    entries: list[ImaEntry], template_hashes: list[bytes], template_datas: list[bytes], log_algs: dict[int, HashAlg]
) -> tuple[int | None, dict[HashAlg, list[bytes]]]:
    """The index of the first entry whose logged template hash is wrong (None if none) and, when every logged hash
    has the same algorithm, that algorithm's hashes of every entry's template data (what its bank is extended with).
    """
    zero_hashes = _ZERO_TEMPLATE_HASHES
    sizes = {len(template_hash) for template_hash in template_hashes}
    if len(sizes) == 1 and (size := next(iter(sizes))) in log_algs:
        log_alg = log_algs[size]
        log_hasher = _hasher(log_alg)
        computed = [log_hasher(data).digest() for data in template_datas]
        if computed != template_hashes:
            for index, (have, want) in enumerate(zip(template_hashes, computed, strict=True)):
                if have != want and have not in zero_hashes:
                    return index, {log_alg: computed}
        return None, {log_alg: computed}
    for index, (template_hash, data) in enumerate(zip(template_hashes, template_datas, strict=True)):
        if template_hash in zero_hashes:
            continue
        entry_alg = log_algs.get(len(template_hash))
        if entry_alg is None or entry_alg.digest(data) != template_hash:
            return index, {}
    return None, {}


def _first_match(chains: list[list[bytes]], target: Sequence[bytes | None]) -> int | None:
    """The first position where every compared bank's chain equals ``target``."""
    compare = [(chains[bank], want) for bank, want in enumerate(target) if want is not None]
    first_chain, first_want = compare[0]
    begin = 0
    while True:
        try:
            position = first_chain.index(first_want, begin)
        except ValueError:
            return None
        if all(chain[position] == want for chain, want in compare[1:]):
            return position
        begin = position + 1


def _extend_all(
    entries: Iterable[ImaEntry],
    banks: tuple[HashAlg, ...],
    values: dict[int, list[bytes]],
    template_hash_alg: HashAlg | None,
    target: Sequence[bytes | None] | None = None,
) -> int:
    """Extend ``values`` (PCR -> one value per bank, mutated) with ``entries``; return how many were consumed.

    Works column by column, which keeps the interpreter out of the hash calls: first every logged template hash is
    checked (the first wrong one in list order is named), then each PCR's chain is extended per bank. Extends of
    different PCRs commute, so grouping by PCR keeps the per-PCR order and the result.

    With ``target`` (aligned with ``banks``; None items are not compared), consume entries only up to the first one
    (or none) after which PCR 10 equals ``target``; raise :class:`DigestMismatchError` if no prefix does. Lines after
    that point are not this quote's, so a wrong template hash there is not reported.
    """
    entry_list = entries if isinstance(entries, list) else list(entries)
    if target is not None:
        if _matches(values.get(IMA_PCR, [bytes(alg.digest_size) for alg in banks]), target):
            return 0
        if not entry_list:
            raise DigestMismatchError(f"no new measurement-list entries, and PCR {IMA_PCR} differs from the quote")
        if any(entry[1] != IMA_PCR for entry in entry_list):
            return _extend_until(entry_list, banks, values, template_hash_alg, target)
    if not entry_list:
        return 0
    log_algs = _log_algs(template_hash_alg)
    template_hashes = [entry[2] for entry in entry_list]
    template_datas = [entry[9] for entry in entry_list]
    first_bad, logged = _check_template_hashes(entry_list, template_hashes, template_datas, log_algs)
    if first_bad is not None and target is None:
        raise _mismatch(entry_list[first_bad], log_algs)
    pcr_numbers = {entry[1] for entry in entry_list}
    if len(pcr_numbers) == 1:
        groups = [(next(iter(pcr_numbers)), list(range(len(entry_list))))]
    else:
        by_pcr: dict[int, list[int]] = {}
        for index, entry in enumerate(entry_list):
            by_pcr.setdefault(entry[1], []).append(index)
        groups = list(by_pcr.items())
    zero_hashes = _ZERO_TEMPLATE_HASHES
    chains: list[list[bytes]] = []  # with a target: PCR 10's value after each entry, per bank
    for pcr, indices in groups:
        current = values.get(pcr)
        if current is None:
            current = values[pcr] = [bytes(alg.digest_size) for alg in banks]
        whole = len(indices) == len(entry_list)
        datas = template_datas if whole else [template_datas[i] for i in indices]
        hashes = template_hashes if whole else [template_hashes[i] for i in indices]
        violations = [position for position, template_hash in enumerate(hashes) if template_hash in zero_hashes]
        for bank, alg in enumerate(banks):
            hasher = _hasher(alg)
            known = logged.get(alg)
            if known is not None:
                digests = list(known) if whole else [known[i] for i in indices]
            else:
                digests = [hasher(data).digest() for data in datas]
            if violations:
                ff = b"\xff" * alg.digest_size
                for position in violations:
                    digests[position] = ff
            value = current[bank]
            if target is None:
                for digest in digests:
                    value = hasher(value + digest).digest()
            else:
                chain: list[bytes] = []
                record = chain.append
                for digest in digests:
                    value = hasher(value + digest).digest()
                    record(value)
                chains.append(chain)
            current[bank] = value
    if target is None:
        return len(entry_list)
    match = _first_match(chains, target)
    if first_bad is not None and (match is None or first_bad <= match):
        raise _mismatch(entry_list[first_bad], log_algs)
    if match is None:
        raise DigestMismatchError(
            f"no prefix of the {len(entry_list)} new measurement-list entries reproduces the quoted PCR {IMA_PCR}"
        )
    current = values[IMA_PCR]
    for bank, chain in enumerate(chains):
        current[bank] = chain[match]
    return match + 1


def _extend_until(
    entries: Iterable[ImaEntry],
    banks: tuple[HashAlg, ...],
    values: dict[int, list[bytes]],
    template_hash_alg: HashAlg | None,
    target: Sequence[bytes | None],
) -> int:
    """:func:`_extend_all` with a target, one entry at a time: for lists that also extend other PCRs.

    The caller has checked that ``values`` do not already match ``target``.
    """
    hashers = [_hasher(alg) for alg in banks]
    ffs = [b"\xff" * alg.digest_size for alg in banks]
    zeros = [bytes(alg.digest_size) for alg in banks]
    log_algs = _log_algs(template_hash_alg)
    zero_hashes = _ZERO_TEMPLATE_HASHES
    count = 0
    for entry in entries:
        pcr, template_hash, template_data = entry[1], entry[2], entry[9]
        current = values.get(pcr)
        if current is None:
            current = values[pcr] = list(zeros)
        violation = template_hash in zero_hashes
        if not violation:
            log_alg = log_algs.get(len(template_hash))
            if log_alg is None or log_alg.digest(template_data) != template_hash:
                raise _mismatch(entry, log_algs)
        for bank, hasher in enumerate(hashers):
            digest = ffs[bank] if violation else hasher(template_data).digest()
            current[bank] = hasher(current[bank] + digest).digest()
        count += 1
        if pcr == IMA_PCR and _matches(current, target):
            return count
    raise DigestMismatchError(
        f"no prefix of the {count} new measurement-list entries reproduces the quoted PCR {IMA_PCR}"
    )


def _matches(current: list[bytes], target: Sequence[bytes | None]) -> bool:
    return all(want is None or have == want for have, want in zip(current, target, strict=True))


def replay_pcrs(
    entries: Iterable[ImaEntry],
    *,
    banks: Iterable[HashAlg] = DEFAULT_BANKS,
    start: Mapping[int, Mapping[HashAlg, bytes]] | None = None,
    template_hash_alg: HashAlg | None = None,
) -> dict[int, dict[HashAlg, bytes]]:
    """Replay every entry into its own PCR; returns PCR -> bank -> value for each PCR the entries touch (and start).

    ``template_hash_alg`` is the hash of the logged template-hash column; by default it follows its size (20 bytes:
    SHA-1, 32: SHA-256, 48: SHA-384, 64: SHA-512).
    """
    bank_tuple = _check_banks(banks)
    values = {
        pcr: _bank_values(bank_tuple, start_values, f"start PCR {pcr}") for pcr, start_values in (start or {}).items()
    }
    _extend_all(entries, bank_tuple, values, template_hash_alg)
    return {pcr: dict(zip(bank_tuple, values[pcr], strict=True)) for pcr in sorted(values)}


def replay(
    entries: Iterable[ImaEntry],
    *,
    banks: Iterable[HashAlg] = DEFAULT_BANKS,
    start: Mapping[HashAlg, bytes] | None = None,
    template_hash_alg: HashAlg | None = None,
) -> dict[HashAlg, bytes]:
    """PCR 10 per bank after replaying ``entries`` from ``start`` (default: all zeros).

    Entries for other PCRs are replayed into their own PCR (and their template hashes checked) but not returned;
    :func:`replay_pcrs` returns them.
    """
    bank_tuple = _check_banks(banks)
    values = {IMA_PCR: _bank_values(bank_tuple, start, "start")}
    _extend_all(entries, bank_tuple, values, template_hash_alg)
    return dict(zip(bank_tuple, values[IMA_PCR], strict=True))


@dataclass(frozen=True, slots=True)
class ImaState:
    """Where an incremental appraisal of one boot's measurement list stands.

    ``next_line`` is the 0-based number of the first line not yet replayed, ``pcrs`` the PCR 10 value per bank after
    the lines before it, ``other_pcrs`` the values of any other PCR those lines extended. Treat the mappings as
    read-only: every replay returns a new state.
    """

    next_line: int
    pcrs: dict[HashAlg, bytes]
    other_pcrs: dict[int, dict[HashAlg, bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.next_line < 0:
            raise ValidationError(f"next_line {self.next_line} is negative")
        banks = _check_banks(self.pcrs)
        _bank_values(banks, self.pcrs, f"PCR {IMA_PCR}")
        for pcr, values in self.other_pcrs.items():
            if pcr == IMA_PCR:
                raise ValidationError(f"PCR {IMA_PCR} belongs in pcrs, not other_pcrs")
            _bank_values(banks, values, f"PCR {pcr}")

    @classmethod
    def initial(cls, banks: Iterable[HashAlg] = DEFAULT_BANKS) -> ImaState:
        """The state before the first line of a boot: every PCR all zeros."""
        bank_tuple = _check_banks(banks)
        return cls(0, {alg: bytes(alg.digest_size) for alg in bank_tuple})

    @property
    def banks(self) -> tuple[HashAlg, ...]:
        return tuple(self.pcrs)


def replay_incremental(
    text: str | bytes,
    state: ImaState,
    *,
    first_line: int | None = None,
    expect: Mapping[HashAlg, bytes] | None = None,
    template_hash_alg: HashAlg | None = None,
) -> tuple[list[ImaEntry], ImaState]:
    """Parse and replay only the lines not yet appraised; returns the new entries and the state after them.

    ``text`` holds the measurement list from line ``first_line`` on (default ``state.next_line``, what an agent
    returns when asked for the entries from that line). Lines before ``state.next_line`` in ``text`` are skipped
    unparsed, so a caller may also pass the whole list with ``first_line=0``.

    With ``expect`` (quoted PCR 10 values for some of the state's banks), replay stops at the first line after which
    PCR 10 equals them, since the list may have grown after the quote; the remaining lines are left for the next
    round (a malformed line there does not matter yet either). If no prefix reproduces ``expect``,
    :class:`~veritee.errors.DigestMismatchError` is raised (or the :class:`ImaLogError` of a malformed line that
    stopped the replay short).

    On any error the state is unchanged (states are immutable) and nothing is returned.
    """
    start = state.next_line if first_line is None else first_line
    if start < 0:
        raise ValidationError(f"first_line {start} is negative")
    if start > state.next_line:
        raise ValidationError(f"text starts at line {start}, after line {state.next_line} that is due next: a gap")
    lines = split_lines(text)
    skip = state.next_line - start
    if skip > len(lines):
        raise FreshnessError(
            f"measurement list ends at line {start + len(lines)}, before the {state.next_line} lines already "
            "appraised: the machine rebooted or this is another list"
        )
    banks = state.banks
    target: list[bytes | None] | None = None
    if expect is not None:
        unknown = [alg.label for alg in expect if alg not in banks]
        if unknown or not expect:
            raise ValidationError(f"expected values must be for some of the state's banks, not {unknown or 'none'}")
        target = [expect.get(alg) for alg in banks]
    pending: ImaLogError | None = None
    try:
        entries = parse_lines(lines[skip:], start_line=state.next_line)
    except ImaLogError as exc:
        if target is None:
            raise
        # A bad line after the quote point (say, a last line still being written) is the next round's business.
        pending = exc
        entries = parse_lines(lines[skip : skip + exc.line - state.next_line], start_line=state.next_line)
    values: dict[int, list[bytes]] = {
        pcr: [pcr_values[alg] for alg in banks] for pcr, pcr_values in state.other_pcrs.items()
    }
    values[IMA_PCR] = [state.pcrs[alg] for alg in banks]
    try:
        consumed = _extend_all(entries, banks, values, template_hash_alg, target)
    except DigestMismatchError as exc:
        if pending is not None and not isinstance(exc, TemplateHashMismatchError):
            raise pending from None
        raise
    entries = entries[:consumed]
    new_state = ImaState(
        state.next_line + consumed,
        dict(zip(banks, values.pop(IMA_PCR), strict=True)),
        {pcr: dict(zip(banks, pcr_values, strict=True)) for pcr, pcr_values in sorted(values.items())},
    )
    return entries, new_state
