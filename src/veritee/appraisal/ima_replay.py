"""Fast IMA replay for appraisal: lines the runtime policy already approves are recognised by their exact text.

At policy compile time, for every (path, allowed digest) of the runtime policy the exact ``ima-ng`` line the kernel
would print is built (PCR 10, the template hash over the template data, the digest with its algorithm name, the
path), together with the template digests the PCR banks are extended with. An appraisal then looks each line up:

* a known line is proven well-formed, measured into PCR 10, with a correct template hash and a digest the policy
  allows, so only the PCR extend remains to be done;
* any other line is parsed by :mod:`veritee.ima` and checked in full (template hash, policy), as before.

The extend semantics are :mod:`veritee.ima.replay`'s (logged template hash into its own bank, the bank's hash of the
template data elsewhere, all-0xff for violations, stop at the first line that reproduces the quoted PCR 10); a test
compares both on real and mutated lists. Unlike :func:`veritee.ima.replay_incremental`, a wrong template hash does
not stop the replay: it is reported and the replay goes on, so every problem of an edited list is found.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from veritee.ima import IMA_PCR, ImaEntry, ImaState, parse_lines
from veritee.ima.entry import digest_ng_field, name_ng_field, ng_template_data
from veritee.tpm.alg import HashAlg

__all__ = ["KnownLine", "ReplayOutcome", "build_known_lines", "replay_lines"]

#: Digest algorithm names a policy digest is assumed to carry in an ``ima-ng`` line, by digest size.
_NAMES_BY_SIZE = {20: "sha1", 32: "sha256", 48: "sha384", 64: "sha512"}
_HASHERS: dict[HashAlg, Callable[[bytes], Any]] = {
    HashAlg.SHA1: hashlib.sha1,
    HashAlg.SHA256: hashlib.sha256,
    HashAlg.SHA384: hashlib.sha384,
    HashAlg.SHA512: hashlib.sha512,
}


class KnownLine(NamedTuple):
    """A line the policy approves: its logged template hash, the SHA-256 template digest, the template data."""

    template_hash: bytes
    sha256: bytes
    template_data: bytes


def build_known_lines(digests_by_path: Mapping[str, Iterable[bytes]], log_hash: HashAlg) -> dict[str, KnownLine]:
    """Every ``ima-ng`` line a runtime policy's ``digests`` approve outright, keyed by its exact text (lower-case
    hex, PCR 10), for template hashes of ``log_hash`` (the policy's ``log_hash_alg``)."""
    table: dict[str, KnownLine] = {}
    for path, digests in digests_by_path.items():
        try:
            name_field = name_ng_field(path.encode("utf-8", "surrogateescape"))
        except UnicodeEncodeError:
            continue
        if b"\x00" in name_field[:-1]:
            continue
        for digest in digests:
            alg = _NAMES_BY_SIZE.get(len(digest))
            if alg is None:
                continue
            data = ng_template_data(digest_ng_field(alg, digest), name_field)
            template_hash = log_hash.digest(data)
            line = f"{IMA_PCR} {template_hash.hex()} ima-ng {alg}:{digest.hex()} {path}"
            table[line] = KnownLine(template_hash, hashlib.sha256(data).digest(), data)
    return table


@dataclass(slots=True)
class ReplayOutcome:
    """What a replay found: the entries that need a full check, bad template hashes, where the quote matched."""

    unknown: list[ImaEntry] = field(default_factory=list)
    bad_template_hashes: list[tuple[ImaEntry, bytes]] = field(default_factory=list)
    consumed: int = 0
    matched: bool = False
    state: ImaState | None = None


def _digest_fn(alg: HashAlg) -> Callable[[bytes], Any]:
    fast = _HASHERS.get(alg)
    if fast is not None:
        return fast

    def slow(data: bytes) -> Any:
        h = alg.new()
        h.update(data)
        return h

    return slow


def replay_lines(
    lines: list[str],
    state: ImaState,
    known: Mapping[str, KnownLine],
    expect: Mapping[HashAlg, bytes] | None,
    *,
    log_alg: HashAlg = HashAlg.SHA1,
) -> ReplayOutcome:
    """Replay ``lines`` (list lines ``state.next_line`` on) from ``state``. Raises ImaLogError for a malformed line.

    With ``expect``, stop after the first line (or before any) that leaves PCR 10 equal to it in every bank it
    names; ``matched`` tells whether that happened. ``state`` of the outcome is the state after the consumed lines.
    ``log_alg`` is the template hash algorithm ``known`` was built with (the runtime policy's ``log_hash_alg``).
    """
    banks = state.banks
    fns = [_digest_fn(alg) for alg in banks]
    ffs = [b"\xff" * alg.digest_size for alg in banks]
    target = None if expect is None else [expect.get(alg) for alg in banks]
    values: dict[int, list[bytes]] = {pcr: [v[alg] for alg in banks] for pcr, v in state.other_pcrs.items()}
    current = [state.pcrs[alg] for alg in banks]
    values[IMA_PCR] = current
    outcome = ReplayOutcome()

    # The banks whose PCR 10 value is compared with the quote, as (index, quoted value).
    checks = [] if target is None else [(i, want) for i, want in enumerate(target) if want is not None]

    def matches() -> bool:
        return bool(checks) and all(current[i] == want for i, want in checks)

    if matches():
        outcome.matched = True
        outcome.state = state
        return outcome
    # How each bank gets a known line's digest: 0 = the logged template hash, 1 = the SHA-256 digest, 2 = compute.
    sources = [0 if alg is log_alg else 1 if alg is HashAlg.SHA256 else 2 for alg in banks]
    get = known.get
    number = state.next_line
    count = 0
    if banks == (HashAlg.SHA256,):
        # The common case (a SHA-256 quote): one extend per known line, one comparison. (Copying a fresh hash
        # object costs less than creating one; the lines are looked up by map, outside the interpreter loop.)
        fresh = hashlib.sha256().copy
        want = checks[0][1] if checks else None
        value = current[0]
        for entry_known in list(map(get, lines)):
            if entry_known is None:
                break
            extend = fresh()
            extend.update(value + entry_known[1])  # KnownLine.sha256
            value = extend.digest()
            count += 1
            if value == want:
                outcome.matched = True
                break
        current[0] = value
        number += count
        lines = [] if outcome.matched else lines[count:]
    for line in lines:
        entry_known = get(line)
        if entry_known is not None:
            for i, fn in enumerate(fns):
                source = sources[i]
                digest = (
                    entry_known.template_hash
                    if source == 0
                    else entry_known.sha256
                    if source == 1
                    else fn(entry_known.template_data).digest()
                )
                current[i] = fn(current[i] + digest).digest()
            pcr = IMA_PCR
        else:
            entry = parse_lines([line], start_line=number)[0]
            outcome.unknown.append(entry)
            pcr = entry.pcr
            bank_values = values.get(pcr)
            if bank_values is None:
                bank_values = values[pcr] = [bytes(alg.digest_size) for alg in banks]
            if entry.is_violation:
                for i, fn in enumerate(fns):
                    bank_values[i] = fn(bank_values[i] + ffs[i]).digest()
            else:
                entry_log_alg = entry.template_hash_alg
                computed = entry_log_alg.digest(entry.template_data)
                if computed != entry.template_hash:
                    outcome.bad_template_hashes.append((entry, computed))
                for i, fn in enumerate(fns):
                    alg = banks[i]
                    digest = entry.template_hash if alg is entry_log_alg else fn(entry.template_data).digest()
                    bank_values[i] = fn(bank_values[i] + digest).digest()
        number += 1
        count += 1
        if pcr == IMA_PCR and checks and matches():
            outcome.matched = True
            break
    outcome.consumed = count
    outcome.state = ImaState(
        state.next_line + count,
        dict(zip(banks, values.pop(IMA_PCR), strict=True)),
        {pcr: dict(zip(banks, v, strict=True)) for pcr, v in sorted(values.items())},
    )
    return outcome
