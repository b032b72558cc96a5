"""Boot facts read off a firmware event log, for measured-boot policies (Keylime-style reference states and more).

:func:`summarize` decodes what a boot policy looks at: Secure Boot state and databases (PK, KEK, db, dbx), MOK
lists, the authorities that verified each image, EFI applications and drivers in load order with their device
paths, grub commands and kernel command lines, files grub measured (kernel, initrd), S-CRTM and firmware blobs,
separators per PCR, and every event digest per PCR and bank. Nothing here is trusted by itself: replay the log
against quoted PCRs first, and do not use facts from events listed in ``data_mismatches``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from veritee.eventlog.datacheck import DataCheck, check_event_data, describe_check
from veritee.eventlog.decoders import (
    EfiVariable,
    ImageLoad,
    IplEvent,
    IplKind,
    Separator,
    decode,
    decode_image_load,
    decode_ipl,
    decode_variable,
)
from veritee.eventlog.devicepath import HARDWARE, MEDIA
from veritee.eventlog.model import Event, EventLog, EventLogError, EventType, LogFormat
from veritee.eventlog.replay import EBS_INVOCATION, startup_locality
from veritee.eventlog.uefi import LoadOption, SignatureEntry
from veritee.tpm.alg import HashAlg

ET = EventType
CALLING_EFI_APPLICATION = b"Calling EFI Application from Boot Option"
_APP_TYPES = (ET.EV_EFI_BOOT_SERVICES_APPLICATION,)
_DRIVER_TYPES = (ET.EV_EFI_BOOT_SERVICES_DRIVER, ET.EV_EFI_RUNTIME_SERVICES_DRIVER)
_KEY_DATABASES = ("PK", "KEK", "db", "dbx")


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


@dataclass(frozen=True)
class BootSummary:
    """Boot facts of one event log (see the module docstring for how much to trust them)."""

    format: LogFormat
    algorithms: tuple[HashAlg, ...]
    secure_boot: bool | None
    pk: tuple[SignatureEntry, ...] | None
    kek: tuple[SignatureEntry, ...] | None
    db: tuple[SignatureEntry, ...] | None
    dbx: tuple[SignatureEntry, ...] | None
    variables: dict[str, EfiVariable]
    mok_lists: dict[str, Measurement]
    authorities: tuple[Authority, ...]
    sbat_level: str | None
    efi_apps: tuple[EfiImage, ...]
    efi_drivers: tuple[EfiImage, ...]
    grub_commands: tuple[str, ...]
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
    boot_order: tuple[int, ...] | None
    boot_options: dict[int, LoadOption]
    event_digests: dict[HashAlg, dict[int, tuple[bytes, ...]]]
    data_mismatches: tuple[int, ...]
    notes: tuple[str, ...] = field(default=())

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
    for event in log.events:
        state.visit(event)
    return state.result()


class _State:
    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.notes: list[str] = []
        self.secure_boot: bool | None = None
        self.databases: dict[str, tuple[SignatureEntry, ...]] = {}
        self.variables: dict[str, EfiVariable] = {}
        self.mok_lists: dict[str, Measurement] = {}
        self.authorities: list[Authority] = []
        self.sbat_level: str | None = None
        self.apps: list[EfiImage] = []
        self.drivers: list[EfiImage] = []
        self.grub_commands: list[str] = []
        self.kernel_cmdlines: list[str] = []
        self.ipl_files: list[Measurement] = []
        self.scrtm_versions: list[Measurement] = []
        self.scrtm_contents: list[Measurement] = []
        self.blobs: list[Measurement] = []
        self.separators: dict[int, list[int]] = {}
        self.after_pcr7: list[int] = []
        self.calling = False
        self.ebs = False
        self.dma_disabled = False
        self.debug_mode = False
        self.boot_order: tuple[int, ...] | None = None
        self.boot_options: dict[int, LoadOption] = {}
        self.digests: dict[HashAlg, dict[int, list[bytes]]] = {alg: {} for alg in log.algorithms}
        self.mismatches: list[int] = []

    def visit(self, event: Event) -> None:
        typ = event.type
        if typ == ET.EV_NO_ACTION:
            return
        for alg, digest in event.digests.items():
            self.digests.setdefault(alg, {}).setdefault(event.pcr, []).append(digest)
        check = check_event_data(event)
        if check is DataCheck.MISMATCH:
            self.mismatches.append(event.index)
            self.notes.append(describe_check(event, check))
        elif check is DataCheck.MATCH_WITH_QUIRK:
            self.notes.append(describe_check(event, check))
        if event.pcr == 7 and 7 in self.separators:
            self.after_pcr7.append(event.index)
        try:
            self._dispatch(event)
        except EventLogError as exc:
            self.notes.append(f"event {event.index} ({event.type_name}, PCR{event.pcr}) not decoded: {exc}")

    def _dispatch(self, event: Event) -> None:
        typ = event.type
        if typ == ET.EV_SEPARATOR:
            decoded = decode(event)
            if isinstance(decoded, Separator):
                self._separator(event, decoded)
        elif typ == ET.EV_EFI_VARIABLE_DRIVER_CONFIG:
            self._driver_config(event, decode_variable(ET.EV_EFI_VARIABLE_DRIVER_CONFIG, event.data, event.data_offset))
        elif typ in (ET.EV_EFI_VARIABLE_BOOT, ET.EV_EFI_VARIABLE_BOOT2):
            self._boot_variable(event, decode_variable(EventType(typ), event.data, event.data_offset))
        elif typ == ET.EV_EFI_VARIABLE_AUTHORITY:
            self._authority(event, decode_variable(ET.EV_EFI_VARIABLE_AUTHORITY, event.data, event.data_offset))
        elif typ in _APP_TYPES or typ in _DRIVER_TYPES:
            self._image(event, decode_image_load(event.data, event.data_offset))
        elif typ == ET.EV_IPL:
            self._ipl(event, decode_ipl(event.pcr, event.data))
        elif typ == ET.EV_EFI_ACTION:
            self._action(event)
        elif typ == ET.EV_S_CRTM_VERSION:
            self.scrtm_versions.append(_measurement(event, decode(event).describe()))
        elif typ == ET.EV_S_CRTM_CONTENTS:
            self.scrtm_contents.append(_measurement(event, decode(event).describe()))
        elif typ in (ET.EV_EFI_PLATFORM_FIRMWARE_BLOB, ET.EV_EFI_PLATFORM_FIRMWARE_BLOB2):
            self.blobs.append(_measurement(event, decode(event).describe()))

    def _separator(self, event: Event, separator: Separator) -> None:
        self.separators.setdefault(event.pcr, []).append(separator.value)
        if separator.is_error:
            self.notes.append(f"PCR{event.pcr} separator carries the error value 1 (event {event.index})")

    def _driver_config(self, event: Event, var: EfiVariable) -> None:
        self.notes.extend(f"event {event.index} {var.name}: {note}" for note in var.notes)
        if event.pcr == 7 and 7 in self.separators:
            self.notes.append(f"variable {var.name} measured after the PCR7 separator (event {event.index})")
            return
        if var.name in self.variables:
            self.notes.append(f"variable {var.name} measured again (event {event.index}); the first value is kept")
            return
        self.variables[var.name] = var
        if event.pcr != 7:
            return
        if var.name == "SecureBoot" and var.secure_boot is not None:
            self.secure_boot = var.secure_boot
        elif var.name in _KEY_DATABASES and var.signatures is not None:
            self.databases[var.name] = var.signatures

    def _boot_variable(self, event: Event, var: EfiVariable) -> None:
        self.notes.extend(f"event {event.index} {var.name}: {note}" for note in var.notes)
        if var.boot_order is not None:
            self.boot_order = var.boot_order
        elif var.load_option is not None:
            self.boot_options[int(var.name[4:], 16)] = var.load_option

    def _authority(self, event: Event, var: EfiVariable) -> None:
        self.notes.extend(f"event {event.index} {var.name}: {note}" for note in var.notes)
        if var.name == "SbatLevel":
            self.sbat_level = var.text
        entry = var.signatures[0] if var.signatures else None
        after = 7 in self.separators
        self.authorities.append(Authority(event.index, var.name, var.vendor_guid, entry, after, var.text))

    def _image(self, event: Event, image: ImageLoad) -> None:
        path = image.device_path
        pci = False
        option_rom = False
        for node in path.nodes:
            if node.type == HARDWARE and node.subtype == 0x01:
                pci = True
            elif pci and node.type == MEDIA and node.subtype == 0x08:
                option_rom = True
        record = EfiImage(
            index=event.index,
            pcr=event.pcr,
            event_type=EventType(event.type),
            digests=dict(event.digests),
            device_path=path.text,
            file_path=path.file_path,
            firmware_volume=path.has(MEDIA, 0x06) or path.has(MEDIA, 0x07),
            pci_option_rom=option_rom,
            before_boot_manager=not self.calling,
        )
        (self.apps if event.type in _APP_TYPES else self.drivers).append(record)

    def _ipl(self, event: Event, ipl: IplEvent) -> None:
        if ipl.kind is IplKind.GRUB_COMMAND:
            self.grub_commands.append(ipl.text)
        elif ipl.kind is IplKind.KERNEL_CMDLINE:
            self.kernel_cmdlines.append(ipl.text)
        elif ipl.kind is IplKind.FILE:
            self.ipl_files.append(_measurement(event, ipl.text))
        elif ipl.kind is IplKind.SHIM_VARIABLE:
            self.mok_lists.setdefault(ipl.text, _measurement(event, ipl.text))

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
        uefi = any(int(event.type) >= ET.EV_EFI_EVENT_BASE for event in log.events)
        if uefi and not self.ebs:
            self.notes.append("ExitBootServices events missing: no 'Exit Boot Services Invocation' in PCR5")
        if uefi and self.secure_boot is None:
            self.notes.append("no SecureBoot variable measured in PCR7: Secure Boot state unknown")
        locality, _ = startup_locality(log)
        return BootSummary(
            format=log.format,
            algorithms=log.algorithms,
            secure_boot=self.secure_boot,
            pk=self.databases.get("PK"),
            kek=self.databases.get("KEK"),
            db=self.databases.get("db"),
            dbx=self.databases.get("dbx"),
            variables=self.variables,
            mok_lists=self.mok_lists,
            authorities=tuple(self.authorities),
            sbat_level=self.sbat_level,
            efi_apps=tuple(self.apps),
            efi_drivers=tuple(self.drivers),
            grub_commands=tuple(self.grub_commands),
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
            boot_order=self.boot_order,
            boot_options=self.boot_options,
            event_digests={
                alg: {pcr: tuple(values) for pcr, values in sorted(by_pcr.items())}
                for alg, by_pcr in self.digests.items()
            },
            data_mismatches=tuple(self.mismatches),
            notes=tuple(self.notes),
        )


def _measurement(event: Event, description: str) -> Measurement:
    return Measurement(event.index, event.pcr, dict(event.digests), description)
