"""TCG PC Client firmware event logs (binary_bios_measurements): parser, decoders, PCR replay and boot facts.

``parse(bytes) -> EventLog`` is fast and decodes nothing; ``decode(event)`` decodes one event's data on demand;
``replay(log)`` / ``verify_pcrs(log, quoted)`` compute the PCRs; ``summarize(log)`` reads the boot facts a
measured-boot policy checks.
"""

from veritee.eventlog.datacheck import DataCheck, check_event_data
from veritee.eventlog.decoders import (
    DecodedEvent,
    EfiVariable,
    FirmwareBlob,
    GptData,
    GptPartition,
    HandoffTables,
    ImageLoad,
    IplEvent,
    IplKind,
    NoActionData,
    RawData,
    Separator,
    StartupLocality,
    TaggedEvent,
    Text,
    decode,
)
from veritee.eventlog.devicepath import DevicePath, DevicePathNode, parse_device_path
from veritee.eventlog.model import (
    AlgorithmSize,
    Event,
    EventLog,
    EventLogError,
    EventType,
    LogFormat,
    SpecIdEvent,
    event_type_name,
)
from veritee.eventlog.parser import parse
from veritee.eventlog.replay import Replay, replay, reset_value, verify_pcrs
from veritee.eventlog.summary import Authority, BootSummary, EfiImage, Measurement, summarize
from veritee.eventlog.uefi import LoadOption, SignatureEntry, SignatureKind, SignatureLists

__all__ = [
    "AlgorithmSize",
    "Authority",
    "BootSummary",
    "DataCheck",
    "DecodedEvent",
    "DevicePath",
    "DevicePathNode",
    "EfiImage",
    "EfiVariable",
    "Event",
    "EventLog",
    "EventLogError",
    "EventType",
    "FirmwareBlob",
    "GptData",
    "GptPartition",
    "HandoffTables",
    "ImageLoad",
    "IplEvent",
    "IplKind",
    "LoadOption",
    "LogFormat",
    "Measurement",
    "NoActionData",
    "RawData",
    "Replay",
    "Separator",
    "SignatureEntry",
    "SignatureKind",
    "SignatureLists",
    "SpecIdEvent",
    "StartupLocality",
    "TaggedEvent",
    "Text",
    "check_event_data",
    "decode",
    "event_type_name",
    "parse",
    "parse_device_path",
    "replay",
    "reset_value",
    "summarize",
    "verify_pcrs",
]
