"""EFI device paths (UEFI 2.x chapter 10) decoded to nodes and to their text form.

The text follows the UEFI device-path-to-text conventions (``PciRoot(0x0)/Pci(0x1,0x0)/HD(1,GPT,<guid>,0x800,
0x12c000)/\\EFI\\redhat\\shimx64.efi``), except firmware-volume nodes, which read ``FvVol(<guid>)/FvFile(<guid>)``
as efivar (and so tpm2_eventlog and Keylime policies) print them. Unknown nodes print as ``Path(type,subtype,hex)``.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from veritee.eventlog.model import EventLogError

HARDWARE, ACPI, MESSAGING, MEDIA, BBS, END = 0x01, 0x02, 0x03, 0x04, 0x05, 0x7F
_MAX_NODES = 256


@dataclass(frozen=True)
class DevicePathNode:
    type: int
    subtype: int
    data: bytes
    text: str


@dataclass(frozen=True)
class DevicePath:
    nodes: tuple[DevicePathNode, ...]
    text: str

    @property
    def file_path(self) -> str | None:
        """The last file-path node (``\\EFI\\BOOT\\BOOTX64.EFI``), if any."""
        for node in reversed(self.nodes):
            if node.type == MEDIA and node.subtype == 0x04:
                return node.text
        return None

    def has(self, node_type: int, subtype: int) -> bool:
        return any(node.type == node_type and node.subtype == subtype for node in self.nodes)


def parse_device_path(data: bytes, base: int = 0) -> DevicePath:
    """Decode an EFI_DEVICE_PATH_PROTOCOL sequence (possibly several instances); stops at End Entire."""
    nodes: list[DevicePathNode] = []
    parts: list[str] = []
    pos = 0
    while pos < len(data):
        if len(nodes) >= _MAX_NODES:
            raise EventLogError("device path has too many nodes", offset=base + pos)
        if pos + 4 > len(data):
            raise EventLogError("truncated device path node header", offset=base + pos)
        node_type, subtype, length = struct.unpack_from("<BBH", data, pos)
        if length < 4 or pos + length > len(data):
            raise EventLogError(f"device path node length {length} does not fit", offset=base + pos + 2)
        body = data[pos + 4 : pos + length]
        pos += length
        if node_type == END:
            if subtype == 0x01:  # end of this instance, another follows
                parts.append(",")
                continue
            break
        text = _node_text(node_type, subtype, body)
        nodes.append(DevicePathNode(node_type, subtype, body, text))
        if parts and parts[-1] != ",":
            parts.append("/")
        parts.append(text)
    return DevicePath(tuple(nodes), "".join(parts))


def _guid(data: bytes, at: int = 0) -> str:
    return str(uuid.UUID(bytes_le=data[at : at + 16]))


def _u(data: bytes, fmt: str, at: int = 0) -> tuple[int, ...]:
    return struct.unpack_from("<" + fmt, data, at)


def _generic(node_type: int, subtype: int, body: bytes) -> str:
    return f"Path({node_type},{subtype},{body.hex()})"


def _eisa(hid: int) -> str:
    if hid & 0xFFFF != 0x41D0:
        return f"0x{hid:x}"
    return f"PNP{hid >> 16:04X}"


def _acpi(subtype: int, body: bytes) -> str | None:
    if subtype == 0x01 and len(body) >= 8:
        hid, uid = _u(body, "II")
        if hid == 0x0A0341D0:
            return f"PciRoot(0x{uid:x})"
        if hid == 0x0A0841D0:
            return f"PcieRoot(0x{uid:x})"
        return f"Acpi({_eisa(hid)},0x{uid:x})"
    if subtype == 0x03 and len(body) >= 4:
        return "AcpiAdr(" + ",".join(f"0x{adr:x}" for adr in _u(body, f"{len(body) // 4}I")) + ")"
    return None


def _hardware(subtype: int, body: bytes) -> str | None:
    if subtype == 0x01 and len(body) >= 2:
        return f"Pci(0x{body[1]:x},0x{body[0]:x})"
    if subtype == 0x03 and len(body) >= 20:
        mem_type, start, end = _u(body, "IQQ")
        return f"MemoryMapped(0x{mem_type:x},0x{start:x},0x{end:x})"
    if subtype == 0x04 and len(body) >= 16:
        extra = body[16:]
        return f"VenHw({_guid(body)}{',' + extra.hex() if extra else ''})"
    if subtype == 0x05 and len(body) >= 4:
        return f"Ctrl(0x{_u(body, 'I')[0]:x})"
    return None


def _messaging(subtype: int, body: bytes) -> str | None:
    if subtype == 0x01 and len(body) >= 4:
        primary, slave, lun = _u(body, "BBH")
        return f"Ata({'Secondary' if primary else 'Primary'},{'Slave' if slave else 'Master'},0x{lun:x})"
    if subtype == 0x02 and len(body) >= 4:
        return "Scsi(0x{:x},0x{:x})".format(*_u(body, "HH"))
    if subtype == 0x05 and len(body) >= 2:
        return f"USB(0x{body[0]:x},0x{body[1]:x})"
    if subtype == 0x0A and len(body) >= 16:
        extra = body[16:]
        return f"VenMsg({_guid(body)}{',' + extra.hex() if extra else ''})"
    if subtype == 0x0B and len(body) >= 33:
        return f"MAC({body[:6].hex()},0x{body[32]:x})"
    if subtype == 0x0C and len(body) >= 8:
        return f"IPv4({'.'.join(str(b) for b in body[4:8])})"
    if subtype == 0x12 and len(body) >= 6:
        return "Sata(0x{:x},0x{:x},0x{:x})".format(*_u(body, "HHH"))
    if subtype == 0x17 and len(body) >= 12:
        nsid = _u(body, "I")[0]
        return f"NVMe(0x{nsid:x},{'-'.join(f'{b:02X}' for b in body[4:12])})"
    if subtype == 0x18:
        return f"Uri({body.decode('ascii', 'replace')})"
    if subtype == 0x1D and len(body) >= 1:
        return f"eMMC(0x{body[0]:x})"
    if subtype == 0x1A and len(body) >= 1:
        return f"SD(0x{body[0]:x})"
    return None


def _media(subtype: int, body: bytes) -> str | None:
    if subtype == 0x01 and len(body) >= 38:
        number, start, size = _u(body, "IQQ")
        fmt, sig_type = body[36], body[37]
        if sig_type == 0x02:
            signature = _guid(body, 20)
        elif sig_type == 0x01:
            signature = f"0x{_u(body, 'I', 20)[0]:x}"
        else:
            signature = "0"
        kind = {0x01: "MBR", 0x02: "GPT"}.get(fmt, f"0x{fmt:x}")
        return f"HD({number},{kind},{signature},0x{start:x},0x{size:x})"
    if subtype == 0x02 and len(body) >= 20:
        return "CDROM(0x{:x},0x{:x},0x{:x})".format(*_u(body, "IQQ"))
    if subtype == 0x03 and len(body) >= 16:
        extra = body[16:]
        return f"VenMedia({_guid(body)}{',' + extra.hex() if extra else ''})"
    if subtype == 0x04:
        from veritee.eventlog.uefi import utf16

        return utf16(body)
    if subtype == 0x05 and len(body) >= 16:
        return f"Media({_guid(body)})"
    if subtype == 0x06 and len(body) >= 16:
        return f"FvFile({_guid(body)})"
    if subtype == 0x07 and len(body) >= 16:
        return f"FvVol({_guid(body)})"
    if subtype == 0x08 and len(body) >= 20:
        return "Offset(0x{:x},0x{:x})".format(*_u(body, "QQ", 4))
    if subtype == 0x09 and len(body) >= 34:
        start, end = _u(body, "QQ")
        return f"RamDisk(0x{start:x},0x{end:x},{_guid(body, 16)},0x{_u(body, 'H', 32)[0]:x})"
    return None


def _bbs(subtype: int, body: bytes) -> str | None:
    if subtype == 0x01 and len(body) >= 4:
        device_type, flags = _u(body, "HH")
        description = body[4:].split(b"\x00", 1)[0].decode("ascii", "replace")
        return f"BBS(0x{device_type:x},{description},0x{flags:x})"
    return None


_DECODERS: dict[int, Callable[[int, bytes], str | None]] = {
    HARDWARE: _hardware,
    ACPI: _acpi,
    MESSAGING: _messaging,
    MEDIA: _media,
    BBS: _bbs,
}


def _node_text(node_type: int, subtype: int, body: bytes) -> str:
    decoder = _DECODERS.get(node_type)
    text = decoder(subtype, body) if decoder is not None else None
    return text if text is not None else _generic(node_type, subtype, body)
