"""Does an event's data hash to its logged digests? (Only meaningful for types whose digest covers the data.)

Replaying a log proves the digests, not the data beside them: a log can pair an honest digest with forged data.
Facts read from event data (Secure Boot state, kernel command line, separators) are only as good as this check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from enum import Enum

from veritee.eventlog.model import Event, EventType
from veritee.tpm.alg import HashAlg

ET = EventType

#: Types whose digest is, by the PC Client PFP, the hash of exactly the event data.
DATA_HASHED = frozenset(
    {
        ET.EV_SEPARATOR,
        ET.EV_ACTION,
        ET.EV_EFI_ACTION,
        ET.EV_COMPACT_HASH,
        ET.EV_EFI_GPT_EVENT,
        ET.EV_EFI_GPT_EVENT2,
        ET.EV_EFI_VARIABLE_DRIVER_CONFIG,
        ET.EV_EFI_VARIABLE_BOOT2,
        ET.EV_EFI_VARIABLE_AUTHORITY,
    }
)
_GRUB_PREFIXES = (b"grub_cmd: ", b"kernel_cmdline: ", b"module_cmdline: ", b"grub_kernel_cmdline ", b"grub_cmd ")
_GRUB_INITIALS = frozenset(prefix[:1] for prefix in _GRUB_PREFIXES)


class DataCheck(Enum):
    MATCH = "match"
    MATCH_WITH_QUIRK = "match-with-quirk"  # a known firmware/boot-loader deviation, see describe_check()
    MISMATCH = "mismatch"
    NOT_APPLICABLE = "not-applicable"  # the digest covers something else (an image, a file, a variable's value)


#: hashlib's named constructors: the same digests as ``HashAlg.digest``, at half the cost for short data.
_FAST: dict[HashAlg, Callable[[bytes], hashlib._Hash]] = {
    HashAlg.SHA1: hashlib.sha1,
    HashAlg.SHA256: hashlib.sha256,
    HashAlg.SHA384: hashlib.sha384,
    HashAlg.SHA512: hashlib.sha512,
}


def _matches(event: Event, data: bytes) -> bool:
    if not event.digests:
        return False
    fast = _FAST.get
    for alg, digest in event.digests.items():
        hasher = fast(alg)
        if hasher is not None:
            if hasher(data).digest() != digest:
                return False
            continue
        try:
            if alg.digest(data) != digest:
                return False
        except ValueError:  # an algorithm hashlib lacks here (UnsupportedAlgorithmError is a ValueError)
            return False
    return True


# Enum members read once: looking one up on its class costs more than a comparison.
_MATCH = DataCheck.MATCH
_QUIRK = DataCheck.MATCH_WITH_QUIRK
_MISMATCH = DataCheck.MISMATCH
_NOT_APPLICABLE = DataCheck.NOT_APPLICABLE
_AUTHORITY = ET.EV_EFI_VARIABLE_AUTHORITY
_IPL = ET.EV_IPL


def check_event_data(event: Event) -> DataCheck:
    """Compare the hash of ``event.data`` (or what the boot loader actually hashed) with every logged digest."""
    typ = event.type
    data = event.data
    if typ in DATA_HASHED:
        if _matches(event, data):
            return _MATCH
        # Shim before rhboot/shim@8a27a48 logged one stray byte after the certificate of authority events.
        if typ == _AUTHORITY and data and _matches(event, data[:-1]):
            return _QUIRK
        return _MISMATCH
    if typ == _IPL and event.pcr == 8:
        return _check_pcr8_ipl(event)
    return _NOT_APPLICABLE


def _check_pcr8_ipl(event: Event) -> DataCheck:
    data = event.data
    if data[:1] in _GRUB_INITIALS:
        for prefix in _GRUB_PREFIXES:
            if data.startswith(prefix):
                body = data[len(prefix) :]
                # grub hashes the string without its prefix, with or without the terminating NUL (older versions).
                if body.endswith(b"\x00") and _matches(event, body[:-1]):
                    return _MATCH
                return _MATCH if _matches(event, body) else _MISMATCH
    if len(data) >= 2 and data[1] == 0 and data[0] != 0:
        # systemd-boot hashes the UTF-16 command line including its NUL character; the logged data may carry a
        # stray trailing byte.
        text = data[: len(data) - len(data) % 2]
        while text.endswith(b"\x00\x00"):
            text = text[:-2]
        for candidate in (text + b"\x00\x00", text):
            if _matches(event, candidate):
                return _MATCH
        return _MISMATCH
    return _NOT_APPLICABLE


def describe_check(event: Event, check: DataCheck) -> str:
    if check is DataCheck.MATCH_WITH_QUIRK:
        return (
            f"event {event.index} ({event.type_name}): data hashes to its digest only without its last byte "
            "(old shim logged a stray byte after the certificate)"
        )
    return f"event {event.index} ({event.type_name}, PCR{event.pcr}): data {check.value} with its logged digest"
