"""Event data decoders on real logs (every event of every shared log decodes) and on malformed synthetic data."""

from __future__ import annotations

import struct
import uuid

import pytest
from eventlog_support import EXPECTED_LOGS, KEYLIME_1153, KEYLIME_SB, SHA256, load, variable_data

from veritee.eventlog import (
    DataCheck,
    EfiVariable,
    Event,
    EventLogError,
    EventType,
    FirmwareBlob,
    GptData,
    HandoffTables,
    ImageLoad,
    IplEvent,
    IplKind,
    NoActionData,
    RawData,
    Separator,
    SignatureKind,
    SpecIdEvent,
    StartupLocality,
    TaggedEvent,
    Text,
    check_event_data,
    decode,
    parse_device_path,
)
from veritee.eventlog.uefi import EFI_GLOBAL_VARIABLE, EFI_IMAGE_SECURITY_DATABASE, SHIM_LOCK_GUID

ALL_LOGS = sorted(set(EXPECTED_LOGS.values()) | {KEYLIME_SB, KEYLIME_1153})
RHEL8 = EXPECTED_LOGS["Rhel8GCE"]
ARCH = EXPECTED_LOGS["ArchLinuxWorkstation"]
GDC = EXPECTED_LOGS["GdcHost"]
OPTION_ROM = EXPECTED_LOGS["option_rom_eventlog"]
SB_CERT = EXPECTED_LOGS["sb_cert_eventlog"]


def _event(typ: int, data: bytes, pcr: int = 7, offset: int = 1000) -> Event:
    return Event(5, offset - 40, pcr, typ, {SHA256: SHA256.digest(data)}, data, offset)


def _first(name: str, typ: EventType, pcr: int | None = None) -> Event:
    return next(e for e in load(name).events if e.type == typ and (pcr is None or e.pcr == pcr))


@pytest.mark.parametrize("name", ALL_LOGS)
def test_every_event_of_every_log_decodes(name: str) -> None:
    for event in load(name).events:
        decoded = decode(event)
        assert decoded.describe() is not None
        if event.type == EventType.EV_SEPARATOR:
            assert isinstance(decoded, Separator)
        if event.type in (EventType.EV_EFI_VARIABLE_DRIVER_CONFIG, EventType.EV_EFI_VARIABLE_AUTHORITY):
            assert isinstance(decoded, EfiVariable) and decoded.name
        if event.type == EventType.EV_EFI_BOOT_SERVICES_APPLICATION:
            assert isinstance(decoded, ImageLoad)


@pytest.mark.parametrize(
    ("name", "enabled"),
    [
        (RHEL8, True),
        (SB_CERT, True),
        (KEYLIME_SB, True),
        (GDC, False),
        (EXPECTED_LOGS["GlinuxNoSecureBootLaptop"], False),
    ],
)
def test_secure_boot_variable(name: str, enabled: bool) -> None:
    decoded = decode(_first(name, EventType.EV_EFI_VARIABLE_DRIVER_CONFIG, 7))
    assert isinstance(decoded, EfiVariable)
    assert decoded.name == "SecureBoot" and decoded.vendor_guid == EFI_GLOBAL_VARIABLE
    assert decoded.secure_boot is enabled and decoded.data == bytes([enabled])
    assert decoded.notes == ()


def test_zero_length_secure_boot_variable_means_not_enabled() -> None:
    decoded = decode(_first(ARCH, EventType.EV_EFI_VARIABLE_DRIVER_CONFIG, 7))
    assert isinstance(decoded, EfiVariable) and decoded.name == "SecureBoot" and decoded.data == b""
    assert decoded.secure_boot is False
    assert decoded.notes == ("zero-length SecureBoot variable: Secure Boot not enabled",)
    assert decoded.describe().endswith("Secure Boot not enabled")


def test_signature_databases_with_owners_and_certificates() -> None:
    by_name = {}
    for event in load(SB_CERT).events:
        if event.type == EventType.EV_EFI_VARIABLE_DRIVER_CONFIG:
            decoded = decode(event)
            assert isinstance(decoded, EfiVariable)
            by_name[decoded.name] = decoded
    db = by_name["db"]
    assert db.vendor_guid == EFI_IMAGE_SECURITY_DATABASE and db.signatures is not None
    subjects = [entry.certificate().subject.rfc4514_string() for entry in db.signatures]
    assert "CN=Microsoft Windows Production PCA 2011" in subjects[2]
    assert {entry.owner for entry in db.signatures} == {uuid.UUID("d281fad2-8d88-47a4-9792-5baa47bb1b89")}
    dbx = by_name["dbx"].signatures
    assert dbx is not None and len(dbx) == 77 and {entry.kind for entry in dbx} == {SignatureKind.SHA256}
    assert all(len(entry.data) == 32 for entry in dbx)
    assert by_name["KEK"].describe().endswith("1 signature(s) [x509]")
    with pytest.raises(EventLogError, match=r"not an X\.509 certificate"):
        dbx[0].certificate()


