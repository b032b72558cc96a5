"""Plain views of the TAM's records, built inside a transaction and safe to use after it (JSON via ``to_json``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from veritee.service.tam_policy import Selector
from veritee.store.tam_models import Deployment, Device, DeviceComponent, TcSigner, TrustedComponent

__all__ = ["ComponentView", "DeploymentView", "DeviceView", "SignerView", "TcView"]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@dataclass(frozen=True)
class SignerView:
    id: int
    name: str
    thumbprint: str
    public_key_pem: str
    created_at: datetime

    @classmethod
    def of(cls, row: TcSigner) -> SignerView:
        return cls(row.id, row.name, row.thumbprint, row.public_key_pem, row.created_at)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "thumbprint": self.thumbprint,
                "public_key_pem": self.public_key_pem, "created_at": _iso(self.created_at)}  # fmt: skip


@dataclass(frozen=True)
class TcView:
    id: int
    component_id: str
    manifest_id: str
    sequence_number: int
    manifest_digest: str
    image_digest: str | None
    signer_id: int
    size: int
    description: str | None
    created_at: datetime

    @classmethod
    def of(cls, row: TrustedComponent) -> TcView:
        return cls(row.id, row.component_id, row.manifest_id, row.sequence_number, row.manifest_digest,
                   row.image_digest, row.signer_id, len(row.envelope), row.description, row.created_at)  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "component_id": self.component_id, "manifest_id": self.manifest_id,
                "sequence_number": self.sequence_number, "manifest_digest": self.manifest_digest,
                "image_digest": self.image_digest, "signer_id": self.signer_id, "size": self.size,
                "description": self.description, "created_at": _iso(self.created_at)}  # fmt: skip


@dataclass(frozen=True)
class ComponentView:
    component_id: str
    sequence_number: int | None
    image_digest: str | None
    installed: bool
    changed_at: datetime

    @classmethod
    def of(cls, row: DeviceComponent) -> ComponentView:
        return cls(row.component_id, row.sequence_number, row.image_digest, row.installed, row.installed_at)

    def to_json(self) -> dict[str, Any]:
        return {"component_id": self.component_id, "sequence_number": self.sequence_number,
                "image_digest": self.image_digest, "installed": self.installed,
                "changed_at": _iso(self.changed_at)}  # fmt: skip


@dataclass(frozen=True)
class DeviceView:
    id: int
    name: str | None
    key_thumbprint: str
    attributes: dict[str, Any]
    last_seen_at: datetime | None
    attestation_status: str
    attestation_at: datetime | None
    attestation: dict[str, Any] | None
    has_attestation_key: bool
    blocked: bool
    blocked_reason: str | None
    last_error: str | None
    components: tuple[ComponentView, ...]
    created_at: datetime

    @classmethod
    def of(cls, row: Device) -> DeviceView:
        return cls(
            id=row.id,
            name=row.name,
            key_thumbprint=row.key_thumbprint,
            attributes=dict(row.attributes or {}),
            last_seen_at=row.last_seen_at,
            attestation_status=row.attestation_status.value,
            attestation_at=row.attestation_at,
            attestation=dict(row.attestation_claims) if row.attestation_claims is not None else None,
            has_attestation_key=row.attestation_key is not None,
            blocked=row.blocked,
            blocked_reason=row.blocked_reason,
            last_error=row.last_error,
            components=tuple(ComponentView.of(c) for c in row.components),
            created_at=row.created_at,
        )

    @property
    def installed(self) -> dict[str, int | None]:
        """Installed component -> sequence number (None when unknown)."""
        return {c.component_id: c.sequence_number for c in self.components if c.installed}

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "key_thumbprint": self.key_thumbprint,
            "attributes": self.attributes,
            "last_seen_at": _iso(self.last_seen_at),
            "attestation_status": self.attestation_status,
            "attestation_at": _iso(self.attestation_at),
            "attestation": self.attestation,
            "has_attestation_key": self.has_attestation_key,
            "blocked": self.blocked,
            "blocked_reason": self.blocked_reason,
            "last_error": self.last_error,
            "components": [c.to_json() for c in self.components],
            "created_at": _iso(self.created_at),
        }


@dataclass(frozen=True)
class DeploymentView:
    id: int
    component_id: str
    selector: str
    min_sequence_number: int | None
    created_at: datetime

    @classmethod
    def of(cls, row: Deployment) -> DeploymentView:
        selector = Selector.from_json(row.selector).text()
        return cls(row.id, row.component_id, selector, row.min_sequence_number, row.created_at)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "component_id": self.component_id, "selector": self.selector,
                "min_sequence_number": self.min_sequence_number, "created_at": _iso(self.created_at)}  # fmt: skip
