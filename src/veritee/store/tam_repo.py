"""Repository functions of the Trusted Application Manager over the TAM tables (``veritee.store.tam_models``).

Every function takes the :class:`~sqlalchemy.orm.Session` of a :meth:`veritee.store.db.Database.transaction` (the
only way to hold one) and neither commits nor rolls back: the caller's transaction decides. Lookups of one record
raise :class:`~veritee.errors.NotFoundError`; unique-constraint violations surface as ConflictError when the
transaction flushes or commits.

The functions a TEEP session calls on every message (``teep_device``, ``enrol_device``, ``touch_device``,
``component_states``, ``upsert_component``, ``mark_removed``, ``deployment_rules``, ``newest_versions``,
``versions_of``, ``envelopes_by_id``, the TEEP token functions) are prebuilt Core statements on the session's
connection: no ORM objects, no unit of work, compiled once. They read and write the same rows as the ORM functions;
an ORM object of such a row loaded earlier in the same transaction is stale afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, cast

from sqlalchemy import Table, Update, and_, bindparam, delete, func, insert, select, update
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
    "ComponentState",
    "DeviceChanges",
    "DeviceRecord",
    "VersionRecord",
    "add_deployment",
    "add_signer",
    "add_tc",
    "admin_token_by_hash",
    "component_states",
    "consume_teep_token",
    "create_admin_token",
    "create_device",
    "delete_deployment",
    "delete_signer",
    "delete_tc",
    "deployment_rules",
    "device_by_id",
    "device_by_thumbprint",
    "devices_by_name",
    "enrol_device",
    "envelopes_by_id",
    "issue_teep_token",
    "list_admin_tokens",
    "list_deployments",
    "list_devices",
    "list_signers",
    "list_tcs",
    "mark_installed",
    "mark_removed",
    "newest_tcs",
    "newest_versions",
    "purge_teep_tokens",
    "revoke_admin_token",
    "sequence_numbers_by_image_digest",
    "set_component",
    "signer_by_id",
    "signer_by_thumbprint",
    "tc_by_id",
    "tc_by_manifest_digest",
    "tcs_by_image_digest",
    "teep_device",
    "teep_device_keys",
    "teep_tokens",
    "touch_device",
    "upsert_component",
    "versions_of",
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


# --- what devices have --------------------------------------------------------------------------------------------
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
    s.connection().execute(_REMOVE_COMPONENT, {"d": device_id, "c": component_id, "at": at})


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
_TOKENS: Final = cast(Table, TeepToken.__table__)
_INSERT_TOKEN: Final = insert(_TOKENS)
_CONSUME_TOKEN: Final = (
    update(_TOKENS)
    .where(_TOKENS.c.token == bindparam("t"), _TOKENS.c.used_at.is_(None), _TOKENS.c.expires_at > bindparam("now"))
    .values(used_at=bindparam("now"))
)
_PURGE_TOKENS: Final = delete(_TOKENS).where(_TOKENS.c.expires_at <= bindparam("now"))


def issue_teep_token(
    s: Session, token: str, *, device_id: int | None, issued_at: datetime, expires_at: datetime
) -> None:
    s.connection().execute(
        _INSERT_TOKEN, {"token": token, "device_id": device_id, "issued_at": issued_at, "expires_at": expires_at}
    )


def consume_teep_token(s: Session, token: str, now: datetime) -> bool:
    """Mark ``token`` used, atomically: True only for the first use of a known token before it expires (one winner
    across every TAM replica sharing the database)."""
    result = s.connection().execute(_CONSUME_TOKEN, {"t": token, "now": now})
    return bool(result.rowcount == 1)


def purge_teep_tokens(s: Session, now: datetime) -> int:
    """Delete expired tokens (an expired token is refused whether or not its row exists)."""
    return int(s.connection().execute(_PURGE_TOKENS, {"now": now}).rowcount or 0)


def teep_tokens(s: Session, tokens: Sequence[str]) -> list[TeepToken]:
    return list(s.scalars(select(TeepToken).where(TeepToken.token.in_(list(tokens)))))


# --- what a TEEP session reads and writes (Core statements, see the module docstring) ------------------------------
_DEVICES: Final = cast(Table, Device.__table__)
_COMPONENTS: Final = cast(Table, DeviceComponent.__table__)
_TCS: Final = cast(Table, TrustedComponent.__table__)
_DEPLOYMENTS: Final = cast(Table, Deployment.__table__)


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A device as a TEEP session needs it."""

    id: int
    key_thumbprint: str
    attributes: Mapping[str, Any]
    attestation_key: bytes | None
    blocked: bool

    @classmethod
    def of(cls, device: Device) -> DeviceRecord:
        return cls(device.id, device.key_thumbprint, dict(device.attributes or {}), device.attestation_key,
                   device.blocked)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ComponentState:
    """A row of ``device_components`` (what a device has or had)."""

    sequence_number: int | None
    image_digest: str | None
    installed: bool


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """A catalog version without its envelope."""

    id: int
    component_id: str
    manifest_id: str
    sequence_number: int
    manifest_digest: str
    image_digest: str | None


