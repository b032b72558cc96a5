"""Parser of the kernel's ASCII measurement list (``/sys/kernel/security/ima/ascii_runtime_measurements``).

Line format (security/integrity/ima/ima_fs.c, ``ima_ascii_measurements_show``)::

    "%2d " PCR, template hash in hex, " " template name, then " " + field for each template field

so PCRs below 10 are printed with a leading space, and an empty last field (no signature) leaves a trailing space.
Since 2015 the kernel replaces spaces in path names with ``_``; older kernels did not, so the path is whatever lies
between the digest and the fields that follow it (hex fields never contain spaces).

Speed matters (a fleet verifier reads millions of lines), so there are three paths, and tests check they agree:

* chunks of 1024 lines that are all well-formed ``ima-ng`` lines (the default template) are parsed column-wise;
* in other chunks, ``ima-ng`` and ``ima-sig`` lines take a per-line fast path;
* every other line, and any line a fast path does not accept, goes through the reference parser
  (:func:`parse_line`), which also words the error.
"""

from __future__ import annotations

import binascii
import struct
from itertools import repeat

from veritee.ima.entry import (
    IMA_NAME_FIELD_SIZE,
    KERNEL_HASH_SIZES,
    TEMPLATE_HASH_ALGS,
    ImaEntry,
    ImaTemplate,
    digest_ng_field,
    ima_template_data,
    name_ng_field,
    ng_template_data,
)
from veritee.ima.errors import ImaLogError

_UNHEX = binascii.unhexlify
_NEW_ENTRY = tuple.__new__
_IMA_NG = ImaTemplate.IMA_NG
_IMA_SIG = ImaTemplate.IMA_SIG
#: d-ng field prefix (``<algo>:`` NUL) by algorithm name: the fast path looks the name up here.
_DNG_PREFIX = {alg: digest_ng_field(alg, b"") for alg in KERNEL_HASH_SIZES}
#: PCR numbers as printed ("%2d": 0-9 carry a leading space that the line splitter leaves as an empty first token).
_PCR_TEXT = {str(i): i for i in range(10, 64)}
#: Lines per column-wise chunk: bounds the temporary lists; a chunk with one odd line is parsed line by line.
_CHUNK = 1024
_TEMPLATE_HASH_HEX_SIZES = frozenset(2 * size for size in TEMPLATE_HASH_ALGS)
#: Little-endian u32 field lengths up to PATH_MAX and a bit; longer fields take the reference parser.
_LENGTHS = [struct.pack("<I", size) for size in range(4352)]
_MAX_PCR = 63


def split_lines(text: str | bytes) -> list[str]:
    """The lines of a measurement list as text (non-UTF-8 bytes are kept as surrogate escapes).

    A final newline does not start another line; any other empty line is kept (and the parser rejects it).
    """
    if isinstance(text, bytes | bytearray | memoryview):
        text = bytes(text).decode("utf-8", "surrogateescape")
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def parse(text: str | bytes, *, start_line: int = 0) -> list[ImaEntry]:
    """Parse ASCII measurement-list lines into entries; ``start_line`` is the list line number of the first one.

    Raises :class:`ImaLogError` (a :class:`~veritee.errors.DecodeError`) naming the first malformed line. Parsing
    does not check template hashes: :func:`veritee.ima.replay` does.
    """
    if start_line < 0:
        raise ImaLogError("start_line must not be negative", line=start_line)
    return parse_lines(split_lines(text), start_line=start_line)


def parse_lines(lines: list[str], *, start_line: int = 0) -> list[ImaEntry]:
    """Parse already split lines (see :func:`parse`)."""
    entries: list[ImaEntry] = []
    for begin in range(0, len(lines), _CHUNK):
        chunk = lines[begin : begin + _CHUNK]
        parsed = _parse_ima_ng_chunk(chunk, start_line + begin)
        entries.extend(_parse_each(chunk, start_line + begin) if parsed is None else parsed)
    return entries


