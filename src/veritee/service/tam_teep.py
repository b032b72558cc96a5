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
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from sqlalchemy.orm import Session

from veritee import cbor
from veritee.cose import CoseKey
from veritee.errors import (
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
from veritee.service.tam_policy import CatalogVersion, DeviceTc, Selector, UpdatePlan, plan_update, wanted_components
from veritee.store import tam_repo as repo
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
PURGE_INTERVAL: Final = 1.0  # seconds between purges of expired tokens and sessions


class UnknownSessionError(ProtocolError):
    """The token answers no session this TAM holds (never issued, already answered, expired, or another replica's)."""


class TokenReusedError(FreshnessError):
    """The token was already used (possibly at another replica) or has expired in the shared store."""


class SessionCapacityError(StorageError):
    """Too many TEEP sessions are open; the Agent should retry later."""


def message_token(data: bytes, *, compat: bool = False) -> bytes:
    """The token of a (COSE-wrapped) TEEP message, read WITHOUT verification: only to find its session."""
    return _peek(data, compat)[0]


def _peek(data: bytes, compat: bool) -> tuple[bytes, list[bytes]]:
    """(token, kids) of a TEEP message, read without verification."""
    peeked = peek_message(data)
    message = decode_message(peeked.payload, compat=compat)
    if message.token is None:
        raise ValidationError("the TEEP message carries no token")
    return message.token, [k for k in peeked.kids if k is not None]


@dataclass
class _Entry:
    session: TamSession
    expires: float
    device_id: int | None = None
    plan: UpdatePlan | None = None
    restarts: int = 0
    device: repo.DeviceRecord | None = None
    rows: frozenset[str] = frozenset()  # components the device had a row for when the plan was made


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
    """The TAM side of TEEP over HTTP for one :class:`TamService`.

    Hot path: every message is at most one read transaction (the Agent's key on its first message) and one write
    transaction of a few prebuilt Core statements; on SQLite the write transactions of this process take a lock
    first, so that concurrent sessions queue here instead of in SQLite's sleeping busy handler. Expired tokens and
    sessions are purged at most every ``PURGE_INTERVAL`` seconds (expired ones are refused anyway).
    """

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
        self._writes: AbstractContextManager[Any] = threading.Lock() if self.db.dialect == "sqlite" else nullcontext()
        self._purged_at: float | None = None

    # --- entry point ------------------------------------------------------------------------------------------
    def handle(self, body: bytes) -> bytes | None:
        now = self.config.clock()
        if not body:
            return self._open(now)
        token, kids = _peek(body, self.config.compat)
        entry = self.sessions.take(token, now)
        if entry is None:
            raise UnknownSessionError("the message answers no open TEEP session (unknown, answered or expired token)")
        session = entry.session
        known: dict[str, bytes | None] = {}
        if session.agent_key is None:
            keys, known = self._candidate_keys(kids)
            session.config = replace(self._tam_config, agent_keys=keys)
        try:
            events = session.receive(body, now)
        except VeriteeError:
            if session.state not in (TamState.ERROR, TamState.CLOSED):
                self.sessions.put(token, entry, now)  # dropped: keep waiting for the genuine answer
            raise
        verdict = self._appraise(session, events, token, now, known)
        changes = _changes(entry, events, verdict)
        at = utc(now)
        with self._writes, self.db.transaction() as s:
            if not repo.consume_teep_token(s, token.hex(), at):
                raise TokenReusedError("this TEEP token was already used or has expired")
            device, enrolled = self._device(s, entry, session, events, at, changes)
            if not enrolled and not repo.touch_device(s, device, at, changes):
                raise UntrustedSignerError("the Agent's key belongs to no registered device")
            entry.device_id = device.id
            components: dict[str, repo.ComponentState] | None = None
            for event in events:
                if isinstance(event, EvidenceReceived) and verdict is not None:
                    entry.session.attestation_result(verdict.passed, verdict.claims if verdict.passed else None)
                elif isinstance(event, DeviceStateReported):
                    components = self._sync_components(s, device, event, at, {} if enrolled else None)
                elif isinstance(event, SuccessReceived):
                    self._apply_plan(s, entry, device, event, at)
            sent = self._next(s, entry, device, components, events, now)
        if sent is None:
            return None
        reply, reply_token = sent
        self.sessions.put(reply_token, entry, now)
        return reply

    def _open(self, now: float) -> bytes:
        session = TamSession(self._tam_config)
        data = session.start(now)
        token = message_token(data)
        purge = self._purged_at is None or not 0 <= now - self._purged_at < PURGE_INTERVAL
        if purge:
            self._purged_at = now
            self.sessions.purge(now)
        self.sessions.put(token, _Entry(session, now + self.config.token_lifetime), now)  # capacity first
        try:
            with self._writes, self.db.transaction() as s:
                if purge:
                    repo.purge_teep_tokens(s, utc(now))
                self._issue(s, token, None, now)
        except VeriteeError:
            self.sessions.take(token, now)
            raise
        return data

    def _issue(self, s: Session, token: bytes, device_id: int | None, now: float) -> None:
        expires = now + self.config.token_lifetime
        repo.issue_teep_token(s, token.hex(), device_id=device_id, issued_at=utc(now), expires_at=utc(expires))

    # --- who is talking ---------------------------------------------------------------------------------------
    def _candidate_keys(self, kids: list[bytes]) -> tuple[tuple[CoseKey, ...], dict[str, bytes | None]]:
        """Trust anchors for an Agent's first message: the registered device its kid names, or (no kid) every
        registered device key up to a bound; and the attestation key of every device looked up (None: it has
        none, or no device has that key), so that the evidence is appraised without another lookup."""
        with self.db.transaction() as s:
            rows = repo.teep_device_keys(s, [k.hex() for k in kids] if kids else None,
                                         self.config.max_keyless_candidates)  # fmt: skip
        known: dict[str, bytes | None] = {kid.hex(): None for kid in kids}
        keys: list[CoseKey] = []
        for cose_key, thumbprint, attestation_key in rows:
            keys.append(CoseKey.from_cose_key(cose_key))
            known[thumbprint] = attestation_key
        return tuple(keys), known

    def _device(
        self,
        s: Session,
        entry: _Entry,
        session: TamSession,
        events: list[Event],
        at: datetime,
        changes: repo.DeviceChanges,
    ) -> tuple[repo.DeviceRecord, bool]:
        """The Agent's device (looked up again when it reports its state; enrolled with ``changes`` when allowed and
        unknown), and whether it was enrolled now."""
        if entry.device is not None and not any(isinstance(e, DeviceStateReported) for e in events):
            return entry.device, False
        key = session.agent_key
        assert key is not None  # receive() verified a signature
        thumbprint = key.thumbprint().hex()
        device = repo.teep_device(s, thumbprint)
        enrolled = False
        if device is None:
            learned = any(isinstance(e, AgentAuthenticated) and e.learned for e in events)
            if not learned or not self.config.enroll_on_first_contact:
                raise UntrustedSignerError("the Agent's key belongs to no registered device")
            cose_key = cbor.encode(key.public().to_cose_key())
            device = repo.enrol_device(s, key_thumbprint=thumbprint, cose_key=cose_key, seen_at=at, changes=changes)
            enrolled = True
        entry.device = device
        return device, enrolled

    # --- attestation ------------------------------------------------------------------------------------------
    def _appraise(
        self, session: TamSession, events: list[Event], token: bytes, now: float, known: dict[str, bytes | None]
    ) -> Verdict | None:
        evidence = next((e for e in events if isinstance(e, EvidenceReceived)), None)
        if evidence is None:
            return None
        key = session.agent_key
        assert key is not None
        thumbprint = key.thumbprint().hex()
        if thumbprint in known:
            own = known[thumbprint]
        else:
            with self.db.transaction() as s:
                device = repo.teep_device(s, thumbprint)
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
    def _sync_components(
        self,
        s: Session,
        device: repo.DeviceRecord,
        event: DeviceStateReported,
        at: datetime,
        rows: dict[str, repo.ComponentState] | None,
    ) -> dict[str, repo.ComponentState]:
        """Make the device's components what its tc-list says (an absent tc-list: nothing installed); returns the
        device's components afterwards (``rows``: what it had, when known without a query)."""
        reported: dict[str, str | None] = {}
        for entry in event.tc_list:
            try:
                component_id = component_id_to_text(entry.component_id)
                raw = entry.image_digest
                reported[component_id] = digest_from_parts(*raw) if raw is not None else None
            except ValidationError:
                continue  # an entry we cannot name or read: not ours to manage
        rows = repo.component_states(s, device.id) if rows is None else rows
        for component_id, digest in reported.items():
            row = rows.get(component_id)
            if row is not None and row.installed and (digest is None or row.image_digest == digest):
                continue  # unchanged (or no digest to tell otherwise)
            matches = repo.sequence_numbers_by_image_digest(s, component_id, digest) if digest is not None else []
            seq = max(matches, default=None)
            repo.upsert_component(s, device.id, component_id, sequence_number=seq, image_digest=digest,
                                  installed=True, at=at)  # fmt: skip
            rows[component_id] = repo.ComponentState(seq, digest, True)
        for component_id, row in list(rows.items()):
            if row.installed and component_id not in reported:
                repo.mark_removed(s, device.id, component_id, at)
                rows[component_id] = repo.ComponentState(row.sequence_number, row.image_digest, False)
        return rows

    def _apply_plan(
        self, s: Session, entry: _Entry, device: repo.DeviceRecord, event: SuccessReceived, at: datetime
    ) -> None:
        plan = entry.plan
        if plan is None:
            return
        confirmed = _confirmed(event)
        for version in plan.install:
            if event.reports and version.manifest_digest not in confirmed:
                continue
            repo.upsert_component(s, device.id, version.component_id, sequence_number=version.sequence_number,
                                  image_digest=version.image_digest, installed=True, at=at,
                                  exists=version.component_id in entry.rows)  # fmt: skip
        for version in plan.remove:
            repo.mark_removed(s, device.id, version.component_id, at)

    # --- what to send next ------------------------------------------------------------------------------------
    def _next(
        self,
        s: Session,
        entry: _Entry,
        device: repo.DeviceRecord,
        components: dict[str, repo.ComponentState] | None,
        events: list[Event],
        now: float,
    ) -> tuple[bytes, bytes] | None:
        session = entry.session
        if session.state is TamState.READY:
            if device.blocked or (self.config.require_attestation and not session.attestation_passed):
                session.close()
                return None
            if components is None:
                components = repo.component_states(s, device.id)
            plan = self.plan_for(s, device, components)
            entry.rows = frozenset(components)
            if plan.empty:
                session.close()
                return None
            by_id = repo.envelopes_by_id(s, [v.id for v in plan.install])
            unneeded = [component_id_from_text(v.manifest_id) for v in plan.remove]
            data = session.send_update([by_id[v.id] for v in plan.install], unneeded, now)
            entry.plan = plan
        elif session.state is TamState.IDLE and entry.restarts < MAX_RESTARTS and _retry(events):
            entry.restarts += 1  # ERR_UNSUPPORTED_CIPHER_SUITES with suites in common: ask again with one of them
            data = session.start(now)
        else:
            session.close()
            return None
        token = message_token(data)
        entry.expires = now + self.config.token_lifetime
        self._issue(s, token, device.id, now)
        return data, token

    def preview(self, ref: str | int) -> UpdatePlan:
        """What an Update to the device ``ref`` would carry if it asked now (ignoring attestation and blocking)."""
        with self.db.transaction() as s:
            return self.plan_for(s, repo.DeviceRecord.of(self.service.device_row(s, ref)))

    def plan_for(
        self, s: Session, device: repo.DeviceRecord, components: dict[str, repo.ComponentState] | None = None
    ) -> UpdatePlan:
        """What an Update to ``device`` would carry now (see :func:`veritee.service.tam_policy.plan_update`);
        ``components``: the device's components when already read in this transaction."""
        rules = [(cid, Selector.from_json(selector), minimum) for cid, selector, minimum in repo.deployment_rules(s)]
        wanted = wanted_components(rules, device.id, device.key_thumbprint, device.attributes)
        states = repo.component_states(s, device.id) if components is None else components
        has = {cid: DeviceTc(cid, row.sequence_number, row.installed) for cid, row in states.items()}
        newest = {cid: _version(v) for cid, v in repo.newest_versions(s, set(wanted) | set(has)).items()}
        removable = [cid for cid, tc in has.items() if tc.installed and cid not in wanted and cid in newest]
        versions = {cid: {seq: _version(v) for seq, v in by_seq.items()}
                    for cid, by_seq in repo.versions_of(s, removable).items()}  # fmt: skip
        return plan_update(wanted, has, newest, versions)


def _confirmed(event: SuccessReceived) -> set[str]:
    return {digest_text(r.digest) for r in event.reports if r.success}


def _changes(entry: _Entry, events: list[Event], verdict: Verdict | None) -> repo.DeviceChanges:
    """The device-row changes ``events`` make: the attestation result, and the last error (set or cleared)."""
    changes = repo.DeviceChanges()
    for event in events:
        if isinstance(event, EvidenceReceived) and verdict is not None:
            error = None if verdict.passed else f"attestation failed: {verdict.reason}"
            attestation = (verdict.status, verdict.to_json(), event.evidence)
            changes = replace(changes, attestation=attestation, set_error=changes.set_error or error is not None,
                              error=error if error is not None else changes.error)  # fmt: skip
        elif isinstance(event, ErrorReceived):
            error = f"TEEP Error {event.code.name} answering {event.during}: {event.msg or ''}".strip()
            changes = replace(changes, set_error=True, error=error)
        elif isinstance(event, SuccessReceived) and entry.plan is not None:
            confirmed = _confirmed(event)
            unconfirmed = [v.component_id for v in entry.plan.install
                           if event.reports and v.manifest_digest not in confirmed]  # fmt: skip
            error = f"Success without a SUIT report for {', '.join(unconfirmed)}" if unconfirmed else None
            changes = replace(changes, set_error=True, error=error)
    return changes


def _retry(events: list[Event]) -> bool:
    return any(isinstance(e, ErrorReceived) and e.retry_suites for e in events)


def _version(tc: repo.VersionRecord) -> CatalogVersion:
    return CatalogVersion(tc.id, tc.component_id, tc.manifest_id, tc.sequence_number, tc.manifest_digest,
                          tc.image_digest)  # fmt: skip