def test_authority_events_and_shim_quirks() -> None:
    events = [decode(e) for e in load(SB_CERT).events if e.type == EventType.EV_EFI_VARIABLE_AUTHORITY]
    assert [v.name for v in events if isinstance(v, EfiVariable)] == ["db", "Shim", "Shim"]
    db, shim = events[0], events[1]
    assert isinstance(db, EfiVariable) and db.signatures is not None
    assert db.signatures[0].owner == uuid.UUID("d281fad2-8d88-47a4-9792-5baa47bb1b89")
    assert isinstance(shim, EfiVariable) and shim.signatures is not None and shim.vendor_guid == SHIM_LOCK_GUID
    assert shim.signatures[0].owner is None and shim.signatures[0].kind is SignatureKind.X509
    assert "certificate logged without its SignatureOwner GUID (shim quirk)" in shim.notes
    assert "Canonical" in shim.signatures[0].certificate().subject.rfc4514_string()


def test_sbat_level_and_vendor_db_authorities() -> None:
    decoded = [decode(e) for e in load(KEYLIME_SB).events if e.type == EventType.EV_EFI_VARIABLE_AUTHORITY]
    names = [v.name for v in decoded if isinstance(v, EfiVariable)]
    assert names == ["db", "SbatLevel", "vendor_db"]
    sbat, vendor = decoded[1], decoded[2]
    assert isinstance(sbat, EfiVariable) and sbat.text is not None and sbat.text.startswith("sbat,1,2023012900\n")
    assert isinstance(vendor, EfiVariable) and vendor.signatures is not None
    assert str(vendor.signatures[0].owner) == "0223eddb-9079-4388-af77-2d65b1c35d3b"


def test_image_load_device_paths() -> None:
    apps = [decode(e) for e in load(KEYLIME_SB).events if e.type == EventType.EV_EFI_BOOT_SERVICES_APPLICATION]
    assert [a.path_text for a in apps if isinstance(a, ImageLoad)] == [
        "PciRoot(0x0)/Pci(0x2,0x3)/Pci(0x0,0x0)/HD(1,GPT,a88ed452-9a52-45c4-91ce-3da7707caaab,0x800,0x12c000)"
        "/\\EFI\\redhat\\shimx64.efi",
        "\\EFI\\redhat\\grubx64.efi",
        "",
    ]
    first = apps[0]
    assert isinstance(first, ImageLoad) and first.device_path.file_path == "\\EFI\\redhat\\shimx64.efi"
    driver = decode(_first(OPTION_ROM, EventType.EV_EFI_BOOT_SERVICES_DRIVER))
    assert isinstance(driver, ImageLoad)
    assert driver.path_text == "PciRoot(0x0)/Pci(0x2,0x0)/Pci(0x0,0x0)/Offset(0xf600,0x207ff)"
    shim_padded = decode(load(RHEL8).events[26])
    assert isinstance(shim_padded, ImageLoad) and shim_padded.notes == ("8 bytes after the device path ignored",)


def test_boot_variables() -> None:
    events = [decode(e) for e in load(OPTION_ROM).events if e.type == EventType.EV_EFI_VARIABLE_BOOT]
    order = events[0]
    assert isinstance(order, EfiVariable) and order.boot_order is not None and order.boot_order[:3] == (0x13, 0xC, 0xD)
    option = events[1]
    assert isinstance(option, EfiVariable) and option.name == "Boot0013" and option.load_option is not None
    assert option.load_option.description == "Windows Boot Manager" and option.load_option.active
    assert option.load_option.device_path.endswith("/\\EFI\\Microsoft\\Boot\\bootmgfw.efi")
    assert option.load_option.optional_data.startswith(b"WINDOWS\x00")


