"""Tables of the Trusted Application Manager: devices, the Trusted Component catalog, signers, deployment policy."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Enum, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from veritee.store.base import Base, Timestamped, UtcDateTime


class AttestationStatus(enum.StrEnum):
    """EAR status of a device's newest attestation result (draft-ietf-rats-ear)."""

    NONE = "none"
    AFFIRMING = "affirming"
    WARNING = "warning"
    CONTRAINDICATED = "contraindicated"


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(cls, native_enum=False, length=32, values_callable=lambda c: [m.value for m in c])


class Device(Timestamped, Base):
    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_thumbprint: Mapped[str] = mapped_column(String(128), unique=True)
    cose_key: Mapped[bytes] = mapped_column(LargeBinary)
    name: Mapped[str | None] = mapped_column(String(200))
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    last_seen_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    attestation_status: Mapped[AttestationStatus] = mapped_column(
        _enum(AttestationStatus), default=AttestationStatus.NONE
    )
    attestation_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    attestation_claims: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    last_evidence: Mapped[bytes | None] = mapped_column(LargeBinary)
    attestation_key: Mapped[bytes | None] = mapped_column(LargeBinary)  # COSE_Key that signs this device's EATs
    blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    blocked_reason: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)  # the last TEEP Error or failed attestation, for operators

    components: Mapped[list[DeviceComponent]] = relationship(
        back_populates="device", cascade="all, delete-orphan", order_by="DeviceComponent.component_id"
    )


class TcSigner(Timestamped, Base):
    """A trust anchor for Trusted Component signers: envelopes signed by other keys are refused at upload."""

    __tablename__ = "tc_signers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    public_key_pem: Mapped[str] = mapped_column(Text)
    thumbprint: Mapped[str] = mapped_column(String(128), unique=True)


class TrustedComponent(Timestamped, Base):
    """One version (SUIT sequence number) of a Trusted Component in the catalog.

    ``component_id`` is the Trusted Component (the manifest's first component, as a device lists it in tc-list),
    ``manifest_id`` the manifest component id the device keeps the envelope under (what unneeded-manifest-list
    names); both in the text form of :mod:`veritee.service.tam_ids`. ``image_digest`` is the payload digest the
    manifest names (``sha256:<hex>``), to recognise the version a device reports."""

    __tablename__ = "trusted_components"
    __table_args__ = (UniqueConstraint("component_id", "sequence_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    component_id: Mapped[str] = mapped_column(String(512), index=True)
    manifest_id: Mapped[str] = mapped_column(String(512))
    sequence_number: Mapped[int] = mapped_column(BigInteger)
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
    manifest_digest: Mapped[str] = mapped_column(String(200), index=True)
    image_digest: Mapped[str | None] = mapped_column(String(200))
    signer_id: Mapped[int] = mapped_column(ForeignKey("tc_signers.id"))
    description: Mapped[str | None] = mapped_column(Text)

    signer: Mapped[TcSigner] = relationship()


class Deployment(Timestamped, Base):
    """Deployment policy: a component belongs on the devices a selector matches, at a minimum version."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    component_id: Mapped[str] = mapped_column(String(512), index=True)
    min_sequence_number: Mapped[int | None] = mapped_column(BigInteger)
    selector: Mapped[dict[str, Any]] = mapped_column(JSON)


class DeviceComponent(Base):
    """A Trusted Component a device reported (tc-list) or confirmed (Success to our Update) as installed.

    ``sequence_number`` is the version when known (None: a tc-list entry matching no catalog version). A row outlives
    the component's removal with ``installed`` false: the device keeps its anti-rollback record, so the TAM never
    sends a sequence number at or below it again."""

    __tablename__ = "device_components"

    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    component_id: Mapped[str] = mapped_column(String(512), primary_key=True)
    sequence_number: Mapped[int | None] = mapped_column(BigInteger)
    image_digest: Mapped[str | None] = mapped_column(String(200))
    installed: Mapped[bool] = mapped_column(Boolean, default=True)
    installed_at: Mapped[datetime] = mapped_column(UtcDateTime())

    device: Mapped[Device] = relationship(back_populates="components")


class TeepToken(Base):
    """A TEEP token or challenge the TAM issued: accepted once, until it expires (shared by every TAM replica)."""

    __tablename__ = "teep_tokens"

    token: Mapped[str] = mapped_column(String(128), primary_key=True)
    device_id: Mapped[int | None] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AdminToken(Timestamped, Base):
    """A bearer token for the admin API, stored as its SHA-256."""

    __tablename__ = "admin_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
