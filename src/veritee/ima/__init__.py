"""Linux IMA measurement lists (ascii_runtime_measurements): parser, PCR replay and file-signature checks.

Pure: takes text or bytes, does no I/O.
"""

from veritee.ima.entry import KERNEL_HASH_SIZES, ImaEntry, ImaTemplate, format_entry
from veritee.ima.errors import ImaLogError, ImaSignatureError, ImaSignatureFormatError, TemplateHashMismatchError
from veritee.ima.parser import parse, parse_line, parse_lines, split_lines
from veritee.ima.replay import DEFAULT_BANKS, IMA_PCR, ImaState, replay, replay_incremental, replay_pcrs
from veritee.ima.signature import (
    ImaSignature,
    KernelHashAlgo,
    Keyring,
    XattrType,
    key_id,
    key_id_from_certificate,
    parse_signature,
    verify_entry,
    verify_signature,
)

__all__ = [
    "DEFAULT_BANKS",
    "IMA_PCR",
    "KERNEL_HASH_SIZES",
    "ImaEntry",
    "ImaLogError",
    "ImaSignature",
    "ImaSignatureError",
    "ImaSignatureFormatError",
    "ImaState",
    "ImaTemplate",
    "KernelHashAlgo",
    "Keyring",
    "TemplateHashMismatchError",
    "XattrType",
    "format_entry",
    "key_id",
    "key_id_from_certificate",
    "parse",
    "parse_line",
    "parse_lines",
    "parse_signature",
    "replay",
    "replay_incremental",
    "replay_pcrs",
    "split_lines",
    "verify_entry",
    "verify_signature",
]