def test_gpt_event() -> None:
    decoded = decode(_first(ARCH, EventType.EV_EFI_GPT_EVENT))
    assert isinstance(decoded, GptData)
    assert [p.name for p in decoded.partitions] == ["EFI System", "Linux RAID", "Linux filesystem"]
    assert decoded.partitions[0].type_guid == uuid.UUID("c12a7328-f81f-11d2-ba4b-00a0c93ec93b")
    assert decoded.partitions[0].first_lba == 0x800


def test_ipl_events() -> None:
    decoded = [decode(e) for e in load(KEYLIME_SB).events if e.type == EventType.EV_IPL]
    ipl = [d for d in decoded if isinstance(d, IplEvent)]
    kinds = {d.kind for d in ipl}
    assert kinds == {IplKind.GRUB_COMMAND, IplKind.KERNEL_CMDLINE, IplKind.FILE, IplKind.SHIM_VARIABLE}
    assert [d.text for d in ipl if d.kind is IplKind.SHIM_VARIABLE] == ["MokList", "MokListX", "MokListTrusted"]
    assert ipl[3].kind is IplKind.FILE and ipl[3].text == "(hd0,gpt1)/EFI/redhat/grub.cfg"
    grub = next(d for d in ipl if d.kind is IplKind.GRUB_COMMAND)
    assert grub.prefix == "grub_cmd: " and grub.text.startswith("search --no-floppy --fs-uuid --set=dev")
    sdboot = decode(_first(ARCH, EventType.EV_IPL))
    assert isinstance(sdboot, IplEvent) and sdboot.kind is IplKind.KERNEL_CMDLINE and sdboot.encoding == "utf-16"
    assert sdboot.text.startswith("initrd=\\intel-ucode.img initrd=\\initramfs-linux-lts.img")
    assert sdboot.text.endswith("l1tf=off")
    old_grub = decode(_first(RHEL8, EventType.EV_IPL, 8))
    assert isinstance(old_grub, IplEvent) and old_grub.prefix == "grub_cmd " and old_grub.text == "set pager=1"


def test_separators_and_their_error_value() -> None:
    decoded = decode(_first(KEYLIME_SB, EventType.EV_SEPARATOR))
    assert isinstance(decoded, Separator) and decoded.value == 0 and not decoded.is_error
    error = decode(_event(EventType.EV_SEPARATOR, b"\x01\x00\x00\x00"))
    assert isinstance(error, Separator) and error.is_error and error.describe() == "separator: error value 0x00000001"
    wbcl = decode(load(OPTION_ROM).events[55])
    assert isinstance(wbcl, Separator) and wbcl.describe() == "separator 'WBCL'"
    with pytest.raises(EventLogError, match="EV_SEPARATOR data is 3 bytes") as info:
        decode(_event(EventType.EV_SEPARATOR, b"\x00\x00\x00"))
    assert info.value.offset == 1000


def test_text_events() -> None:
    gce = decode(_first(RHEL8, EventType.EV_S_CRTM_VERSION))
    assert gce == Text("GCE Virtual Firmware v1", encoding="utf-16")
    assert decode(_first(ARCH, EventType.EV_S_CRTM_VERSION)) == Text(
        "546bfb1e-1d0c-4055-a4ad-4ef4bf17b83a", encoding="guid"
    )
    action = decode(_first(KEYLIME_SB, EventType.EV_EFI_ACTION))
    assert action == Text("Calling EFI Application from Boot Option")
    assert decode(_first(GDC, EventType.EV_PLATFORM_CONFIG_FLAGS)) == Text("No voltage offset and OC_LOCK bit is set")
    assert decode(_first(OPTION_ROM, EventType.EV_POST_CODE)) == Text("ACPI DATA")
    assert decode(_first(OPTION_ROM, EventType.EV_CPU_MICROCODE)) == Text(
        "Load microcode revision 000000A1 for processor 000306F2"
    )


