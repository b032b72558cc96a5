"""Writing TCG PC Client crypto-agile event logs: for simulated nodes, demonstrations and tests.

A :class:`LogBuilder` produces the exact bytes firmware would write: a SHA-1-format "Spec ID Event03" header naming
the banks, then TCG_PCR_EVENT2 records whose digests are the real hashes of each event's data (or digests given by
the caller, for events that measure something other than their data, such as an EFI application's Authenticode
hash). :func:`typical_boot_log` writes a plausible UEFI Secure Boot log with a given kernel command line.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from veritee.eventlog.model import EventType
from veritee.tpm.alg import HashAlg

__all__ = ["LogBuilder", "efi_variable_data", "spec_id_event03", "typical_boot_log"]

EFI_GLOBAL_VARIABLE = uuid.UUID("8be4df61-93ca-11d2-aa0d-00e098032b8c")


def spec_id_event03(banks: Sequence[HashAlg]) -> bytes:
    """The data of the Spec ID Event03 (TCG_EfiSpecIDEvent) for ``banks``."""
    body = b"Spec ID Event03\x00" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, len(banks))
    body += b"".join(struct.pack("<HH", alg.value, alg.digest_size) for alg in banks)
    return body + b"\x00"  # no vendor info


def efi_variable_data(guid: uuid.UUID, name: str, value: bytes) -> bytes:
    """UEFI_VARIABLE_DATA: VariableName GUID, UnicodeNameLength, VariableDataLength, UnicodeName, VariableData."""
    return guid.bytes_le + struct.pack("<QQ", len(name), len(value)) + name.encode("utf-16-le") + value


@dataclass
class LogBuilder:
    """Builds a crypto-agile log event by event."""

    banks: Sequence[HashAlg] = (HashAlg.SHA1, HashAlg.SHA256)
    _records: list[bytes] = field(default_factory=list)

    def add(
        self, pcr: int, event_type: int, data: bytes, *, digests: Mapping[HashAlg, bytes] | None = None
    ) -> LogBuilder:
        """Append an event; its digests are the hash of ``data`` per bank unless ``digests`` names them."""
        chosen = {alg: (digests[alg] if digests is not None else alg.digest(data)) for alg in self.banks}
        record = struct.pack("<III", pcr, event_type, len(chosen))
        record += b"".join(struct.pack("<H", alg.value) + digest for alg, digest in chosen.items())
        self._records.append(record + struct.pack("<I", len(data)) + data)
        return self

    def build(self) -> bytes:
        spec = spec_id_event03(self.banks)
        header = struct.pack("<II20sI", 0, int(EventType.EV_NO_ACTION), bytes(20), len(spec)) + spec
        return header + b"".join(self._records)


def typical_boot_log(
    *,
    kernel_cmdline: str,
    firmware: bytes = b"veritee demo firmware 1.0",
    secure_boot: bool = True,
    banks: Sequence[HashAlg] = (HashAlg.SHA1, HashAlg.SHA256),
) -> bytes:
    """A UEFI boot: S-CRTM version, firmware blob, Secure Boot state, separators, a grub kernel command line."""
    b = LogBuilder(banks)
    b.add(0, EventType.EV_S_CRTM_VERSION, "1.0".encode("utf-16-le") + b"\x00\x00")
    b.add(0, EventType.EV_EFI_PLATFORM_FIRMWARE_BLOB, struct.pack("<QQ", 0xFFC00000, 0x400000),
          digests={alg: alg.digest(firmware) for alg in banks})  # fmt: skip
    b.add(7, EventType.EV_EFI_VARIABLE_DRIVER_CONFIG,
          efi_variable_data(EFI_GLOBAL_VARIABLE, "SecureBoot", b"\x01" if secure_boot else b"\x00"))  # fmt: skip
    for pcr in range(8):
        b.add(pcr, EventType.EV_SEPARATOR, b"\x00\x00\x00\x00")
    cmdline = kernel_cmdline.encode()  # grub hashes the command line without its "kernel_cmdline: " prefix and NUL
    b.add(8, EventType.EV_IPL, b"kernel_cmdline: " + cmdline + b"\x00", digests={a: a.digest(cmdline) for a in banks})
    b.add(5, EventType.EV_EFI_ACTION, b"Exit Boot Services Invocation")
    b.add(5, EventType.EV_EFI_ACTION, b"Exit Boot Services Returned with Success")
    return b.build()
