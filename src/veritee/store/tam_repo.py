"""Repository functions of the Trusted Application Manager over the TAM tables (``veritee.store.tam_models``).

Every function takes the :class:`~sqlalchemy.orm.Session` of a :meth:`veritee.store.db.Database.transaction` (the
only way to hold one) and neither commits nor rolls back: the caller's transaction decides. Lookups of one record
raise :class:`~veritee.errors.NotFoundError`; unique-constraint violations surface as ConflictError when the
transaction flushes or commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from veritee.errors import ConflictError, NotFoundError
from veritee.store.tam_models import (
    AdminToken,
    AttestationStatus,
    Deployment,
    Device,
    DeviceComponent,
    TcSigner,
    TeepToken,
    TrustedComponent,
)

__all__ = [
    "add_deployment",
    "add_signer",
    "add_tc",
    "admin_token_by_hash",
    "all_device_keys",
    "consume_teep_token",
    "create_admin_token",
    "create_device",
    "delete_deployment",
    "delete_signer",
    "delete_tc",
    "device_by_id",
    "device_by_thumbprint",
    "device_components",
    "devices_by_name",
    "issue_teep_token",
    "list_admin_tokens",
    "list_deployments",
    "list_devices",
    "list_signers",
    "list_tcs",
    "mark_installed",
    "mark_removed",
    "newest_tcs",
    "purge_teep_tokens",
    "record_attestation",
    "revoke_admin_token",
    "set_component",
    "signer_by_id",
    "signer_by_thumbprint",
    "tc_by_id",
    "tc_by_manifest_digest",
    "tcs_by_image_digest",
    "tcs_of_component",
    "teep_tokens",
]


# --- TC signers ---------------------------------------------------------------------------------------------------
def add_signer(s: Session, *, name: str, public_key_pem: str, thumbprint: str) -> TcSigner:
    signer = TcSigner(name=name, public_key_pem=public_key_pem, thumbprint=thumbprint)
    s.add(signer)
    s.flush()
    return signer


def list_signers(s: Session) -> list[TcSigner]:
    return list(s.scalars(select(TcSigner).order_by(TcSigner.id)))


def signer_by_id(s: Session, signer_id: int) -> TcSigner:
    signer = s.get(TcSigner, signer_id)
    if signer is None:
        raise NotFoundError(f"no TC signer {signer_id}")
    return signer


def signer_by_thumbprint(s: Session, thumbprint: str) -> TcSigner | None:
    return s.scalars(select(TcSigner).where(TcSigner.thumbprint == thumbprint)).one_or_none()


def delete_signer(s: Session, signer_id: int) -> None:
    signer = signer_by_id(s, signer_id)
    used = s.scalar(select(func.count()).select_from(TrustedComponent).where(TrustedComponent.signer_id == signer_id))
    if used:
        raise ConflictError(f"TC signer {signer_id} signed {used} catalog version(s); delete those first")
    s.delete(signer)
    s.flush()


# --- catalog ------------------------------------------------------------------------------------------------------
def add_tc(
    s: Session,
    *,
    component_id: str,
    manifest_id: str,
    sequence_number: int,
    envelope: bytes,
    manifest_digest: str,
    image_digest: str | None,
    signer_id: int,
    description: str | None,
) -> TrustedComponent:
    tc = TrustedComponent(
        component_id=component_id,
        manifest_id=manifest_id,
        sequence_number=sequence_number,
        envelope=envelope,
        manifest_digest=manifest_digest,
        image_digest=image_digest,
        signer_id=signer_id,
        description=description,
    )
    s.add(tc)
    s.flush()
    return tc


def list_tcs(s: Session, component_id: str | None = None) -> list[TrustedComponent]:
    query = select(TrustedComponent).order_by(TrustedComponent.component_id, TrustedComponent.sequence_number)
    if component_id is not None:
        query = query.where(TrustedComponent.component_id == component_id)
    return list(s.scalars(query))


def tc_by_id(s: Session, tc_id: int) -> TrustedComponent:
    tc = s.get(TrustedComponent, tc_id)
    if tc is None:
        raise NotFoundError(f"no catalog entry {tc_id}")
    return tc


def tcs_of_component(s: Session, component_id: str) -> list[TrustedComponent]:
    return list_tcs(s, component_id)


def tc_by_manifest_digest(s: Session, manifest_digest: str) -> TrustedComponent | None:
    return s.scalars(select(TrustedComponent).where(TrustedComponent.manifest_digest == manifest_digest)).first()


def tcs_by_image_digest(s: Session, component_id: str, image_digest: str) -> list[TrustedComponent]:
    query = select(TrustedComponent).where(
        TrustedComponent.component_id == component_id, TrustedComponent.image_digest == image_digest
    )
    return list(s.scalars(query.order_by(TrustedComponent.sequence_number)))


def newest_tcs(s: Session, component_ids: Iterable[str] | None = None) -> dict[str, TrustedComponent]:
    """The highest catalog version of each component (of ``component_ids``, or of every component)."""
    newest = (
        select(TrustedComponent.component_id, func.max(TrustedComponent.sequence_number).label("top"))
        .group_by(TrustedComponent.component_id)
        .subquery()
    )
    query = select(TrustedComponent).join(
        newest,
        (TrustedComponent.component_id == newest.c.component_id) & (TrustedComponent.sequence_number == newest.c.top),
    )
    if component_ids is not None:
        query = query.where(TrustedComponent.component_id.in_(list(component_ids)))
    return {tc.component_id: tc for tc in s.scalars(query)}


def delete_tc(s: Session, tc_id: int) -> None:
    s.delete(tc_by_id(s, tc_id))
    s.flush()


# --- devices ------------------------------------------------------------------------------------------------------
def create_device(
    s: Session,
    *,
    key_thumbprint: str,
    cose_key: bytes,
    name: str | None = None,
    attributes: dict[str, Any] | None = None,
    attestation_key: bytes | None = None,
    seen_at: datetime | None = None,
) -> Device:
    device = Device(
        key_thumbprint=key_thumbprint,
        cose_key=cose_key,
        name=name,
        attributes=dict(attributes or {}),
        attestation_key=attestation_key,
        last_seen_at=seen_at,
        attestation_status=AttestationStatus.NONE,
        blocked=False,
    )
    s.add(device)
    s.flush()
    return device


def device_by_id(s: Session, device_id: int) -> Device:
    device = s.get(Device, device_id)
    if device is None:
        raise NotFoundError(f"no device {device_id}")
    return device


def device_by_thumbprint(s: Session, thumbprint: str) -> Device | None:
    return s.scalars(select(Device).where(Device.key_thumbprint == thumbprint)).one_or_none()


def devices_by_name(s: Session, name: str) -> list[Device]:
    return list(s.scalars(select(Device).where(Device.name == name).order_by(Device.id).limit(2)))


def list_devices(s: Session) -> list[Device]:
    return list(s.scalars(select(Device).order_by(Device.id)))


def all_device_keys(s: Session, limit: int) -> list[bytes]:
    """The COSE_Keys of up to ``limit`` devices (for messages that name no kid)."""
    return list(s.scalars(select(Device.cose_key).order_by(Device.id).limit(limit)))


def record_attestation(
    s: Session,
    device: Device,
    *,
    status: AttestationStatus,
    at: datetime,
    claims: dict[str, Any],
    evidence: bytes,
    error: str | None,
) -> None:
    device.attestation_status = status
    device.attestation_at = at
    device.attestation_claims = claims
    device.last_evidence = evidence
    if error is not None:
        device.last_error = error
    s.flush()


# --- what devices have --------------------------------------------------------------------------------------------
def device_components(s: Session, device_id: int) -> dict[str, DeviceComponent]:
    rows = s.scalars(select(DeviceComponent).where(DeviceComponent.device_id == device_id))
    return {row.component_id: row for row in rows}


def set_component(
    s: Session,
    device_id: int,
    component_id: str,
    *,
    sequence_number: int | None,
    image_digest: str | None,
    installed: bool,
    at: datetime,
) -> DeviceComponent:
    row = s.get(DeviceComponent, (device_id, component_id))
    if row is None:
        row = DeviceComponent(device_id=device_id, component_id=component_id)
        s.add(row)
    row.sequence_number = sequence_number
    row.image_digest = image_digest
    row.installed = installed
    row.installed_at = at
    s.flush()
    return row


def mark_installed(
    s: Session, device_id: int, component_id: str, sequence_number: int, image_digest: str | None, at: datetime
) -> DeviceComponent:
    return set_component(
        s, device_id, component_id, sequence_number=sequence_number, image_digest=image_digest, installed=True, at=at
    )


def mark_removed(s: Session, device_id: int, component_id: str, at: datetime) -> None:
    """The component is gone; the row stays with its sequence number (the device's anti-rollback floor)."""
    row = s.get(DeviceComponent, (device_id, component_id))
    if row is not None and row.installed:
        row.installed = False
        row.installed_at = at
        s.flush()


# --- deployment policy --------------------------------------------------------------------------------------------
def add_deployment(
    s: Session, *, component_id: str, selector: dict[str, Any], min_sequence_number: int | None
) -> Deployment:
    deployment = Deployment(component_id=component_id, selector=selector, min_sequence_number=min_sequence_number)
    s.add(deployment)
    s.flush()
    return deployment


def list_deployments(s: Session, component_id: str | None = None) -> list[Deployment]:
    query = select(Deployment).order_by(Deployment.id)
    if component_id is not None:
        query = query.where(Deployment.component_id == component_id)
    return list(s.scalars(query))


def delete_deployment(s: Session, deployment_id: int) -> None:
    deployment = s.get(Deployment, deployment_id)
    if deployment is None:
        raise NotFoundError(f"no deployment {deployment_id}")
    s.delete(deployment)
    s.flush()


# --- admin tokens -------------------------------------------------------------------------------------------------
def create_admin_token(s: Session, *, name: str, token_sha256: str) -> AdminToken:
    token = AdminToken(name=name, token_sha256=token_sha256)
    s.add(token)
    s.flush()
    return token


def admin_token_by_hash(s: Session, token_sha256: str) -> AdminToken | None:
    query = select(AdminToken).where(AdminToken.token_sha256 == token_sha256, AdminToken.revoked_at.is_(None))
    return s.scalars(query).one_or_none()


def list_admin_tokens(s: Session) -> list[AdminToken]:
    return list(s.scalars(select(AdminToken).order_by(AdminToken.id)))


def revoke_admin_token(s: Session, name: str, at: datetime) -> None:
    token = s.scalars(select(AdminToken).where(AdminToken.name == name)).one_or_none()
    if token is None:
        raise NotFoundError(f"no admin token named {name!r}")
    token.revoked_at = at
    s.flush()


# --- TEEP tokens --------------------------------------------------------------------------------------------------
def issue_teep_token(
    s: Session, token: str, *, device_id: int | None, issued_at: datetime, expires_at: datetime
) -> None:
    s.add(TeepToken(token=token, device_id=device_id, issued_at=issued_at, expires_at=expires_at))
    s.flush()


def consume_teep_token(s: Session, token: str, now: datetime) -> bool:
    """Mark ``token`` used, atomically: True only for the first use of a known token before it expires (one winner
    across every TAM replica sharing the database)."""
    result = s.execute(
        update(TeepToken)
        .where(TeepToken.token == token, TeepToken.used_at.is_(None), TeepToken.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


def purge_teep_tokens(s: Session, now: datetime) -> int:
    """Delete expired tokens (an expired token is refused whether or not its row exists)."""
    result = s.execute(
        delete(TeepToken).where(TeepToken.expires_at <= now).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def teep_tokens(s: Session, tokens: Sequence[str]) -> list[TeepToken]:
    return list(s.scalars(select(TeepToken).where(TeepToken.token.in_(list(tokens)))))