_DEVICE_COLUMNS: Final = (_DEVICES.c.id, _DEVICES.c.key_thumbprint, _DEVICES.c.attributes,
                          _DEVICES.c.attestation_key, _DEVICES.c.blocked)  # fmt: skip
_DEVICE_BY_THUMBPRINT: Final = select(*_DEVICE_COLUMNS).where(_DEVICES.c.key_thumbprint == bindparam("tp"))
_DEVICE_KEYS: Final = select(_DEVICES.c.cose_key, _DEVICES.c.key_thumbprint, _DEVICES.c.attestation_key).where(
    _DEVICES.c.key_thumbprint.in_(bindparam("tps", expanding=True))
)
_DEVICE_KEYS_ANY: Final = (
    select(_DEVICES.c.cose_key, _DEVICES.c.key_thumbprint, _DEVICES.c.attestation_key)
    .order_by(_DEVICES.c.id)
    .limit(bindparam("n"))
)
_INSERT_DEVICE: Final = insert(_DEVICES)
_COMPONENT_STATES: Final = select(
    _COMPONENTS.c.component_id, _COMPONENTS.c.sequence_number, _COMPONENTS.c.image_digest, _COMPONENTS.c.installed
).where(_COMPONENTS.c.device_id == bindparam("d"))
_COMPONENT_KEY: Final = and_(_COMPONENTS.c.device_id == bindparam("d"), _COMPONENTS.c.component_id == bindparam("c"))
_UPDATE_COMPONENT: Final = (
    update(_COMPONENTS)
    .where(_COMPONENT_KEY)
    .values(
        sequence_number=bindparam("seq"),
        image_digest=bindparam("digest"),
        installed=bindparam("inst"),
        installed_at=bindparam("at"),
    )
)
_REMOVE_COMPONENT: Final = (
    update(_COMPONENTS)
    .where(_COMPONENT_KEY, _COMPONENTS.c.installed.is_(True))
    .values(installed=False, installed_at=bindparam("at"))
)
_INSERT_COMPONENT: Final = insert(_COMPONENTS)
_DEPLOYMENT_RULES: Final = select(
    _DEPLOYMENTS.c.component_id, _DEPLOYMENTS.c.selector, _DEPLOYMENTS.c.min_sequence_number
).order_by(_DEPLOYMENTS.c.id)
_VERSION_COLUMNS: Final = (_TCS.c.id, _TCS.c.component_id, _TCS.c.manifest_id, _TCS.c.sequence_number,
                           _TCS.c.manifest_digest, _TCS.c.image_digest)  # fmt: skip
