"""Runtime appraisal: the IMA measurement list against the quoted PCR 10 and against the runtime policy.

The list is replayed incrementally from the previous round's :class:`ImaState` up to the first line that
reproduces the quoted PCR 10 (lines measured after the quote wait for the next round), then every replayed entry is
checked against the compiled runtime policy with Keylime's semantics. A list whose lines were edited is still
appraised in full: every line whose template hash is wrong gets its own finding, and so does every policy violation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from veritee.appraisal.findings import Finding, finding
from veritee.appraisal.ima_replay import replay_lines
from veritee.appraisal.policy.compiled import CompiledRuntimePolicy
from veritee.errors import DecodeError, KeyFormatError, UnsupportedAlgorithmError, ValidationError, VerificationError
from veritee.ima import IMA_PCR, ImaEntry, ImaLogError, ImaState, ImaTemplate, split_lines, verify_entry
from veritee.tpm.alg import HashAlg

__all__ = ["appraise_ima", "boot_aggregates", "check_entries", "looks_like_key"]

PcrBanks = Mapping[HashAlg, Mapping[int, bytes]]

_BOOT_AGGREGATE = "boot_aggregate"
_IMA_BUF = ImaTemplate.IMA_BUF
_IMA_SIG = ImaTemplate.IMA_SIG


def boot_aggregates(quoted: PcrBanks) -> dict[str, frozenset[bytes]]:
    """The boot_aggregate values the quoted PCRs imply, per hash name: H(PCR0..7) and, as newer kernels compute it
    for non-SHA-1 banks, H(PCR0..9)."""
    result: dict[str, frozenset[bytes]] = {}
    for alg, bank in quoted.items():
        values = set()
        for last in (7, 9):
            if all(i in bank for i in range(last + 1)):
                values.add(alg.digest(b"".join(bank[i] for i in range(last + 1))))
        if values:
            result[alg.label] = frozenset(values)
    return result


def _start_state(start: ImaState | None, quoted10: dict[HashAlg, bytes]) -> ImaState:
    if start is not None:
        return start
    return ImaState.initial(tuple(quoted10) or (HashAlg.SHA256,))


def appraise_ima(
    text: str,
    start: ImaState | None,
    quoted: PcrBanks,
    policy: CompiledRuntimePolicy | None,
    findings: list[Finding],
) -> ImaState | None:
    """Replay and appraise ``text`` (the list from ``start.next_line`` on); append findings; return the next state.

    The returned state is the one after the last line bound to the quote, or ``start`` unchanged when the list
    could not be bound to the quote or was altered (so the next round appraises those lines again). None when the
    list or the start state is unusable.
    """
    quoted10 = {alg: bytes(bank[IMA_PCR]) for alg, bank in quoted.items() if IMA_PCR in bank}
    if not quoted10:
        findings.append(
            finding(
                "quote.pcr_missing",
                f"PCR {IMA_PCR} is not in the quote: the IMA log is not bound to the TPM",
                pcr=IMA_PCR,
            )
        )
    try:
        state = _start_state(start, quoted10)
    except ValidationError as exc:
        findings.append(finding("evidence.malformed", f"IMA start state is unusable: {exc}", part="ima_start"))
        return None
    expect = {alg: value for alg, value in quoted10.items() if alg in state.pcrs}
    if quoted10 and not expect:
        findings.append(
            finding(
                "evidence.malformed",
                f"IMA start state has banks {[a.label for a in state.pcrs]}, none of them quoted",
                part="ima_start",
            )
        )
        return None
    known = policy.known_lines if policy is not None else {}
    log_alg = policy.log_hash_alg if policy is not None else HashAlg.SHA1
    try:
        outcome = replay_lines(split_lines(text), state, known, expect or None, log_alg=log_alg)
    except ImaLogError as exc:
        findings.append(finding("evidence.malformed", f"IMA log: {exc}", part="ima_log", line=exc.line))
        return None
    for entry, computed in outcome.bad_template_hashes:
        log_hash = entry.template_hash_alg
        findings.append(
            finding(
                "ima.template_hash_mismatch",
                f"IMA log line {entry.line} ({entry.path}): template hash {entry.template_hash.hex()} is not "
                f"{log_hash.label} of the line's template data ({computed.hex()}): the line was altered",
                line=entry.line,
                path=entry.path,
                logged=entry.template_hash.hex(),
                computed=computed.hex(),
            )
        )
    if expect and not outcome.matched:
        findings.append(_pcr_mismatch(expect, outcome.consumed, state.next_line))
    if policy is not None:
        check_entries(outcome.unknown, policy, quoted, findings)
    if outcome.bad_template_hashes or (expect and not outcome.matched):
        return state
    return outcome.state


def _pcr_mismatch(expect: Mapping[HashAlg, bytes], count: int, first: int) -> Finding:
    quoted = ", ".join(f"{alg.label} {value.hex()}" for alg, value in expect.items())
    return finding(
        "ima.pcr_mismatch",
        f"no prefix of the {count} IMA log lines from line {first} replays to the quoted PCR {IMA_PCR} ({quoted})",
        pcr=IMA_PCR,
        first_line=first,
        lines=count,
        quoted={alg.label: value.hex() for alg, value in expect.items()},
    )


def check_entries(
    entries: Sequence[ImaEntry],
    policy: CompiledRuntimePolicy,
    quoted: PcrBanks,
    findings: list[Finding],
) -> None:
    """Every entry against the runtime policy (Keylime semantics); one finding per violating entry.

    An ima-sig entry whose signature verifies with a key of the policy passes; when it does not (or the key is
    unknown) the entry must still be allowed by its digest, else it gets an ``ima.signature_invalid`` finding. With no
    keys in the policy, signatures are ignored and digests decide (as in Keylime).
    """
    digests = policy.digests
    is_excluded = policy.is_excluded
    expected_size = policy.log_hash_alg.digest_size
    hash_alg_reported = False
    aggregates: dict[str, frozenset[bytes]] | None = None
    for entry in entries:
        line, pcr, template_hash, template, _, file_digest, path = entry[:7]
        if len(template_hash) != expected_size and not hash_alg_reported:
            hash_alg_reported = True
            findings.append(
                finding(
                    "ima.log_hash_alg_mismatch",
                    f"IMA log line {line} has a {len(template_hash)}-byte template hash; the runtime policy declares "
                    f"{policy.log_hash_alg.label} ({expected_size} bytes)",
                    line=line,
                )
            )
        if pcr != IMA_PCR:
            findings.append(
                finding("ima.wrong_pcr", f"IMA log line {line} ({path}) is measured into PCR {pcr}", line=line, pcr=pcr)
            )
        if not any(template_hash):
            findings.append(
                finding(
                    "ima.tomtou",
                    f"IMA log line {line} ({path}) is a measurement violation (time-of-measure/time-of-use or "
                    "open writers): its content was not measured",
                    line=line,
                    path=path,
                )
            )
            continue
        if template is _IMA_BUF:
            _check_buffer(entry, policy, findings)
            continue
        allowed = digests.get(path)
        if allowed is not None and file_digest in allowed:
            continue
        if path == _BOOT_AGGREGATE:
            if aggregates is None:
                aggregates = boot_aggregates(quoted)
            if file_digest in aggregates.get(entry.file_digest_alg, frozenset()):
                continue
            if is_excluded(path):
                continue
            findings.append(
                finding(
                    "ima.boot_aggregate_mismatch",
                    f"IMA log line {line}: boot_aggregate {entry.file_digest_alg}:{file_digest.hex()} matches neither "
                    "the runtime policy nor the quoted PCRs 0-7/0-9",
                    line=line,
                    digest=file_digest.hex(),
                )
            )
            continue
        if is_excluded(path):
            continue
        if template is _IMA_SIG and entry.signature is not None and policy.keys:
            why = _signature_problem(entry, policy)
            if why is None:
                continue
            findings.append(
                finding(
                    "ima.signature_invalid",
                    f"{why}; the runtime policy does not allow {entry.file_digest_alg}:{file_digest.hex()} for "
                    f"{path} either",
                    line=line,
                    path=path,
                    digest=f"{entry.file_digest_alg}:{file_digest.hex()}",
                )
            )
            continue
        if allowed is None:
            findings.append(
                finding(
                    "ima.not_in_policy",
                    f"IMA log line {line}: {path} is not in the runtime policy "
                    f"({entry.file_digest_alg}:{file_digest.hex()})",
                    line=line,
                    path=path,
                    digest=f"{entry.file_digest_alg}:{file_digest.hex()}",
                )
            )
        else:
            findings.append(
                finding(
                    "ima.digest_mismatch",
                    f"IMA log line {line}: {path} has digest {entry.file_digest_alg}:{file_digest.hex()}, "
                    f"not one of the {len(allowed)} the runtime policy allows",
                    line=line,
                    path=path,
                    digest=f"{entry.file_digest_alg}:{file_digest.hex()}",
                    allowed=sorted(value.hex() for value in allowed),
                )
            )


def _signature_problem(entry: ImaEntry, policy: CompiledRuntimePolicy) -> str | None:
    """None when the entry's signature verifies with a key of the policy, else why it does not."""
    try:
        verify_entry(entry, policy.keys)
    except (VerificationError, DecodeError, UnsupportedAlgorithmError, KeyFormatError) as exc:
        return str(exc)
    return None