def test_firmware_blobs_handoff_tables_and_post_codes() -> None:
    blob = decode(_first(GDC, EventType.EV_EFI_PLATFORM_FIRMWARE_BLOB))
    assert blob == FirmwareBlob(0xFFDC0000, 0x230000)
    post = decode(_first(ARCH, EventType.EV_POST_CODE))
    assert post == FirmwareBlob(0xFFA90000, 0x350000)
    tables = decode(_first(GDC, EventType.EV_EFI_HANDOFF_TABLES))
    assert isinstance(tables, HandoffTables) and tables.describe() == "SMBIOS3@0x6fd17000"
    blob2 = decode(_event(EventType.EV_EFI_PLATFORM_FIRMWARE_BLOB2, b"\x04PEI\x00" + struct.pack("<QQ", 0x1000, 0x20)))
    assert blob2 == FirmwareBlob(0x1000, 0x20, "PEI")
    tables2 = b"\x06SMBIOS" + struct.pack("<Q", 1) + uuid.UUID(int=7).bytes_le + struct.pack("<Q", 0xABC)
    decoded = decode(_event(EventType.EV_EFI_HANDOFF_TABLES2, tables2))
    assert isinstance(decoded, HandoffTables) and decoded.description == "SMBIOS" and decoded.tables[0][1] == 0xABC
    with pytest.raises(EventLogError, match="5 handoff tables do not fit"):
        decode(_event(EventType.EV_EFI_HANDOFF_TABLES, struct.pack("<Q", 5)))


def test_no_action_events() -> None:
    gdc = load(GDC)
    spec = decode(gdc.events[0])
    assert isinstance(spec, SpecIdEvent) and spec.describe() == "Spec ID Event03 v2.0 errata 0: sha256"
    assert decode(gdc.events[1]) == StartupLocality(3)
    windows = decode(load(OPTION_ROM).events[60])
    assert isinstance(windows, NoActionData) and len(windows.data) == 424
    sp800 = decode(_event(EventType.EV_NO_ACTION, b"SP800-155 Event\x00" + bytes(8)))
    assert isinstance(sp800, NoActionData) and sp800.signature == "SP800-155 Event"


def test_tagged_events_of_the_linux_efi_stub() -> None:
    tags = [decode(e) for e in load(GDC).events if e.type == EventType.EV_EVENT_TAG]
    assert [(t.event_id, t.text) for t in tags if isinstance(t, TaggedEvent)] == [
        (0x8F3B22ED, "LOADED_IMAGE::LoadOptions"),
        (0x8F3B22EC, "Linux initrd"),
    ]
    assert isinstance(decode(_event(EventType.EV_EVENT_TAG, struct.pack("<II", 1, 99))), RawData)


def test_binary_events_stay_raw() -> None:
    nonhost = decode(_first(EXPECTED_LOGS["Ubuntu2404AmdSevSnp"], EventType.EV_NONHOST_INFO))
    assert isinstance(nonhost, RawData) and nonhost.data.startswith(b"GCE NonHostInfo\x00\x04")
    assert isinstance(decode(_event(0x12345, b"\x00\x01\x02")), RawData)


def test_malformed_variable_data_is_rejected_at_an_absolute_offset() -> None:
    data = variable_data(EFI_GLOBAL_VARIABLE, "SecureBoot", b"\x01")
    with pytest.raises(EventLogError, match="UnicodeName") as info:
        decode(_event(EventType.EV_EFI_VARIABLE_DRIVER_CONFIG, data[:40]))
    assert info.value.offset == 1000 + 32
    with pytest.raises(EventLogError, match="VariableName"):
        decode(_event(EventType.EV_EFI_VARIABLE_DRIVER_CONFIG, data[:10]))


def test_length_disagreements_are_tolerated_and_noted() -> None:
    data = variable_data(EFI_GLOBAL_VARIABLE, "SecureBoot", b"\x01")
    longer = decode(_event(EventType.EV_EFI_VARIABLE_DRIVER_CONFIG, data + b"\x00\x00"))
    assert isinstance(longer, EfiVariable) and longer.secure_boot is True
    assert longer.notes == ("2 bytes after VariableData ignored",)
    short = bytearray(variable_data(EFI_GLOBAL_VARIABLE, "db", b"\x00" * 30))
    short[24:32] = struct.pack("<Q", 300)
    truncated = decode(_event(EventType.EV_EFI_VARIABLE_DRIVER_CONFIG, bytes(short)))
    assert isinstance(truncated, EfiVariable) and truncated.signatures is None
    assert truncated.notes[0] == "VariableDataLength 300 exceeds the 30 bytes left in the event; truncated"
    assert truncated.notes[1].startswith("db value not decoded: EFI_SIGNATURE_LIST")


def test_malformed_signature_list_is_noted_not_raised() -> None:
    bad = uuid.UUID("c1c41626-504c-4092-aca9-41f936934328").bytes_le + struct.pack("<III", 28 + 40, 0, 48) + bytes(40)
    decoded = decode(
        _event(EventType.EV_EFI_VARIABLE_DRIVER_CONFIG, variable_data(EFI_IMAGE_SECURITY_DATABASE, "dbx", bad))
    )
    assert isinstance(decoded, EfiVariable) and decoded.signatures is None
    assert "not a whole number of 48-byte signatures" in decoded.notes[0]