_TOPS: Final = (
    select(_TCS.c.component_id, func.max(_TCS.c.sequence_number).label("top"))
    .where(_TCS.c.component_id.in_(bindparam("cids", expanding=True)))
    .group_by(_TCS.c.component_id)
    .subquery()
)
_NEWEST: Final = select(*_VERSION_COLUMNS).join(
    _TOPS, and_(_TCS.c.component_id == _TOPS.c.component_id, _TCS.c.sequence_number == _TOPS.c.top)
)
_VERSIONS_OF: Final = select(*_VERSION_COLUMNS).where(_TCS.c.component_id.in_(bindparam("cids", expanding=True)))
_ENVELOPES: Final = select(_TCS.c.id, _TCS.c.envelope).where(_TCS.c.id.in_(bindparam("ids", expanding=True)))
_SEQUENCES_BY_DIGEST: Final = select(_TCS.c.sequence_number).where(
    _TCS.c.component_id == bindparam("c"), _TCS.c.image_digest == bindparam("digest")
)


def teep_device(s: Session, thumbprint: str) -> DeviceRecord | None:
    row = s.connection().execute(_DEVICE_BY_THUMBPRINT, {"tp": thumbprint}).first()
    if row is None:
        return None
    return DeviceRecord(row[0], row[1], dict(row[2] or {}), row[3], bool(row[4]))


def teep_device_keys(
    s: Session, thumbprints: Sequence[str] | None, limit: int
) -> list[tuple[bytes, str, bytes | None]]:
    """(COSE_Key, thumbprint, attestation key) of the devices with these key thumbprints, or (None) of up to
    ``limit`` devices (for messages that name no kid)."""
    if thumbprints is None:
        rows = s.connection().execute(_DEVICE_KEYS_ANY, {"n": limit})
    elif not thumbprints:
        return []
    else:
        rows = s.connection().execute(_DEVICE_KEYS, {"tps": list(thumbprints)})
    return [(bytes(r[0]), str(r[1]), None if r[2] is None else bytes(r[2])) for r in rows]


@dataclass(frozen=True, slots=True)
class DeviceChanges:
    """What a TEEP message changes on its device row besides ``last_seen_at``: an attestation result (status,
    claims, evidence) and, with ``set_error``, ``last_error`` (None clears it)."""

    attestation: tuple[AttestationStatus, dict[str, Any], bytes] | None = None
    set_error: bool = False
    error: str | None = None

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.attestation is not None:
            status, claims, evidence = self.attestation
            out = {"status": status, "claims": claims, "evidence": evidence}
        if self.set_error:
            out["error"] = self.error
        return out


def _touch(attestation: bool, error: bool) -> Update:
    values: dict[str, Any] = {"last_seen_at": bindparam("at")}
    if attestation:
        values |= {"attestation_status": bindparam("status"), "attestation_at": bindparam("at"),
                   "attestation_claims": bindparam("claims"), "last_evidence": bindparam("evidence")}  # fmt: skip
    if error:
        values["last_error"] = bindparam("error")
    where = and_(_DEVICES.c.id == bindparam("d"), _DEVICES.c.key_thumbprint == bindparam("tp"))
    return update(_DEVICES).where(where).values(values)


_TOUCH: Final = {(a, e): _touch(a, e) for a in (False, True) for e in (False, True)}


def enrol_device(
    s: Session, *, key_thumbprint: str, cose_key: bytes, seen_at: datetime, changes: DeviceChanges | None = None
) -> DeviceRecord:
    """A device enrolled on first contact (no name, no attributes), with what its first message ``changes``."""
    values: dict[str, Any] = {"key_thumbprint": key_thumbprint, "cose_key": cose_key, "name": None, "attributes": {},
                              "last_seen_at": seen_at, "attestation_status": AttestationStatus.NONE,
                              "blocked": False, "created_at": seen_at}  # fmt: skip
    if changes is not None and changes.attestation is not None:
        status, claims, evidence = changes.attestation
        values |= {"attestation_status": status, "attestation_at": seen_at, "attestation_claims": claims,
                   "last_evidence": evidence}  # fmt: skip
    if changes is not None and changes.set_error:
        values["last_error"] = changes.error
    inserted = s.connection().execute(_INSERT_DEVICE, values).inserted_primary_key
    assert inserted is not None
    return DeviceRecord(int(inserted[0]), key_thumbprint, {}, None, False)


