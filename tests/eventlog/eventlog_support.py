"""Shared helpers for the event log tests: the real logs under ../shared/tpm and a builder for synthetic logs."""

from __future__ import annotations

import json
import struct
import uuid
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from helpers import shared_path
from veritee.eventlog import EventLog, parse
from veritee.tpm.alg import HashAlg

SHA1, SHA256, SHA384 = HashAlg.SHA1, HashAlg.SHA256, HashAlg.SHA384

#: Expectation name (in expected/*.json) -> log file under eventlogs/.
EXPECTED_LOGS = {
    "Rhel8GCE": "gotpmtools_rhel8-gce-secureboot.bin",
    "Ubuntu2404AmdSevSnp": "gotpmtools_ubuntu2404-gce-sevsnp-nosb.bin",
    "GlinuxNoSecureBootLaptop": "gotpmtools_glinux-laptop-nosb.bin",
    "ArchLinuxWorkstation": "gotpmtools_arch-linux-workstation-sdboot.bin",
    "Debian10GCE": "gotpmtools_debian10-gce-legacy-sha1.bin",
    "GdcHost": "gotpmtools_gdc-host-baremetal.bin",
    "sb_cert_eventlog": "goattestation_sb_cert_eventlog.bin",
    "option_rom_eventlog": "goattestation_option_rom_eventlog.bin",
}
KEYLIME_SB = "keylime_binary_bios_measurements-secureboot.bin"
KEYLIME_1153 = "keylime_mb_log_issue1153.bin"


def log_path(name: str) -> Path:
    path: Path = shared_path("tpm", "eventlogs", name)
    return path


@cache
def log_bytes(name: str) -> bytes:
    return log_path(name).read_bytes()


@cache
def load(name: str) -> EventLog:
    return parse(log_bytes(name))


@cache
def expectations() -> dict[str, dict[str, object]]:
    merged: dict[str, dict[str, object]] = {}
    for file in ("gotpmtools_expected_pcrs.json", "goattestation_expected_pcrs.json"):
        merged.update(json.loads(shared_path("tpm", "expected", file).read_text()))
    return merged


def expected_pcrs(name: str) -> dict[HashAlg, dict[int, bytes]]:
    pcrs = expectations()[name]["pcrs"]
    assert isinstance(pcrs, dict)
    return {
        HashAlg.from_label(bank): {int(pcr): bytes.fromhex(value) for pcr, value in values.items()}
        for bank, values in pcrs.items()
    }


def read_pcrs_yaml(path: Path) -> dict[HashAlg, dict[int, bytes]]:
    """tpm2-tools' ``pcrs.yaml`` (``sha256: {0: 0x..}``), read with PyYAML."""
    import yaml

    raw = yaml.safe_load(path.read_text())
    return {
        HashAlg.from_label(bank): {
            int(pcr): value.to_bytes(HashAlg.from_label(bank).digest_size, "big") for pcr, value in values.items()
        }
        for bank, values in raw.items()
    }


# --- synthetic logs ---------------------------------------------------------------------------------------------
def spec_id_data(algs: list[tuple[int, int]], *, vendor: bytes = b"") -> bytes:
    body = b"Spec ID Event03\x00" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, len(algs))
    body += b"".join(struct.pack("<HH", alg_id, size) for alg_id, size in algs)
    return body + bytes([len(vendor)]) + vendor


def pcr_event(pcr: int, typ: int, digest: bytes, data: bytes) -> bytes:
    """A TCG_PCR_EVENT (SHA-1 layout): the first event of any log and every event of a legacy log."""
    return struct.pack("<II20sI", pcr, typ, digest, len(data)) + data


def pcr_event2(pcr: int, typ: int, digests: list[tuple[int, bytes]], data: bytes) -> bytes:
    body = struct.pack("<III", pcr, typ, len(digests))
    body += b"".join(struct.pack("<H", alg_id) + digest for alg_id, digest in digests)
    return body + struct.pack("<I", len(data)) + data


@dataclass
class LogBuilder:
    """Builds a crypto-agile log whose digests are the real hashes of each event's data (or given ones)."""

    banks: list[HashAlg] = field(default_factory=lambda: [SHA1, SHA256])
    extra_algs: list[tuple[int, int]] = field(default_factory=list)  # undeclared-by-veritee algorithms
    chunks: list[bytes] = field(default_factory=list)

    def header(self) -> bytes:
        algs = [(alg.value, alg.digest_size) for alg in self.banks] + self.extra_algs
        return pcr_event(0, 3, bytes(20), spec_id_data(algs))

    def add(self, pcr: int, typ: int, data: bytes, *, digests: dict[HashAlg, bytes] | None = None) -> LogBuilder:
        chosen = digests if digests is not None else {alg: alg.digest(data) for alg in self.banks}
        entries = [(alg.value, digest) for alg, digest in chosen.items()]
        entries += [(alg_id, b"\xaa" * size) for alg_id, size in self.extra_algs]
        self.chunks.append(pcr_event2(pcr, typ, entries, data))
        return self

    def build(self) -> bytes:
        return self.header() + b"".join(self.chunks)


def variable_data(guid: uuid.UUID, name: str, value: bytes) -> bytes:
    encoded = name.encode("utf-16-le")
    return guid.bytes_le + struct.pack("<QQ", len(name), len(value)) + encoded + value


def extend(alg: HashAlg, pcr: bytes, digest: bytes) -> bytes:
    return alg.digest(pcr + digest)