def _parse_ima_ng_chunk(lines: list[str], start_line: int) -> list[ImaEntry] | None:
    """Column-wise parse of a chunk made only of well-formed ``ima-ng`` lines; None for anything else.

    Each step is one comprehension over the chunk, which costs less interpreter time per line than a loop body.
    """
    count = len(lines)
    if not count:
        return []
    rows = [line.split(" ", 4) for line in lines]
    try:
        pcr_texts, template_hash_texts, templates, digest_texts, paths = zip(*rows, strict=True)
    except ValueError:  # some line has fewer or more fields than an ima-ng line
        return None
    if templates.count("ima-ng") != count or "\x00" in "".join(paths):
        return None
    if not {len(text) for text in template_hash_texts} <= _TEMPLATE_HASH_HEX_SIZES:
        return None
    algs, colons, digest_hexes = zip(*[text.partition(":") for text in digest_texts], strict=True)
    if "" in colons or "" in digest_hexes:
        return None
    unhex, lengths, prefixes, join = _UNHEX, _LENGTHS, _DNG_PREFIX, b"".join
    try:
        pcrs = [_PCR_TEXT[text] for text in pcr_texts]
        template_hashes = [unhex(text) for text in template_hash_texts]
        digests = [unhex(text) for text in digest_hexes]
        names = [path.encode("utf-8", "surrogateescape") for path in paths]
        template_datas = [
            join(
                (
                    lengths[len(prefix := prefixes[alg]) + len(digest)],
                    prefix,
                    digest,
                    lengths[len(name) + 1],
                    name,
                    b"\x00",
                )
            )
            for alg, digest, name in zip(algs, digests, names, strict=True)
        ]
    except (KeyError, IndexError, ValueError):
        return None
    return list(
        map(
            _NEW_ENTRY,
            repeat(ImaEntry, count),
            zip(
                range(start_line, start_line + count),
                pcrs,
                template_hashes,
                repeat(_IMA_NG, count),
                algs,
                digests,
                paths,
                repeat(None, count),
                repeat(None, count),
                template_datas,
                repeat(None, count),
                repeat(None, count),
                repeat(None, count),
                strict=True,
            ),
        )
    )


def _parse_each(lines: list[str], start_line: int) -> list[ImaEntry]:
    """Line by line: a fast path for ``ima-ng`` and ``ima-sig`` lines, the reference parser for the rest."""
    entries: list[ImaEntry] = []
    append = entries.append
    unhex, lengths, new_entry, prefixes, pcrs = _UNHEX, _LENGTHS, _NEW_ENTRY, _DNG_PREFIX, _PCR_TEXT
    template_hash_hex_sizes = _TEMPLATE_HASH_HEX_SIZES
    ima_ng, ima_sig = _IMA_NG, _IMA_SIG
    join = b"".join
    number = start_line
    for line in lines:
        parts = line.split(" ", 3)
        if len(parts) == 4 and ((is_ng := parts[2] == "ima-ng") or parts[2] == "ima-sig"):
            # Fast path: anything unexpected falls through to the reference parser, which words the error.
            try:
                pcr = pcrs[parts[0]]
                template_hash_hex = parts[1]
                digest_text, separator, path = parts[3].partition(" ")
                alg, colon, digest_hex = digest_text.partition(":")
                if (
                    separator
                    and colon
                    and digest_hex
                    and len(template_hash_hex) in template_hash_hex_sizes
                    and "\x00" not in path
                ):
                    digest = unhex(digest_hex)
                    digest_field = prefixes[alg] + digest
                    if is_ng:
                        name = path.encode("utf-8", "surrogateescape")
                        fields: tuple[bytes, ...] = (
                            lengths[len(digest_field)],
                            digest_field,
                            lengths[len(name) + 1],
                            name,
                            b"\x00",
                        )
                        signature = None
                    else:
                        # The signature is the last space-separated field; it may be missing when empty.
                        if " " in path:
                            path, _, signature_hex = path.rpartition(" ")
                        else:
                            signature_hex = ""
                        name = path.encode("utf-8", "surrogateescape")
                        raw_signature = unhex(signature_hex)
                        fields = (
                            lengths[len(digest_field)],
                            digest_field,
                            lengths[len(name) + 1],
                            name,
                            b"\x00",
                            lengths[len(raw_signature)],
                            raw_signature,
                        )
                        signature = raw_signature or None
                    template_hash = unhex(template_hash_hex)
                    append(
                        new_entry(
                            ImaEntry,
                            (
                                number,
                                pcr,
                                template_hash,
                                ima_ng if is_ng else ima_sig,
                                alg,
                                digest,
                                path,
                                signature,
                                None,
                                join(fields),
                                None,
                                None,
                                None,
                            ),
                        )
                    )
                    number += 1
                    continue
            except (KeyError, IndexError, ValueError):
                pass
        append(parse_line(line, number))
        number += 1
    return entries