def touch_device(s: Session, device: DeviceRecord, seen_at: datetime, changes: DeviceChanges) -> bool:
    """Record contact (and ``changes``) on ``device`` in one UPDATE; False when it is gone (or has another key)."""
    statement = _TOUCH[changes.attestation is not None, changes.set_error]
    params = {"d": device.id, "tp": device.key_thumbprint, "at": seen_at, **changes.values()}
    return bool(s.connection().execute(statement, params).rowcount == 1)


def component_states(s: Session, device_id: int) -> dict[str, ComponentState]:
    rows = s.connection().execute(_COMPONENT_STATES, {"d": device_id})
    return {str(r[0]): ComponentState(r[1], r[2], bool(r[3])) for r in rows}


def upsert_component(
    s: Session, device_id: int, component_id: str, *, sequence_number: int | None, image_digest: str | None,
    installed: bool, at: datetime, exists: bool = True,
) -> None:  # fmt: skip
    """:func:`set_component` without ORM objects: UPDATE, or INSERT when the device has no row for it (at once
    when the caller knows, ``exists=False``, that it has none)."""
    params = {"d": device_id, "c": component_id, "seq": sequence_number, "digest": image_digest,
              "inst": installed, "at": at}  # fmt: skip
    if not exists or s.connection().execute(_UPDATE_COMPONENT, params).rowcount == 0:
        s.connection().execute(
            _INSERT_COMPONENT,
            {"device_id": device_id, "component_id": component_id, "sequence_number": sequence_number,
             "image_digest": image_digest, "installed": installed, "installed_at": at},
        )  # fmt: skip


def deployment_rules(s: Session) -> list[tuple[str, Any, int | None]]:
    """(component id, stored selector, minimum sequence number) of every deployment, oldest first."""
    return [(str(r[0]), r[1], r[2]) for r in s.connection().execute(_DEPLOYMENT_RULES)]


def _version(row: Any) -> VersionRecord:
    return VersionRecord(int(row[0]), str(row[1]), str(row[2]), int(row[3]), str(row[4]), row[5])


def newest_versions(s: Session, component_ids: Iterable[str]) -> dict[str, VersionRecord]:
    """:func:`newest_tcs` of ``component_ids``, without envelopes."""
    wanted = sorted(set(component_ids))
    if not wanted:
        return {}
    return {v.component_id: v for v in map(_version, s.connection().execute(_NEWEST, {"cids": wanted}))}


def versions_of(s: Session, component_ids: Iterable[str]) -> dict[str, dict[int, VersionRecord]]:
    """Every catalog version of ``component_ids``, by component and sequence number, without envelopes."""
    wanted = sorted(set(component_ids))
    out: dict[str, dict[int, VersionRecord]] = {cid: {} for cid in wanted}
    if wanted:
        for version in map(_version, s.connection().execute(_VERSIONS_OF, {"cids": wanted})):
            out[version.component_id][version.sequence_number] = version
    return out


def envelopes_by_id(s: Session, tc_ids: Sequence[int]) -> dict[int, bytes]:
    """The envelopes of these catalog versions (NotFoundError when one was deleted meanwhile)."""
    if not tc_ids:
        return {}
    found = {int(r[0]): bytes(r[1]) for r in s.connection().execute(_ENVELOPES, {"ids": list(tc_ids)})}
    missing = sorted(set(tc_ids) - set(found))
    if missing:
        raise NotFoundError(f"no catalog entry {missing[0]}")
    return found


def sequence_numbers_by_image_digest(s: Session, component_id: str, image_digest: str) -> list[int]:
    """The sequence numbers of the catalog versions of ``component_id`` whose image has ``image_digest``."""
    rows = s.connection().execute(_SEQUENCES_BY_DIGEST, {"c": component_id, "digest": image_digest})
    return sorted(int(r[0]) for r in rows)
