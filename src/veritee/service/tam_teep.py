"""TEEP sessions of the TAM across HTTP requests (draft-ietf-teep-otrp-over-http: one POST per Agent message).

:meth:`TeepEndpoint.handle` takes a request body and returns the next TAM message, or None when there is nothing to
send (the session ends, the transport answers 204):

* an empty body opens a session: a signed QueryRequest with a fresh token (and a challenge when attestation is
  required);
* any other body is an Agent message. It is correlated with its session by the TEEP token it answers: the
  :class:`~veritee.teep.tam.TamSession` waits in memory, keyed by the token of its outstanding request, and the token
  is also stored in ``teep_tokens`` so that it is accepted once across every replica sharing the database and
  expires. A QueryResponse enrols an unknown Agent that presents its key (when allowed), records its evidence's
  verdict and the Trusted Components it reports, and is answered with an Update when the deployment policy wants
  something changed (only after a passing attestation, never for a blocked device); Success / Error to an Update are
  recorded and end the session.

A body that cannot be decoded or verified raises its typed error before anything is written (the session keeps
waiting for the genuine answer); nothing is stored unless the message verified and its token was accepted.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from typing import Final

from sqlalchemy.orm import Session

from veritee import cbor
from veritee.cose import CoseKey
from veritee.errors import (
    DecodeError,
    FreshnessError,
    ProtocolError,
    StorageError,
    UntrustedSignerError,
    ValidationError,
    VeriteeError,
)
from veritee.service.tam import TamService, utc
from veritee.service.tam_attest import AttestationRequest, Verdict, attest
from veritee.service.tam_ids import component_id_from_text, component_id_to_text, digest_from_parts, digest_text
from veritee.service.tam_policy import (
    CatalogVersion,
    DeviceTc,
    Selector,
    UpdatePlan,
    plan_update,
    wanted_components,
)
from veritee.store import tam_repo as repo
from veritee.store.tam_models import Device, TrustedComponent
from veritee.teep.codes import DataItem
from veritee.teep.cose_wrap import peek_message
from veritee.teep.events import (
    AgentAuthenticated,
    DeviceStateReported,
    ErrorReceived,
    Event,
    EvidenceReceived,
    SuccessReceived,
)
from veritee.teep.messages import decode_message
from veritee.teep.tam import TamConfig, TamSession, TamState

__all__ = ["SessionCapacityError", "TeepEndpoint", "TokenReusedError", "UnknownSessionError", "message_token"]

MAX_RESTARTS: Final = 2


class UnknownSessionError(ProtocolError):
    """The token answers no session this TAM holds (never issued, already answered, expired, or another replica's)."""


class TokenReusedError(FreshnessError):
    """The token was already used (possibly at another replica) or has expired in the shared store."""


class SessionCapacityError(StorageError):
    """Too many TEEP sessions are open; the Agent should retry later."""


def message_token(data: bytes, *, compat: bool = False) -> bytes:
    """The token of a (COSE-wrapped) TEEP message, read WITHOUT verification: only to find its session."""
    message = decode_message(peek_message(data).payload, compat=compat)
    if message.token is None:
        raise ValidationError("the TEEP message carries no token")
    return message.token


@dataclass
class _Entry:
    session: TamSession
    expires: float
    device_id: int | None = None
    plan: UpdatePlan | None = None
    restarts: int = 0


class SessionRegistry:
    """Sessions waiting for the Agent's next message, by the token of the TAM's outstanding request."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._lock = threading.Lock()
        self._entries: dict[bytes, _Entry] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def put(self, token: bytes, entry: _Entry, now: float) -> None:
        with self._lock:
            if len(self._entries) >= self.capacity:
                self._purge(now)
            if len(self._entries) >= self.capacity:
                raise SessionCapacityError(f"{self.capacity} TEEP sessions are open; try again later")
            self._entries[token] = entry

    def take(self, token: bytes, now: float) -> _Entry | None:
        with self._lock:
            entry = self._entries.pop(token, None)
        return entry if entry is not None and entry.expires >= now else None

    def purge(self, now: float) -> int:
        with self._lock:
            return self._purge(now)

    def _purge(self, now: float) -> int:
        stale = [token for token, entry in self._entries.items() if entry.expires < now]
        for token in stale:
            del self._entries[token]
        return len(stale)


class TeepEndpoint:
    """The TAM side of TEEP over HTTP for one :class:`TamService`."""

    def __init__(self, service: TamService) -> None:
        self.service = service
        self.config = service.config
        self.db = service.db
        self.sessions = SessionRegistry(self.config.max_sessions)
        items = DataItem.TRUSTED_COMPONENTS | (DataItem.ATTESTATION if self.config.require_attestation else 0)
        self._tam_config = TamConfig(
            tam_keys=self.config.tam_keys,
            learn_agent_keys=self.config.enroll_on_first_contact,
            supported_cipher_suites=self.config.cipher_suites,
            data_items=DataItem(items),
            require_attestation=self.config.require_attestation,
            token_lifetime=self.config.token_lifetime,
            compat=self.config.compat,
            random=self.config.random,
        )

    # --- entry point ------------------------------------------------------------------------------------------
    def handle(self, body: bytes) -> bytes | None:
        now = self.config.clock()
        if not body:
            return self._open(now)
        token = message_token(body, compat=self.config.compat)
        entry = self.sessions.take(token, now)
        if entry is None:
            raise UnknownSessionError("the message answers no open TEEP session (unknown, answered or expired token)")
        session = entry.session
        if session.agent_key is None:
            session.config = replace(self._tam_config, agent_keys=self._candidate_keys(body))
        try:
            events = session.receive(body, now)
        except VeriteeError:
            if session.state not in (TamState.ERROR, TamState.CLOSED):
                self.sessions.put(token, entry, now)  # dropped: keep waiting for the genuine answer
            raise
        verdict = self._appraise(session, events, token, now)
        with self.db.transaction() as s:
            if not repo.consume_teep_token(s, token.hex(), utc(now)):
                raise TokenReusedError("this TEEP token was already used or has expired")
            device = self._device(s, session, events, now)
            entry.device_id = device.id
            for event in events:
                self._record(s, entry, device, event, verdict, now)
            reply = self._next(s, entry, device, events, now)
        if reply is not None:
            self.sessions.put(message_token(reply), entry, now)
        return reply

    def _open(self, now: float) -> bytes:
        session = TamSession(self._tam_config)
        data = session.start(now)
        token = message_token(data)
        self.sessions.purge(now)
        self.sessions.put(token, _Entry(session, now + self.config.token_lifetime), now)  # capacity first
        try:
            with self.db.transaction() as s:
                repo.purge_teep_tokens(s, utc(now))
                self._issue(s, data, None, now)
        except VeriteeError:
            self.sessions.take(token, now)
            raise
        return data

    def _issue(self, s: Session, data: bytes, device_id: int | None, now: float) -> None:
        token = message_token(data)
        expires = now + self.config.token_lifetime
        repo.issue_teep_token(s, token.hex(), device_id=device_id, issued_at=utc(now), expires_at=utc(expires))

    # --- who is talking ---------------------------------------------------------------------------------------
    def _candidate_keys(self, body: bytes) -> tuple[CoseKey, ...]:
        """Trust anchors for an Agent's first message: the registered device its kid names, or (no kid) every
        registered device key up to a bound."""
        try:
            kids = [k for k in peek_message(body).kids if k is not None]
        except DecodeError:
            return ()
        with self.db.transaction() as s:
            if kids:
                devices = [repo.device_by_thumbprint(s, kid.hex()) for kid in kids]
                raw = [d.cose_key for d in devices if d is not None]
            else:
                raw = repo.all_device_keys(s, self.config.max_keyless_candidates)
        return tuple(CoseKey.from_cose_key(k) for k in raw)

    def _device(self, s: Session, session: TamSession, events: list[Event], now: float) -> Device:
        key = session.agent_key
        assert key is not None  # receive() verified a signature
        thumbprint = key.thumbprint().hex()
        device = repo.device_by_thumbprint(s, thumbprint)
        if device is None:
            learned = any(isinstance(e, AgentAuthenticated) and e.learned for e in events)
            if not learned or not self.config.enroll_on_first_contact:
                raise UntrustedSignerError("the Agent's key belongs to no registered device")
            device = repo.create_device(
                s, key_thumbprint=thumbprint, cose_key=cbor.encode(key.public().to_cose_key()), seen_at=utc(now)
            )
        device.last_seen_at = utc(now)
        return device

    # --- attestation ------------------------------------------------------------------------------------------
    def _appraise(self, session: TamSession, events: list[Event], token: bytes, now: float) -> Verdict | None:
        evidence = next((e for e in events if isinstance(e, EvidenceReceived)), None)
        if evidence is None:
            return None
        key = session.agent_key
        assert key is not None
        thumbprint = key.thumbprint().hex()
        with self.db.transaction() as s:
            device = repo.device_by_thumbprint(s, thumbprint)
            own = device.attestation_key if device is not None else None
        request = AttestationRequest(
            payload=evidence.evidence,
            media_type=evidence.format,
            challenge=evidence.challenge if evidence.challenge is not None else token,
            agent_key=key,
            device_keys=(CoseKey.from_cose_key(own),) if own is not None else (),
            node=thumbprint,
            now=now,
        )
        return attest(request, self.config.attestation)

    # --- recording what happened ------------------------------------------------------------------------------
    def _record(
        self, s: Session, entry: _Entry, device: Device, event: Event, verdict: Verdict | None, now: float
    ) -> None:
        if isinstance(event, EvidenceReceived) and verdict is not None:
            repo.record_attestation(
                s,
                device,
                status=verdict.status,
                at=utc(now),
                claims=verdict.to_json(),
                evidence=event.evidence,
                error=None if verdict.passed else f"attestation failed: {verdict.reason}",
            )
            passed_claims = verdict.claims if verdict.passed else None
            entry.session.attestation_result(verdict.passed, passed_claims)
        elif isinstance(event, DeviceStateReported):
            self._sync_components(s, device, event, now)
        elif isinstance(event, SuccessReceived):
            self._apply_plan(s, device, entry.plan, event, now)
        elif isinstance(event, ErrorReceived):
            device.last_error = f"TEEP Error {event.code.name} answering {event.during}: {event.msg or ''}".strip()

    def _sync_components(self, s: Session, device: Device, event: DeviceStateReported, now: float) -> None:
        """Make the device's components what its tc-list says (an absent tc-list: nothing installed)."""
        reported: dict[str, str | None] = {}
        for entry in event.tc_list:
            try:
                component_id = component_id_to_text(entry.component_id)
                raw = entry.image_digest
                reported[component_id] = digest_from_parts(*raw) if raw is not None else None
            except ValidationError:
                continue  # an entry we cannot name or read: not ours to manage
        rows = repo.device_components(s, device.id)
        at = utc(now)
        for component_id, digest in reported.items():
            row = rows.get(component_id)
            if row is not None and row.installed and (digest is None or row.image_digest == digest):
                continue  # unchanged (or no digest to tell otherwise)
            matches = repo.tcs_by_image_digest(s, component_id, digest) if digest is not None else []
            seq = max((m.sequence_number for m in matches), default=None)
            repo.set_component(s, device.id, component_id, sequence_number=seq, image_digest=digest,
                               installed=True, at=at)  # fmt: skip
        for component_id, row in rows.items():
            if row.installed and component_id not in reported:
                repo.mark_removed(s, device.id, component_id, at)

    def _apply_plan(
        self, s: Session, device: Device, plan: UpdatePlan | None, event: SuccessReceived, now: float
    ) -> None:
        if plan is None:
            return
        at = utc(now)
        confirmed = {digest_text(r.digest) for r in event.reports if r.success}
        unconfirmed: list[str] = []
        for version in plan.install:
            if event.reports and version.manifest_digest not in confirmed:
                unconfirmed.append(version.component_id)
                continue
            repo.mark_installed(s, device.id, version.component_id, version.sequence_number, version.image_digest, at)
        for version in plan.remove:
            repo.mark_removed(s, device.id, version.component_id, at)
        device.last_error = f"Success without a SUIT report for {', '.join(unconfirmed)}" if unconfirmed else None

    # --- what to send next ------------------------------------------------------------------------------------
    def _next(self, s: Session, entry: _Entry, device: Device, events: list[Event], now: float) -> bytes | None:
        session = entry.session
        if session.state is TamState.READY:
            if device.blocked or (self.config.require_attestation and not session.attestation_passed):
                session.close()
                return None
            plan = self.plan_for(s, device)
            if plan.empty:
                session.close()
                return None
            envelopes = [bytes(repo.tc_by_id(s, v.id).envelope) for v in plan.install]
            unneeded = [component_id_from_text(v.manifest_id) for v in plan.remove]
            data = session.send_update(envelopes, unneeded, now)
            entry.plan = plan
        elif session.state is TamState.IDLE and entry.restarts < MAX_RESTARTS and _retry(events):
            entry.restarts += 1  # ERR_UNSUPPORTED_CIPHER_SUITES with suites in common: ask again with one of them
            data = session.start(now)
        else:
            session.close()
            return None
        entry.expires = now + self.config.token_lifetime
        self._issue(s, data, device.id, now)
        return data

    def preview(self, ref: str | int) -> UpdatePlan:
        """What an Update to the device ``ref`` would carry if it asked now (ignoring attestation and blocking)."""
        with self.db.transaction() as s:
            return self.plan_for(s, self.service.device_row(s, ref))

    def plan_for(self, s: Session, device: Device) -> UpdatePlan:
        """What an Update to ``device`` would carry now (see :func:`veritee.service.tam_policy.plan_update`)."""
        deployments = [
            (d.component_id, Selector.from_json(d.selector), d.min_sequence_number) for d in repo.list_deployments(s)
        ]
        wanted = wanted_components(deployments, device.id, device.key_thumbprint, device.attributes or {})
        has = {
            cid: DeviceTc(cid, row.sequence_number, row.installed)
            for cid, row in repo.device_components(s, device.id).items()
        }
        components = set(wanted) | set(has)
        newest = {cid: _version(tc) for cid, tc in repo.newest_tcs(s, components).items()}
        versions: dict[str, dict[int, CatalogVersion]] = {}
        for cid in set(has) & set(newest):
            versions[cid] = {tc.sequence_number: _version(tc) for tc in repo.tcs_of_component(s, cid)}
        return plan_update(wanted, has, newest, versions)


def _retry(events: list[Event]) -> bool:
    return any(isinstance(e, ErrorReceived) and e.retry_suites for e in events)


def _version(tc: TrustedComponent) -> CatalogVersion:
    return CatalogVersion(tc.id, tc.component_id, tc.manifest_id, tc.sequence_number, tc.manifest_digest,
                          tc.image_digest)  # fmt: skip