def _check_buffer(entry: ImaEntry, policy: CompiledRuntimePolicy, findings: list[Finding]) -> None:
    """ima-buf: a key measured onto a keyring is checked against ``keyrings`` (unless the keyring is ignored);
    any other buffer against ``buffers``."""
    name, digest = entry.path, entry.file_digest
    if entry.buffer is not None and looks_like_key(entry.buffer):
        if policy.ignore_all_keyrings or name in policy.ignored_keyrings:
            return
        table, what = policy.keyrings, "keyring"
    else:
        table, what = policy.buffers, "buffer"
    allowed = table.get(name)
    if allowed is not None and digest in allowed:
        return
    if policy.is_excluded(name):
        return
    reason = "is not in the runtime policy" if allowed is None else "has a digest the runtime policy does not allow"
    findings.append(
        finding(
            "ima.buffer_not_allowed",
            f"IMA log line {entry.line}: {what} measurement {name!r} ({entry.file_digest_alg}:{digest.hex()}) {reason}",
            line=entry.line,
            name=name,
            kind=what,
            digest=f"{entry.file_digest_alg}:{digest.hex()}",
        )
    )


def looks_like_key(buffer: bytes) -> bool:
    """Whether an ima-buf buffer is a public key or certificate (what the kernel measures when a key is added to a
    keyring), in DER or PEM, as Keylime decides it."""
    loaders: tuple[Callable[[bytes], object], ...]
    if buffer.startswith(b"-----BEGIN "):
        loaders = (x509.load_pem_x509_certificate, serialization.load_pem_public_key)
    elif buffer[:1] == b"\x30":
        loaders = (x509.load_der_x509_certificate, serialization.load_der_public_key)
    else:
        return False
    for load in loaders:
        try:
            load(buffer)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
        return True
    return False
