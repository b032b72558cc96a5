"""Text forms the TAM stores and shows: SUIT component identifiers and SUIT digests.

A component id is written as its parts joined by ``/``. A part that is printable ASCII (no ``/``, not starting with
``0x`` and not shaped like a UUID) is written as text; any other part as ``0x`` + hex. Reading also accepts a UUID
(``8d82573a-926d-4754-9353-32dc29997f74`` is its 16 bytes), as ``veritee suit create --component-id`` does, so
``TEEP-Device/SecureFS/8d82573a-926d-4754-9353-32dc29997f74/ta`` and its canonical form
``TEEP-Device/SecureFS/0x8d82573a926d4754935332dc29997f74/ta`` name the same component. The canonical form
(:func:`component_id_to_text`) is what the database holds.
"""

from __future__ import annotations

import re
import uuid
from typing import Final

from veritee.errors import ValidationError
from veritee.suit.labels import DigestAlgorithm
from veritee.suit.model import ComponentId, SuitDigest

__all__ = [
    "canonical_component_id",
    "component_id_from_text",
    "component_id_to_text",
    "digest_from_parts",
    "digest_text",
]

_UUID: Final = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAX_TEXT: Final = 512


def _as_text(part: bytes) -> str | None:
    if not part or not all(0x21 <= b < 0x7F for b in part) or b"/" in part:
        return None
    text = part.decode("ascii")
    if text.startswith("0x") or _UUID.match(text):
        return None
    return text


def component_id_to_text(component_id: ComponentId) -> str:
    """The canonical text of a component id (raises ValidationError for an empty one or one too long to store)."""
    if not component_id:
        raise ValidationError("a component id has at least one part")
    text = "/".join(t if (t := _as_text(p)) is not None else "0x" + p.hex() for p in component_id)
    if len(text) > MAX_TEXT:
        raise ValidationError(f"component id text is {len(text)} characters; at most {MAX_TEXT} are stored")
    return text


def component_id_from_text(text: str) -> ComponentId:
    """Parse the text form (see the module docstring); raises ValidationError."""
    if not text or len(text) > MAX_TEXT:
        raise ValidationError(f"a component id is 1..{MAX_TEXT} characters")
    parts: list[bytes] = []
    for part in text.split("/"):
        if part.startswith("0x"):
            try:
                parts.append(bytes.fromhex(part[2:]))
            except ValueError:
                raise ValidationError(f"component id part {part!r} is not hexadecimal") from None
        elif _UUID.match(part):
            parts.append(uuid.UUID(part).bytes)
        else:
            try:
                parts.append(part.encode("ascii"))
            except UnicodeEncodeError:
                raise ValidationError(f"component id part {part!r} is not ASCII: write it as 0x<hex>") from None
    return tuple(parts)


def canonical_component_id(text: str) -> str:
    """The canonical spelling of a component id given in any accepted spelling."""
    return component_id_to_text(component_id_from_text(text))


def digest_text(digest: SuitDigest) -> str:
    """``sha256:<hex>`` (the algorithm's name in lower case)."""
    return str(digest)


def digest_from_parts(algorithm: int, value: bytes) -> str:
    """The text of a digest given as (SUIT digest algorithm id, bytes), as tc-list entries carry it."""
    try:
        alg = DigestAlgorithm(algorithm)
    except ValueError:
        raise ValidationError(f"unknown SUIT digest algorithm {algorithm}") from None
    return digest_text(SuitDigest(alg, value))