def parse_line(line: str, number: int) -> ImaEntry:
    """Parse one line (the reference parser); ``number`` is its 0-based line number in the list."""
    if line.startswith(" "):  # "%2d": PCRs 0-9 are printed with a leading space
        line = line[1:]
        single_digit = True
    else:
        single_digit = False
    parts = line.split(" ", 3)
    if len(parts) != 4:
        raise ImaLogError(
            f"expected 'PCR template-hash template-name fields...', found {len(parts)} space-separated field(s)",
            line=number,
        )
    pcr_text, template_hash_text, template_text, fields = parts
    pcr = _parse_pcr(pcr_text, single_digit, number)
    template_hash = _parse_hex(template_hash_text, "template hash", number)
    if len(template_hash) not in TEMPLATE_HASH_ALGS:
        raise ImaLogError(
            f"template hash of {len(template_hash)} bytes (expected 20, 32, 48 or 64)",
            line=number,
        )
    try:
        template = ImaTemplate(template_text)
    except ValueError:
        raise ImaLogError(f"unsupported template {template_text!r}", line=number) from None
    if template is ImaTemplate.IMA:
        return _parse_ima(number, pcr, template_hash, fields)
    digest_text, separator, rest = fields.partition(" ")
    if not separator:
        raise ImaLogError(f"{template.value} entry has no path name after the file digest", line=number)
    alg, digest = _parse_digest_ng(digest_text, "file digest", number)
    extra: list[str]
    if template is ImaTemplate.IMA_NG:
        path, extra = rest, []
    elif template is ImaTemplate.IMA_MODSIG:
        path, extra = _split_trailing(rest, 3, template, number)
    else:
        path, extra = _split_trailing(rest, 1, template, number)
    path_bytes = _path_bytes(path, number)
    digest_field = digest_ng_field(alg, digest)
    name_field = name_ng_field(path_bytes)
    signature: bytes | None = None
    buffer: bytes | None = None
    modsig_alg: str | None = None
    modsig_digest: bytes | None = None
    modsig: bytes | None = None
    if template is ImaTemplate.IMA_NG:
        template_data = ng_template_data(digest_field, name_field)
    elif template is ImaTemplate.IMA_BUF:
        buffer = _parse_hex(extra[0], "buffer", number)
        template_data = ng_template_data(digest_field, name_field, buffer)
    else:
        sig = _parse_hex(extra[0], "signature", number)
        signature = sig or None
        if template is ImaTemplate.IMA_SIG:
            template_data = ng_template_data(digest_field, name_field, sig)
        else:
            modsig_digest_field = b""
            if extra[1]:
                modsig_alg, modsig_digest = _parse_digest_ng(extra[1], "appended-signature digest", number)
                modsig_digest_field = digest_ng_field(modsig_alg, modsig_digest)
            raw_modsig = _parse_hex(extra[2], "appended signature", number)
            if bool(modsig_digest_field) != bool(raw_modsig):
                raise ImaLogError("ima-modsig entry has only one of d-modsig and modsig", line=number)
            modsig = raw_modsig or None
            template_data = ng_template_data(digest_field, name_field, sig, modsig_digest_field, raw_modsig)
    return ImaEntry(
        number,
        pcr,
        template_hash,
        template,
        alg,
        digest,
        path,
        signature,
        buffer,
        template_data,
        modsig_alg,
        modsig_digest,
        modsig,
    )