def test_image_load_with_a_broken_device_path() -> None:
    header = struct.pack("<QQQQ", 0x1000, 0x2000, 0, 8)
    broken = decode(_event(EventType.EV_EFI_BOOT_SERVICES_APPLICATION, header + b"\x04\x04\x02\x00xxxx"))
    assert isinstance(broken, ImageLoad) and broken.path_text == ""
    assert broken.notes[0].startswith("device path not decoded: device path node length 2 does not fit")
    long = decode(
        _event(EventType.EV_EFI_BOOT_SERVICES_APPLICATION, struct.pack("<QQQQ", 0, 0, 0, 99) + b"\x7f\xff\x04\x00")
    )
    assert isinstance(long, ImageLoad) and "LengthOfDevicePath 99 exceeds" in long.notes[0]
    with pytest.raises(EventLogError, match="LengthOfDevicePath") as info:
        decode(_event(EventType.EV_EFI_BOOT_SERVICES_APPLICATION, header[:30]))
    assert info.value.offset == 1024


def test_device_path_text() -> None:
    def node(node_type: int, subtype: int, body: bytes) -> bytes:
        return struct.pack("<BBH", node_type, subtype, 4 + len(body)) + body

    end_instance, end = node(0x7F, 0x01, b""), node(0x7F, 0xFF, b"")
    path = (
        node(2, 1, struct.pack("<II", 0x0A0341D0, 0))
        + node(1, 1, bytes([0, 0x1F]))
        + node(3, 0x0B, bytes.fromhex("52540012ab01") + bytes(26) + b"\x01")
        + node(3, 0x0C, bytes(4) + bytes([10, 0, 0, 7]) + bytes(11))
        + end_instance
        + node(2, 1, struct.pack("<II", 0x0A0841D0, 1))
        + node(3, 0x17, struct.pack("<I", 1) + bytes(range(8)))
        + node(9, 9, b"\xab")
        + end
        + node(4, 4, "ignored".encode("utf-16-le"))
    )
    parsed = parse_device_path(path)
    assert parsed.text == (
        "PciRoot(0x0)/Pci(0x1f,0x0)/MAC(52540012ab01,0x1)/IPv4(10.0.0.7),"
        "PcieRoot(0x1)/NVMe(0x1,00-01-02-03-04-05-06-07)/Path(9,9,ab)"
    )
    assert len(parsed.nodes) == 7 and parsed.file_path is None
    with pytest.raises(EventLogError, match="truncated device path node header") as info:
        parse_device_path(b"\x01\x01", 500)
    assert info.value.offset == 500


def test_data_checks() -> None:
    keylime = load(KEYLIME_SB)
    assert check_event_data(_first(KEYLIME_SB, EventType.EV_SEPARATOR)) is DataCheck.MATCH
    assert check_event_data(_first(KEYLIME_SB, EventType.EV_IPL, 8)) is DataCheck.MATCH
    assert check_event_data(_first(ARCH, EventType.EV_IPL, 8)) is DataCheck.MATCH  # systemd-boot UTF-16
    assert check_event_data(_first(RHEL8, EventType.EV_IPL, 8)) is DataCheck.MATCH  # "grub_cmd " with NUL
    assert check_event_data(_first(KEYLIME_SB, EventType.EV_EFI_BOOT_SERVICES_APPLICATION)) is DataCheck.NOT_APPLICABLE
    shim = [e for e in load(SB_CERT).events if e.type == EventType.EV_EFI_VARIABLE_AUTHORITY][1]
    assert check_event_data(shim) is DataCheck.MATCH_WITH_QUIRK
    separator = _first(KEYLIME_SB, EventType.EV_SEPARATOR)
    forged = Event(separator.index, separator.offset, 7, separator.type, separator.digests, b"\x01\x00\x00\x00")
    assert check_event_data(forged) is DataCheck.MISMATCH
    grub = next(e for e in keylime.events if e.type == EventType.EV_IPL and e.data.startswith(b"kernel_cmdline"))
    forged_grub = Event(grub.index, grub.offset, 8, grub.type, grub.digests, grub.data.replace(b"quiet", b"QUIET"))
    assert check_event_data(forged_grub) is DataCheck.MISMATCH
