"""PCR replay of a parsed firmware event log, with the workarounds real firmware needs (each one noted in words).

* Every bank the log carries is replayed; PCRs start at zero, except PCR0, which starts at ``00..00 || locality``
  when an EV_NO_ACTION "StartupLocality" event precedes the first PCR0 measurement (TPM2_Startup from locality 3,
  or 4 for an H-CRTM). EV_NO_ACTION events are never extended.
* PCRs a log never extends keep their reset value: zeros, but all-ones for the DRTM PCRs 17-22 (PC Client PTP).
* Firmware (or a kernel that hands the log over before ExitBootServices) may omit the two EV_EFI_ACTION events of
  ExitBootServices from PCR5. :func:`replay` notes it; given the quoted PCR values it also tries the three variants
  go-attestation knows (Invocation+Success, Invocation+Failure, Invocation+Failure+Success) and applies the one
  that makes PCR5 match.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from veritee.errors import DigestMismatchError, UnsupportedAlgorithmError
from veritee.eventlog.model import Event, EventLog, EventType
from veritee.tpm.alg import HashAlg

PCR_COUNT = 24
DRTM_PCRS = range(17, 23)
STARTUP_LOCALITY_SIGNATURE = b"StartupLocality\x00"
EBS_INVOCATION = b"Exit Boot Services Invocation"
EBS_SUCCESS = b"Exit Boot Services Returned with Success"
EBS_FAILURE = b"Exit Boot Services Returned with Failure"
#: The ExitBootServices event sequences firmware is known to have measured but left out of the log.
EBS_VARIANTS: tuple[tuple[bytes, ...], ...] = (
    (EBS_INVOCATION, EBS_SUCCESS),
    (EBS_INVOCATION, EBS_FAILURE),
    (EBS_INVOCATION, EBS_FAILURE, EBS_SUCCESS),
)

_NO_ACTION = EventType.EV_NO_ACTION
_EFI_ACTION = EventType.EV_EFI_ACTION
_EFI_BASE = EventType.EV_EFI_EVENT_BASE
_FAST: dict[HashAlg, Callable[[bytes], hashlib._Hash]] = {
    HashAlg.SHA1: hashlib.sha1,
    HashAlg.SHA256: hashlib.sha256,
    HashAlg.SHA384: hashlib.sha384,
    HashAlg.SHA512: hashlib.sha512,
}

PcrBanks = Mapping[HashAlg, Mapping[int, bytes]]


@dataclass(frozen=True)
class Replay:
    """Replayed PCR values per bank (only PCRs the log extends), and every workaround applied, in words."""

    pcrs: dict[HashAlg, dict[int, bytes]]
    notes: list[str]
    startup_locality: int | None = None
    extended_events: int = 0
    injected: tuple[bytes, ...] = field(default=())

    def value(self, alg: HashAlg, pcr: int) -> bytes:
        """The replayed value of ``pcr``, or its reset value when the log never extends it."""
        replayed = self.pcrs.get(alg, {}).get(pcr)
        return replayed if replayed is not None else reset_value(alg, pcr)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form: ``{"pcrs": {"sha256": {"0": "<hex>", ...}}, "notes": [...]}``."""
        return {
            "pcrs": {
                alg.label: {str(pcr): value.hex() for pcr, value in sorted(values.items())}
                for alg, values in self.pcrs.items()
            },
            "notes": list(self.notes),
        }


def reset_value(alg: HashAlg, pcr: int) -> bytes:
    """The value of a PCR nobody extended: all ones for the DRTM PCRs 17-22, zeros otherwise."""
    return (b"\xff" if pcr in DRTM_PCRS else b"\x00") * alg.digest_size


def initial_value(alg: HashAlg, pcr: int, locality: int | None) -> bytes:
    """The value the first extend of ``pcr`` starts from (PCR0 carries the StartupLocality in its last byte)."""
    if pcr == 0 and locality:
        return b"\x00" * (alg.digest_size - 1) + bytes([locality])
    return b"\x00" * alg.digest_size


def startup_locality(log: EventLog) -> tuple[int | None, Event | None]:
    """The locality of the StartupLocality event that precedes every PCR0 measurement, and that event."""
    for event in log.events:
        if event.pcr != 0:
            continue
        if event.type != _NO_ACTION:
            return None, None  # a PCR0 measurement came first: a later StartupLocality event cannot apply
        data = event.data
        if len(data) == 17 and data[:16] == STARTUP_LOCALITY_SIGNATURE:
            return data[16], event
    return None, None


def replay(log: EventLog, *, reference: PcrBanks | None = None, banks: Collection[HashAlg] | None = None) -> Replay:
    """Replay every bank of ``log``. With ``reference`` (quoted PCR values) the ExitBootServices workaround is
    tried for PCR5 when the plain replay does not match it; the result still has to be compared by the caller
    (:func:`verify_pcrs` does both).

    ``banks`` limits the hashing to those banks (a verifier needs only the banks its quote covers); ``pcrs`` then
    has only those, while ``notes`` still describe every bank the log carries, as a full replay's do.
    """
    notes = list(log.notes)
    locality, locality_event = startup_locality(log)
    if locality_event is not None:
        if locality:
            notes.append(
                f"PCR0 initialised for StartupLocality {locality} "
                f"(EV_NO_ACTION event {locality_event.index} at offset {locality_event.offset})"
            )
        else:
            notes.append(f"StartupLocality 0 event {locality_event.index}: PCR0 starts at zero")
    hashed: list[tuple[HashAlg, Callable[[bytes], hashlib._Hash] | None]] = []
    for alg in log.algorithms:
        ctor = _constructor(alg)
        if ctor is None:
            notes.append(f"bank {alg.label} not replayed: the {alg.name} hash is not available here")
            continue
        hashed.append((alg, ctor if banks is None or alg in banks else None))
    pcrs, extended, uefi, ebs = _extend_all(log.events, hashed, locality, notes)
    replayed = [(alg, ctor) for alg, ctor in hashed if ctor is not None]
    injected: tuple[bytes, ...] = ()
    if uefi and not ebs:
        if reference is not None and _pcr5_mismatch(pcrs, reference):
            injected = _try_ebs_variants(pcrs, replayed, reference)
        if injected:
            names = " + ".join(repr(text.decode()) for text in injected)
            notes.append(
                f"ExitBootServices events missing: appended {names} to PCR5 in every bank, "
                "which makes PCR5 match the quoted value"
            )
        else:
            notes.append(
                "ExitBootServices events missing: the log has no 'Exit Boot Services Invocation' EV_EFI_ACTION "
                "in PCR5, so PCR4/PCR5 measurements after the boot loader are not bounded by the log"
            )
    return Replay(pcrs=pcrs, notes=notes, startup_locality=locality, extended_events=extended, injected=injected)


