"""Push challenges without database writes: the nonce is an authenticated token.

A push node asks for a challenge, quotes over its nonce and sends the evidence back. Instead of storing each
challenge, the verifier makes the 32-byte nonce itself carry what it must remember, authenticated with a key every
replica shares (``verifier_secrets``)::

    version (1) | expires, Unix seconds (4) | round (4) | IMA offset (4) | flags (1) | salt (2) | MAC (16)

The MAC is HMAC-SHA-256 (truncated to 128 bits) over those first 16 bytes, the node id, what identifies the node's
current registration (its AK and activation time) and the PCR selection. So a nonce is only accepted from the node it
was made for, for the AK it registered, before it expires, with the IMA offset and event log request it was made
with. It answers once: it names the node's ``round``, which every committed round (and a reboot, an unreachable
mark, a re-registration) moves on, and the commit checks the round under the node's row lock — so a second answer
to the same challenge finds the round moved on and is refused. A bounded in-memory set of spent nonces refuses
replays before they cost an appraisal. To the node the nonce is 32 opaque bytes, as before.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from veritee.errors import ConfigError, FreshnessError

__all__ = ["NONCE_BYTES", "ChallengeTokens", "NodeBinding", "SpentNonces", "TokenClaims"]

NONCE_BYTES = 32
_VERSION = 1
_PLAIN = struct.Struct(">BIIIBH")
_MAC_BYTES = NONCE_BYTES - _PLAIN.size
_WANT_EVENT_LOG = 0x01
_LABEL = b"veritee push challenge v1\x00"
_U32 = 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class NodeBinding:
    """What a challenge is bound to besides its own fields: the node and its current registration."""

    node_id: str
    ak_public: bytes
    activated_at: datetime | None

    def encode(self) -> bytes:
        node = self.node_id.encode()
        activated = b"" if self.activated_at is None else self.activated_at.isoformat(timespec="microseconds").encode()
        ak = hashlib.sha256(self.ak_public).digest()
        return b"".join((struct.pack(">H", len(node)), node, ak, struct.pack(">B", len(activated)), activated))


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What an authentic challenge nonce says."""

    expires: int
    round: int
    ima_offset: int
    want_event_log: bool


class ChallengeTokens:
    """Makes and checks challenge nonces with ``key`` (at least 32 bytes) for ``pcr_selection``."""

    def __init__(self, key: bytes, pcr_selection: Mapping[str, tuple[int, ...]], ttl_s: float) -> None:
        if len(key) < 32:
            raise ConfigError("the challenge key must have at least 32 bytes")
        selection = ";".join(f"{bank}:{','.join(map(str, pcrs))}" for bank, pcrs in sorted(pcr_selection.items()))
        self._key = key
        self._context = _LABEL + selection.encode() + b"\x00"
        self._ttl = ttl_s

    def _mac(self, plain: bytes, binding: NodeBinding) -> bytes:
        return hmac.digest(self._key, self._context + plain + binding.encode(), "sha256")[:_MAC_BYTES]

    def issue(
        self, binding: NodeBinding, *, round_: int, ima_offset: int, want_event_log: bool, now: datetime
    ) -> bytes:
        """A fresh nonce for a challenge with these fields, valid for the TTL from ``now``."""
        expires = int(now.timestamp() + self._ttl + 0.999_999)
        flags = _WANT_EVENT_LOG if want_event_log else 0
        salt = int.from_bytes(os.urandom(2), "big")
        plain = _PLAIN.pack(_VERSION, expires & _U32, round_ & _U32, ima_offset & _U32, flags, salt)
        return plain + self._mac(plain, binding)

    def open(self, binding: NodeBinding, nonce: bytes, now: datetime) -> TokenClaims:
        """The claims of a nonce this verifier made for this node; FreshnessError for any other nonce (never made,
        made for another node or registration, altered) or an expired one."""
        unknown = FreshnessError(
            f"the nonce is not a pending challenge of {binding.node_id!r} (expired, used or unknown)"
        )
        if len(nonce) != NONCE_BYTES:
            raise unknown
        plain, mac = nonce[: _PLAIN.size], nonce[_PLAIN.size :]
        version, expires, round_, offset, flags, _salt = _PLAIN.unpack(plain)
        if version != _VERSION or flags & ~_WANT_EVENT_LOG or not hmac.compare_digest(mac, self._mac(plain, binding)):
            raise unknown
        if now.timestamp() >= expires:
            raise FreshnessError("the challenge expired: ask for a new one")
        return TokenClaims(expires, round_, offset, bool(flags & _WANT_EVENT_LOG))

    @staticmethod
    def same_round(claims: TokenClaims, round_: int) -> bool:
        return claims.round == round_ & _U32


class SpentNonces:
    """Nonces already answered (or being answered) in this process, until they expire; at most ``limit`` kept (the
    oldest go first: the database's round check still refuses them)."""

    def __init__(self, limit: int = 200_000) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._spent: OrderedDict[bytes, int] = OrderedDict()

    def spend(self, nonce: bytes, expires: int, now: datetime) -> bool:
        """Mark ``nonce`` spent; False when it already was."""
        with self._lock:
            if nonce in self._spent:
                return False
            self._spent[nonce] = expires
            stamp = now.timestamp()
            while self._spent and (len(self._spent) > self._limit or next(iter(self._spent.values())) <= stamp):
                self._spent.popitem(last=False)
            return True

    def __len__(self) -> int:
        return len(self._spent)
