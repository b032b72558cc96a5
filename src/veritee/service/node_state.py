"""The node agent's persistent identity: its AK (a blob only this TPM can load) and whom it registered with.

Kept as one JSON file in the agent's state directory, written atomically (temporary file, fsync, rename) with mode
0600, so a restarted agent quotes with the same AK and the verifier keeps trusting it without a new registration.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from veritee.errors import ConfigError, DecodeError, ValidationError
from veritee.service.node_wire import b64decode, b64encode
from veritee.tpm.device import AkAlg, AttestationKey, EkKind

__all__ = ["IDENTITY_FILE", "IdentityStore", "NodeIdentity"]

IDENTITY_FILE = "node-identity.json"
_VERSION = 1


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """``registered_with`` is the verifier URL the AK was activated with (None until activation succeeded)."""

    node_id: str
    ak: AttestationKey
    registered_with: str | None = None

    def registered(self, verifier: str) -> NodeIdentity:
        return replace(self, registered_with=verifier)

    def unregistered(self) -> NodeIdentity:
        return replace(self, registered_with=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": _VERSION,
            "node_id": self.node_id,
            "ak": {
                "public": b64encode(self.ak.public),
                "private": b64encode(self.ak.private),
                "name": self.ak.name.hex(),
                "alg": self.ak.alg.value,
                "parent": self.ak.parent.value,
            },
            "registered_with": self.registered_with,
        }

    @classmethod
    def from_json(cls, value: object) -> NodeIdentity:
        if not isinstance(value, dict) or value.get("version") != _VERSION:
            raise ValidationError(f"not a version {_VERSION} node identity")
        ak = value.get("ak")
        node_id = value.get("node_id")
        registered = value.get("registered_with")
        if not isinstance(ak, dict) or not isinstance(node_id, str):
            raise ValidationError("node identity lacks node_id or ak")
        if registered is not None and not isinstance(registered, str):
            raise ValidationError("node identity registered_with must be a URL or null")
        try:
            name = bytes.fromhex(str(ak.get("name")))
            alg = AkAlg(str(ak.get("alg")))
            parent = EkKind(str(ak.get("parent")))
        except ValueError as exc:
            raise ValidationError(f"node identity AK: {exc}") from None
        key = AttestationKey(
            public=b64decode(ak.get("public"), "AK public"),
            private=b64decode(ak.get("private"), "AK private"),
            name=name,
            alg=alg,
            parent=parent,
        )
        return cls(node_id=node_id, ak=key, registered_with=registered)


class IdentityStore:
    """Reads and writes :class:`NodeIdentity` in ``state_dir / IDENTITY_FILE``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / IDENTITY_FILE

    def load(self) -> NodeIdentity | None:
        """The saved identity, None when there is none; ConfigError when the file is unreadable or damaged."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the node identity {self.path}: {exc}") from exc
        try:
            return NodeIdentity.from_json(json.loads(text))
        except (json.JSONDecodeError, ValidationError, DecodeError) as exc:
            raise ConfigError(f"the node identity {self.path} is damaged ({exc}); move it away to start over") from exc

    def save(self, identity: NodeIdentity) -> None:
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(identity.to_json(), f, indent=1)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.path)
        except OSError as exc:
            raise ConfigError(f"cannot write the node identity {self.path}: {exc}") from exc