def verify_pcrs(log: EventLog, quoted: PcrBanks) -> Replay:
    """Replay ``log`` and check it against quoted PCR values; returns the replay or raises DigestMismatchError.

    Every quoted PCR the log extends must match exactly. Quoted PCRs the log never extends are not evidence about
    the log (PCR10 belongs to IMA, PCR17+ to DRTM) and are left to the caller.
    """
    result = replay(log, reference=quoted)
    problems: list[str] = []
    extended = {event.pcr for event in log.events if event.type != _NO_ACTION}
    for alg, values in quoted.items():
        bank = result.pcrs.get(alg)
        for pcr, value in sorted(values.items()):
            if pcr not in extended:
                continue
            if bank is None or pcr not in bank:
                problems.append(f"PCR{pcr} {alg.label}: the log has no {alg.label} digests to replay it")
            elif bank[pcr] != bytes(value):
                problems.append(f"PCR{pcr} {alg.label}: log replays to {bank[pcr].hex()}, quoted {bytes(value).hex()}")
    if problems:
        raise DigestMismatchError("event log does not replay to the quoted PCRs: " + "; ".join(problems))
    return result


def _constructor(alg: HashAlg) -> Callable[[bytes], hashlib._Hash] | None:
    fast = _FAST.get(alg)
    if fast is not None:
        return fast
    try:
        alg.new()
    except UnsupportedAlgorithmError:
        return None

    def build(data: bytes) -> hashlib._Hash:
        h = alg.new()
        h.update(data)
        return h

    return build


def _extend_all(
    events: Iterable[Event],
    banks: list[tuple[HashAlg, Callable[[bytes], hashlib._Hash] | None]],
    locality: int | None,
    notes: list[str],
) -> tuple[dict[HashAlg, dict[int, bytes]], int, bool, bool]:
    """Extend every measured event into each bank with a hash function (a bank without one is only checked for
    missing digests); also report whether the log has UEFI events and the ExitBootServices event."""
    measured: list[tuple[int, dict[HashAlg, bytes], Event]] = []
    uefi = ebs = False
    for event in events:
        typ = event.type
        if typ == _NO_ACTION:
            continue
        pcr = event.pcr
        if typ >= _EFI_BASE:
            uefi = True
            if typ == _EFI_ACTION and pcr == 5 and event.data == EBS_INVOCATION:
                ebs = True
        if pcr >= PCR_COUNT:
            notes.append(f"event {event.index} at offset {event.offset} names PCR {pcr}, which does not exist: skipped")
            continue
        measured.append((pcr, event.digests, event))
    touched = sorted({pcr for pcr, _, _ in measured})
    values: dict[HashAlg, dict[int, bytes]] = {}
    for alg, ctor in banks:
        # Copying an empty hash object costs less than creating one.
        fresh = ctor(b"").copy if ctor is not None else None
        bank = [bytes(alg.digest_size)] * PCR_COUNT
        bank[0] = initial_value(alg, 0, locality)
        broken: set[int] = set()
        for pcr, digests, event in measured:
            digest = digests.get(alg)
            if digest is None:
                if pcr not in broken:
                    notes.append(
                        f"event {event.index} (PCR{pcr}) has no {alg.label} digest: PCR{pcr} left out of the "
                        f"{alg.label} bank"
                    )
                broken.add(pcr)
                continue
            if fresh is not None:
                extend = fresh()
                extend.update(bank[pcr] + digest)
                bank[pcr] = extend.digest()
        if ctor is not None:
            values[alg] = {pcr: bank[pcr] for pcr in touched if pcr not in broken}
    return values, len(measured), uefi, ebs


def _pcr5_mismatch(pcrs: Mapping[HashAlg, Mapping[int, bytes]], reference: PcrBanks) -> bool:
    return any(5 in pcrs.get(alg, {}) and 5 in ref and pcrs[alg][5] != bytes(ref[5]) for alg, ref in reference.items())


def _try_ebs_variants(
    pcrs: dict[HashAlg, dict[int, bytes]],
    banks: list[tuple[HashAlg, Callable[[bytes], hashlib._Hash]]],
    reference: PcrBanks,
) -> tuple[bytes, ...]:
    for variant in EBS_VARIANTS:
        candidate: dict[HashAlg, bytes] = {}
        for alg, ctor in banks:
            value = pcrs[alg].get(5)
            if value is None:
                continue
            for text in variant:
                value = ctor(value + ctor(text).digest()).digest()
            candidate[alg] = value
        compared = [alg for alg in candidate if 5 in reference.get(alg, {})]
        if compared and all(candidate[alg] == bytes(reference[alg][5]) for alg in compared):
            for alg, value in candidate.items():
                pcrs[alg][5] = value
            return variant
    return ()