def _parse_ima(number: int, pcr: int, template_hash: bytes, fields: str) -> ImaEntry:
    digest_hex, separator, path = fields.partition(" ")
    if not separator:
        raise ImaLogError("ima entry has no path name after the file digest", line=number)
    digest = _parse_hex(digest_hex, "file digest", number)
    if len(digest) == 20:
        alg = "sha1"
    elif len(digest) == 16:
        alg = "md5"
    else:
        raise ImaLogError(f"ima entry file digest of {len(digest)} bytes (expected SHA-1 or MD5)", line=number)
    path_bytes = _path_bytes(path, number)
    if len(path_bytes) >= IMA_NAME_FIELD_SIZE:
        raise ImaLogError(f"ima entry path name of {len(path_bytes)} bytes (at most 255)", line=number)
    template_data = ima_template_data(digest, path_bytes)
    return ImaEntry(number, pcr, template_hash, ImaTemplate.IMA, alg, digest, path, None, None, template_data)


def _parse_pcr(text: str, single_digit: bool, number: int) -> int:
    if single_digit:
        if len(text) == 1 and "0" <= text <= "9":
            return int(text)
        raise ImaLogError(f"PCR {text!r} after a leading space is not a single digit", line=number)
    if text in _PCR_TEXT:
        return _PCR_TEXT[text]
    if len(text) == 1 and "0" <= text <= "9":  # tools that re-print the list without the "%2d" padding
        return int(text)
    raise ImaLogError(f"PCR {text!r} is not a decimal PCR index 0-{_MAX_PCR}", line=number)


def _parse_hex(text: str, what: str, number: int) -> bytes:
    try:
        return _UNHEX(text)
    except ValueError:
        shown = text if len(text) <= 80 else text[:77] + "..."
        raise ImaLogError(f"{what} {shown!r} is not hexadecimal bytes", line=number) from None


def _parse_digest_ng(text: str, what: str, number: int) -> tuple[str, bytes]:
    alg, colon, digest_hex = text.partition(":")
    if not colon:
        raise ImaLogError(f"{what} {text!r} is not '<algorithm>:<hex>'", line=number)
    if alg not in KERNEL_HASH_SIZES:
        raise ImaLogError(f"{what} has unknown hash algorithm {alg!r}", line=number)
    digest = _parse_hex(digest_hex, what, number)
    if not digest:
        raise ImaLogError(f"{what} is empty", line=number)
    return alg, digest


def _split_trailing(rest: str, count: int, template: ImaTemplate, number: int) -> tuple[str, list[str]]:
    """Split ``path field...`` from the right: hex fields never contain spaces, old kernels' paths may."""
    parts = rest.rsplit(" ", count)
    if len(parts) == count + 1:
        return parts[0], parts[1:]
    if count == 1 and len(parts) == 1:
        # Some tools strip the trailing space the kernel prints after an empty last field.
        return rest, [""]
    raise ImaLogError(
        f"{template.value} entry has {len(parts)} field(s) after the digest, expected {count + 1}", line=number
    )


def _path_bytes(path: str, number: int) -> bytes:
    try:
        data = path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise ImaLogError("path name is not encodable text (lone surrogate)", line=number) from None
    if b"\x00" in data:
        raise ImaLogError("path name contains a NUL character", line=number)
    return data
