"""Boot facts read off a firmware event log, for measured-boot policies (Keylime-style reference states and more).

:func:`summarize` decodes what a boot policy looks at: Secure Boot state and databases (PK, KEK, db, dbx), MOK
lists, the authorities that verified each image, EFI applications and drivers in load order with their device
paths, grub commands and kernel command lines, files grub measured (kernel, initrd), S-CRTM and firmware blobs,
separators per PCR, and every event digest per PCR and bank. Nothing here is trusted by itself: replay the log
against quoted PCRs first, and do not use facts from events listed in ``data_mismatches``.

One pass over the log checks every event's data and reads what a boot policy compares; what is costly to decode
and rarely compared (signature database entries, device paths, boot options, authorities, grub commands) is decoded
on first access, with the same result (see :class:`BootSummary`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

from veritee.eventlog.datacheck import DataCheck, check_event_data, describe_check
from veritee.eventlog.decoders import (
    EfiVariable,
    IplKind,
    classify_ipl,
    decode,
    decode_image_load,
    decode_variable,
    separator_value,
    variable_facts,
)
from veritee.eventlog.devicepath import HARDWARE, MEDIA
from veritee.eventlog.model import Event, EventLog, EventLogError, EventType, LogFormat
from veritee.eventlog.replay import EBS_INVOCATION, startup_locality
from veritee.eventlog.uefi import LoadOption, SignatureEntry, SignatureLists
from veritee.tpm.alg import HashAlg

ET = EventType
CALLING_EFI_APPLICATION = b"Calling EFI Application from Boot Option"
_APP_TYPES = (ET.EV_EFI_BOOT_SERVICES_APPLICATION,)
_DRIVER_TYPES = (ET.EV_EFI_BOOT_SERVICES_DRIVER, ET.EV_EFI_RUNTIME_SERVICES_DRIVER)
# Enum members read once (looking one up on its class costs more than the comparison).
_NO_ACTION = ET.EV_NO_ACTION
_EFI_BASE = ET.EV_EFI_EVENT_BASE
_DRIVER_CONFIG = ET.EV_EFI_VARIABLE_DRIVER_CONFIG
_AUTHORITY = ET.EV_EFI_VARIABLE_AUTHORITY
_MISMATCH = DataCheck.MISMATCH
_QUIRK = DataCheck.MATCH_WITH_QUIRK
_GRUB_COMMAND = IplKind.GRUB_COMMAND
_KERNEL_CMDLINE = IplKind.KERNEL_CMDLINE
_FILE = IplKind.FILE
_SHIM_VARIABLE = IplKind.SHIM_VARIABLE
_KEY_DATABASES = ("PK", "KEK", "db", "dbx")
_IMAGE_LOAD_HEADER = 32  # UEFI_IMAGE_LOAD_EVENT before its device path: the only part whose absence is an error


@dataclass(frozen=True)
class Measurement:
    """One measured event: where it is, its digests, and a short description."""

    index: int
    pcr: int
    digests: dict[HashAlg, bytes]
    description: str = ""

    def digest(self, alg: HashAlg = HashAlg.SHA256) -> bytes | None:
        return self.digests.get(alg)


@dataclass(frozen=True)
class EfiImage:
    """An EFI application or driver load: digests (Authenticode), device path, and where in the boot it happened."""

    index: int
    pcr: int
    event_type: EventType
    digests: dict[HashAlg, bytes]
    device_path: str
    file_path: str | None
    firmware_volume: bool  # loaded from the firmware itself (FvVol/FvFile), e.g. the UEFI setup UI
    pci_option_rom: bool  # a PCI device path followed by a relative offset range: a driver from an option ROM
    before_boot_manager: bool  # before "Calling EFI Application from Boot Option"

    def digest(self, alg: HashAlg = HashAlg.SHA256) -> bytes | None:
        return self.digests.get(alg)


@dataclass(frozen=True)
class Authority:
    """EV_EFI_VARIABLE_AUTHORITY: the db/shim/MOK entry that authorised an image (or shim's SbatLevel)."""

    index: int
    variable: str
    vendor_guid: uuid.UUID
    entry: SignatureEntry | None
    after_separator: bool
    text: str | None = None


class KeptVariable(NamedTuple):
    """A variable of the summary's ``variables``: its event, and its signature lists when it is a database."""

    name: str
    event: Event
    signature_lists: SignatureLists | None


@dataclass(frozen=True)
class _Late:
    """What the boot variables and authority events say, decoded on first use."""

    authorities: tuple[Authority, ...]
    sbat_level: str | None
    boot_order: tuple[int, ...] | None
    boot_options: dict[int, LoadOption]
    notes: tuple[tuple[str, ...], ...]  # per late event, in order


@dataclass(frozen=True)
class BootSummary:
    """Boot facts of one event log (see the module docstring for how much to trust them).

    :func:`summarize` reads what boot policies check (Secure Boot, data mismatches, the structure of the signature
    databases, grub's measurements, firmware, separators); the rest is decoded on first access (the entries of
    ``pk``/``kek``/``db``/``dbx``, ``variables``, ``efi_apps``/``efi_drivers`` and their device paths,
    ``authorities``, ``boot_order``/``boot_options``, ``event_digests``, ``notes``), so an appraisal that only
    compares does not pay for hundreds of dbx entries. :meth:`signature_lists` gives a database undecoded.
    """

    format: LogFormat
    algorithms: tuple[HashAlg, ...]
    secure_boot: bool | None
    mok_lists: dict[str, Measurement]
    kernel_cmdlines: tuple[str, ...]
    ipl_files: tuple[Measurement, ...]
    scrtm_versions: tuple[Measurement, ...]
    scrtm_contents: tuple[Measurement, ...]
    firmware_blobs: tuple[Measurement, ...]
    separators: dict[int, tuple[int, ...]]
    events_after_pcr7_separator: tuple[int, ...]
    calling_efi_application: bool
    exit_boot_services: bool
    startup_locality: int | None
    dma_protection_disabled: bool
    uefi_debug_mode: bool
    data_mismatches: tuple[int, ...]
    # What the lazily decoded facts are built from:
    log: EventLog = field(repr=False)
    kept_variables: tuple[KeptVariable, ...] = field(repr=False)
    databases: dict[str, SignatureLists] = field(repr=False)
    image_events: tuple[tuple[Event, bool], ...] = field(repr=False)  # (event, before the boot manager)
    late_events: tuple[tuple[Event, bool], ...] = field(repr=False)  # (event, after the PCR 7 separator)
    grub_events: tuple[Event, ...] = field(repr=False)  # EV_IPL events that may be grub commands
    note_parts: tuple[str | int, ...] = field(repr=False)  # an int stands for the notes of that late event

    def signature_lists(self, name: str) -> SignatureLists | None:
        """The undecoded signature lists of ``"PK"``, ``"KEK"``, ``"db"`` or ``"dbx"`` as measured in PCR 7 before
        the separator; None when not measured (or not decodable, see ``notes``)."""
        return self.databases.get(name)

    def _entries(self, name: str) -> tuple[SignatureEntry, ...] | None:
        lists = self.databases.get(name)
        return None if lists is None else lists.entries()

    @cached_property
    def pk(self) -> tuple[SignatureEntry, ...] | None:
        return self._entries("PK")

    @cached_property
    def kek(self) -> tuple[SignatureEntry, ...] | None:
        return self._entries("KEK")

    @cached_property
    def db(self) -> tuple[SignatureEntry, ...] | None:
        return self._entries("db")

    @cached_property
    def dbx(self) -> tuple[SignatureEntry, ...] | None:
        return self._entries("dbx")

    @cached_property
    def variables(self) -> dict[str, EfiVariable]:
        """The EFI variables measured (first measurement of each name, before the PCR 7 separator), decoded."""
        return {
            kept.name: decode_variable(ET.EV_EFI_VARIABLE_DRIVER_CONFIG, kept.event.data, kept.event.data_offset)
            for kept in self.kept_variables
        }

    @cached_property
    def efi_apps(self) -> tuple[EfiImage, ...]:
        return tuple(_efi_image(event, before) for event, before in self.image_events if event.type in _APP_TYPES)

    @cached_property
    def efi_drivers(self) -> tuple[EfiImage, ...]:
        return tuple(_efi_image(event, before) for event, before in self.image_events if event.type not in _APP_TYPES)

    def application_digests(self, pcr: int, alg: HashAlg = HashAlg.SHA256) -> list[bytes | None]:
        """The ``alg`` digest (None when not logged) of each EFI application loaded into ``pcr``, in load order:
        ``[app.digest(alg) for app in efi_apps if app.pcr == pcr]`` without decoding their device paths."""
        return [
            event.digests.get(alg) for event, _ in self.image_events if event.pcr == pcr and event.type in _APP_TYPES
        ]

    @cached_property
    def _late(self) -> _Late:
        return _decode_late(self.late_events)

    @property
    def authorities(self) -> tuple[Authority, ...]:
        return self._late.authorities

    @property
    def sbat_level(self) -> str | None:
        return self._late.sbat_level

    @property
    def boot_order(self) -> tuple[int, ...] | None:
        return self._late.boot_order

    @property
    def boot_options(self) -> dict[int, LoadOption]:
        return self._late.boot_options

    @cached_property
    def grub_commands(self) -> tuple[str, ...]:
        """The commands grub ran (PCR 8), in order."""
        commands: list[str] = []
        for event in self.grub_events:
            kind, text = classify_ipl(event.pcr, event.data)[:2]
            if kind is _GRUB_COMMAND:
                commands.append(text)
        return tuple(commands)

    @cached_property
    def event_digests(self) -> dict[HashAlg, dict[int, tuple[bytes, ...]]]:
        """Every event digest per bank and PCR, in log order (EV_NO_ACTION events are not measured)."""
        digests: dict[HashAlg, dict[int, list[bytes]]] = {alg: {} for alg in self.log.algorithms}
        for event in self.log.events:
            if event.type == _NO_ACTION:
                continue
            for alg, digest in event.digests.items():
                digests.setdefault(alg, {}).setdefault(event.pcr, []).append(digest)
        return {alg: {pcr: tuple(values) for pcr, values in sorted(by_pcr.items())} for alg, by_pcr in digests.items()}

    @cached_property
    def notes(self) -> tuple[str, ...]:
        """What could not be decoded or looked wrong, in log order."""
        if not self.late_events:
            return tuple(part for part in self.note_parts if isinstance(part, str))
        late = self._late.notes
        notes: list[str] = []
        for part in self.note_parts:
            if isinstance(part, str):
                notes.append(part)
            else:
                notes.extend(late[part])
        return tuple(notes)

    @property
    def sha256_by_pcr(self) -> dict[int, tuple[bytes, ...]]:
        """The SHA-256 digest of every measured event, per PCR, in log order (empty for a SHA-1-only log)."""
        return self.event_digests.get(HashAlg.SHA256, {})

    @property
    def post_separator_authorities(self) -> tuple[Authority, ...]:
        return tuple(auth for auth in self.authorities if auth.after_separator and auth.entry is not None)

    def authority_entries(self, variable: str) -> tuple[SignatureEntry, ...]:
        """Entries of the authority events of one variable (``"vendor_db"``, ``"db"``, ``"Shim"``, ``"MokList"``)."""
        return tuple(a.entry for a in self.authorities if a.variable == variable and a.entry is not None)

    @property
    def boot_chain(self) -> tuple[EfiImage, ...]:
        """EFI applications loaded from disk (firmware-volume apps such as the setup UI left out), in order."""
        return tuple(app for app in self.efi_apps if not app.firmware_volume)

    def ipl_file(self, *needles: str) -> Measurement | None:
        """The first file grub measured (PCR9) whose path contains one of ``needles`` ("initrd", "vmlinuz")."""
        for measured in self.ipl_files:
            if any(needle in measured.description for needle in needles):
                return measured
        return None


def summarize(log: EventLog) -> BootSummary:
    """Extract boot facts from ``log``; events that cannot be decoded are skipped and named in ``notes``."""
    state = _State(log)
    visit = state.visit
    for event in log.events:
        visit(event)
    return state.result()


def _efi_image(event: Event, before_boot_manager: bool) -> EfiImage:
    """The EfiImage of an image-load event whose fixed header is there (so decoding it cannot fail)."""
    path = decode_image_load(event.data, event.data_offset).device_path
    pci = False
    option_rom = False
    for node in path.nodes:
        if node.type == HARDWARE and node.subtype == 0x01:
            pci = True
        elif pci and node.type == MEDIA and node.subtype == 0x08:
            option_rom = True
    return EfiImage(
        index=event.index,
        pcr=event.pcr,
        event_type=EventType(event.type),
        digests=dict(event.digests),
        device_path=path.text,
        file_path=path.file_path,
        firmware_volume=path.has(MEDIA, 0x06) or path.has(MEDIA, 0x07),
        pci_option_rom=option_rom,
        before_boot_manager=before_boot_manager,
    )


def _decode_late(events: tuple[tuple[Event, bool], ...]) -> _Late:
    """Decode the boot variables and authority events, as :func:`summarize` would have in log order."""
    authorities: list[Authority] = []
    sbat_level: str | None = None
    boot_order: tuple[int, ...] | None = None
    boot_options: dict[int, LoadOption] = {}
    notes: list[tuple[str, ...]] = []
    for event, after in events:
        typ = event.type
        try:
            var = decode_variable(EventType(typ), event.data, event.data_offset)
        except EventLogError as exc:
            notes.append((f"event {event.index} ({event.type_name}, PCR{event.pcr}) not decoded: {exc}",))
            continue
        notes.append(tuple(f"event {event.index} {var.name}: {note}" for note in var.notes))
        if typ == _AUTHORITY:
            if var.name == "SbatLevel":
                sbat_level = var.text
            entry = var.signatures[0] if var.signatures else None
            authorities.append(Authority(event.index, var.name, var.vendor_guid, entry, after, var.text))
        elif var.boot_order is not None:
            boot_order = var.boot_order
        elif var.load_option is not None:
            boot_options[int(var.name[4:], 16)] = var.load_option
    return _Late(tuple(authorities), sbat_level, boot_order, boot_options, tuple(notes))


class _State:
    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.notes: list[str | int] = []
        self.secure_boot: bool | None = None
        self.databases: dict[str, SignatureLists] = {}
        self.variables: dict[str, KeptVariable] = {}
        self.mok_lists: dict[str, Measurement] = {}
        self.images: list[tuple[Event, bool]] = []
        self.late: list[tuple[Event, bool]] = []
        self.grub_events: list[Event] = []
        self.kernel_cmdlines: list[str] = []
        self.ipl_files: list[Measurement] = []
        self.scrtm_versions: list[Measurement] = []
        self.scrtm_contents: list[Measurement] = []
        self.blobs: list[Measurement] = []
        self.separators: dict[int, list[int]] = {}
        self.after_pcr7: list[int] = []
        self.uefi = False
        self.calling = False
        self.ebs = False
        self.dma_disabled = False
        self.debug_mode = False
        self.mismatches: list[int] = []

    def visit(self, event: Event) -> None:
        typ = event.type
        if typ == _NO_ACTION:
            return
        if typ >= _EFI_BASE:
            self.uefi = True
        check = check_event_data(event)
        if check is _MISMATCH:
            self.mismatches.append(event.index)
            self.notes.append(describe_check(event, check))
        elif check is _QUIRK:
            self.notes.append(describe_check(event, check))
        if event.pcr == 7 and 7 in self.separators:
            self.after_pcr7.append(event.index)
        handler = _HANDLERS.get(typ)
        if handler is None:
            return
        try:
            handler(self, event)
        except EventLogError as exc:
            self.notes.append(f"event {event.index} ({event.type_name}, PCR{event.pcr}) not decoded: {exc}")

    def _separator_event(self, event: Event) -> None:
        value = separator_value(event.data, event.data_offset)
        self.separators.setdefault(event.pcr, []).append(value)
        if value == 1:
            self.notes.append(f"PCR{event.pcr} separator carries the error value 1 (event {event.index})")

    def _driver_config_event(self, event: Event) -> None:
        _, name, _, facts = variable_facts(_DRIVER_CONFIG, event.data, event.data_offset)
        notes, secure_boot, _, lists = facts[:4]
        self._driver_config(event, name, notes, secure_boot, lists)

    def _late_event(self, event: Event) -> None:
        self.notes.append(len(self.late))
        self.late.append((event, 7 in self.separators))

    def _image_event(self, event: Event) -> None:
        if len(event.data) < _IMAGE_LOAD_HEADER:
            decode_image_load(event.data, event.data_offset)  # raises the error that names the missing field
        self.images.append((event, not self.calling))

    def _scrtm_version(self, event: Event) -> None:
        self.scrtm_versions.append(_measurement(event, decode(event).describe()))

    def _scrtm_contents(self, event: Event) -> None:
        self.scrtm_contents.append(_measurement(event, decode(event).describe()))

    def _blob(self, event: Event) -> None:
        self.blobs.append(_measurement(event, decode(event).describe()))

    def _driver_config(
        self,
        event: Event,
        name: str,
        notes: tuple[str, ...],
        secure_boot: bool | None,
        lists: SignatureLists | None,
    ) -> None:
        if notes:
            self.notes.extend(f"event {event.index} {name}: {note}" for note in notes)
        if event.pcr == 7 and 7 in self.separators:
            self.notes.append(f"variable {name} measured after the PCR7 separator (event {event.index})")
            return
        if name in self.variables:
            self.notes.append(f"variable {name} measured again (event {event.index}); the first value is kept")
            return
        self.variables[name] = KeptVariable(name, event, lists)
        if event.pcr != 7:
            return
        if name == "SecureBoot" and secure_boot is not None:
            self.secure_boot = secure_boot
        elif name in _KEY_DATABASES and lists is not None:
            self.databases[name] = lists

    def _ipl(self, event: Event) -> None:
        pcr = event.pcr
        data = event.data
        if data[:8] == b"grub_cmd" and pcr != 9 and pcr != 14:
            # A grub command or nothing the summary keeps (not a command line, file or MOK list): read when asked.
            self.grub_events.append(event)
            return
        kind, text = classify_ipl(pcr, data)[:2]
        if kind is _GRUB_COMMAND:
            self.grub_events.append(event)
        elif kind is _KERNEL_CMDLINE:
            self.kernel_cmdlines.append(text)
        elif kind is _FILE:
            self.ipl_files.append(_measurement(event, text))
        elif kind is _SHIM_VARIABLE and text not in self.mok_lists:
            self.mok_lists[text] = _measurement(event, text)

    def _action(self, event: Event) -> None:
        data = event.data
        if data == CALLING_EFI_APPLICATION:
            self.calling = True
        elif data == EBS_INVOCATION:
            self.ebs = True
        elif data == b"DMA Protection Disabled":
            self.dma_disabled = True
        elif data == b"UEFI Debug Mode":
            self.debug_mode = True

    def result(self) -> BootSummary:
        log = self.log
        if self.uefi and not self.ebs:
            self.notes.append("ExitBootServices events missing: no 'Exit Boot Services Invocation' in PCR5")
        if self.uefi and self.secure_boot is None:
            self.notes.append("no SecureBoot variable measured in PCR7: Secure Boot state unknown")
        locality, _ = startup_locality(log)
        return BootSummary(
            format=log.format,
            algorithms=log.algorithms,
            secure_boot=self.secure_boot,
            mok_lists=self.mok_lists,
            kernel_cmdlines=tuple(self.kernel_cmdlines),
            ipl_files=tuple(self.ipl_files),
            scrtm_versions=tuple(self.scrtm_versions),
            scrtm_contents=tuple(self.scrtm_contents),
            firmware_blobs=tuple(self.blobs),
            separators={pcr: tuple(values) for pcr, values in sorted(self.separators.items())},
            events_after_pcr7_separator=tuple(self.after_pcr7),
            calling_efi_application=self.calling,
            exit_boot_services=self.ebs,
            startup_locality=locality,
            dma_protection_disabled=self.dma_disabled,
            uefi_debug_mode=self.debug_mode,
            data_mismatches=tuple(self.mismatches),
            log=log,
            kept_variables=tuple(self.variables.values()),
            databases=self.databases,
            image_events=tuple(self.images),
            late_events=tuple(self.late),
            grub_events=tuple(self.grub_events),
            note_parts=tuple(self.notes),
        )


def _measurement(event: Event, description: str) -> Measurement:
    return Measurement(event.index, event.pcr, dict(event.digests), description)


#: What the walk does per event type (events of other types only count for the data check).
_HANDLERS: dict[int, Callable[[_State, Event], None]] = {
    ET.EV_IPL: _State._ipl,
    ET.EV_SEPARATOR: _State._separator_event,
    ET.EV_EFI_VARIABLE_DRIVER_CONFIG: _State._driver_config_event,
    ET.EV_EFI_VARIABLE_BOOT: _State._late_event,
    ET.EV_EFI_VARIABLE_BOOT2: _State._late_event,
    ET.EV_EFI_VARIABLE_AUTHORITY: _State._late_event,
    ET.EV_EFI_BOOT_SERVICES_APPLICATION: _State._image_event,
    ET.EV_EFI_BOOT_SERVICES_DRIVER: _State._image_event,
    ET.EV_EFI_RUNTIME_SERVICES_DRIVER: _State._image_event,
    ET.EV_EFI_ACTION: _State._action,
    ET.EV_S_CRTM_VERSION: _State._scrtm_version,
    ET.EV_S_CRTM_CONTENTS: _State._scrtm_contents,
    ET.EV_EFI_PLATFORM_FIRMWARE_BLOB: _State._blob,
    ET.EV_EFI_PLATFORM_FIRMWARE_BLOB2: _State._blob,
}
