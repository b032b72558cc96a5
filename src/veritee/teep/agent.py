"""The TEEP Agent as a sans-I/O state machine (h11 style): ``receive(data, now) -> (events, reply bytes | None)``.

The Agent verifies the TAM's signature against its trust anchors, answers a QueryRequest with a QueryResponse (EAT
evidence bound to the challenge, the installed Trusted Components, the ones the device asked for through
``request_ta`` / ``unrequest_ta``) or with the Error the draft prescribes, and applies an Update through the SUIT
processor atomically (all manifests and unlinks, or nothing), answering Success or ERR_MANIFEST_PROCESSING_FAILED
with SUIT Reports whose nonce is the Update's token.

A message that does not verify or is not a valid TEEP message is answered with an Error and changes no state. A
valid message that is not allowed in the current state (anything but QueryRequest / Update, or any message once the
session is closed) raises ProtocolError and ends the session (``AGENT_TRANSITIONS`` is the table).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final

from veritee.cose import Algorithm, CoseKey
from veritee.errors import (
    ConfigError,
    DecodeError,
    ProtocolError,
    SignatureError,
    UnsupportedAlgorithmError,
    UntrustedSignerError,
    ValidationError,
    VerificationError,
    VeriteeError,
)
from veritee.suit.interpreter import Identity
from veritee.suit.processor import Procedure, ProcessorConfig, process
from veritee.suit.report import Report
from veritee.suit.store import ComponentStore, Fetcher
from veritee.teep.agent_store import UpdateTransaction, tc_list
from veritee.teep.codes import (
    ALL_SUIT_COSE_PROFILES,
    LEGACY_CIPHER_SUITES,
    MTI_CIPHER_SUITES,
    TEEP_VERSION,
    CipherSuite,
    CoseType,
    DataItem,
    ErrorCode,
    FreshnessMechanism,
    SuitCoseProfile,
    common_suites,
)
from veritee.teep.cose_wrap import open_message, peek_message, sign_message
from veritee.teep.eat import make_teep_claims, sign_eat, verify_eat
from veritee.teep.events import (
    AttestationResultReceived,
    CompatQuirks,
    ErrorSent,
    Event,
    QueryAnswered,
    TamAttestationRequired,
    TamErrorReported,
    UpdateApplied,
    UpdateFailed,
)
from veritee.teep.fields import ComponentId, RequestedTc
from veritee.teep.messages import Error, Message, QueryRequest, QueryResponse, Success, Update, decode_message
from veritee.teep.reports import wrap_report

__all__ = ["AGENT_TRANSITIONS", "AgentConfig", "AgentInput", "AgentState", "DeviceClaims", "TeepAgent"]


class AgentState(Enum):
    IDLE = "idle"
    QUERIED = "queried"  # answered a QueryRequest
    UPDATED = "updated"  # answered an Update
    CLOSED = "closed"
    ERROR = "error"


class AgentInput(Enum):
    QUERY_REQUEST = "query-request"
    UPDATE = "update"
    QUERY_RESPONSE = "query-response"  # Agent-to-TAM messages: never accepted by an Agent
    SUCCESS = "success"
    ERROR = "error"
    CLOSE = "close"


S, In = AgentState, AgentInput
AGENT_TRANSITIONS: Final[dict[tuple[AgentState, AgentInput], AgentState]] = {
    (S.IDLE, In.QUERY_REQUEST): S.QUERIED,
    (S.IDLE, In.UPDATE): S.UPDATED,
    (S.IDLE, In.CLOSE): S.CLOSED,
    (S.QUERIED, In.QUERY_REQUEST): S.QUERIED,
    (S.QUERIED, In.UPDATE): S.UPDATED,
    (S.QUERIED, In.CLOSE): S.CLOSED,
    (S.UPDATED, In.QUERY_REQUEST): S.QUERIED,
    (S.UPDATED, In.UPDATE): S.UPDATED,
    (S.UPDATED, In.CLOSE): S.CLOSED,
}
del S, In

_INPUTS: Final[dict[type, AgentInput]] = {
    QueryRequest: AgentInput.QUERY_REQUEST,
    Update: AgentInput.UPDATE,
    QueryResponse: AgentInput.QUERY_RESPONSE,
    Success: AgentInput.SUCCESS,
    Error: AgentInput.ERROR,
}


@dataclass(frozen=True)
class DeviceClaims:
    """What the device says about itself in its evidence (the TEEP EAT profile's required claims)."""

    ueid: bytes
    oemid: bytes | int
    hwmodel: bytes
    hwversion: tuple[str, int] | tuple[str]
    manifests: tuple[tuple[int, Any], ...]


def _suites_for(key: CoseKey, compat: bool) -> tuple[CipherSuite, ...]:
    ours = tuple(s for s in (*MTI_CIPHER_SUITES, *(LEGACY_CIPHER_SUITES if compat else ())) if _can_sign(key, s))
    if not ours:
        raise ConfigError("the Agent key cannot sign with any TEEP cipher suite")
    return ours


def _can_sign(key: CoseKey, suite: CipherSuite) -> bool:
    alg = suite.sign1_algorithm
    if alg is None:
        return False
    try:
        key.check_alg(Algorithm.from_id(alg))
    except VeriteeError:
        return False
    return True


@dataclass(frozen=True)
class AgentConfig:
    """The Agent's keys, trust anchors and capabilities.

    ``agent_key`` signs TEEP messages (its thumbprint is the cnf kid of our evidence); ``attestation_key`` signs the
    evidence; ``tam_keys`` are the TAMs we accept; ``tc_signer_keys`` the SUIT manifest signers. With
    ``require_tam_attestation`` a QueryRequest must carry the TAM's evidence (an EAT by one of ``tam_attester_keys``
    over the challenge we sent in ERR_ATTESTATION_REQUIRED).
    """

    agent_key: CoseKey
    tam_keys: tuple[CoseKey, ...]
    tc_signer_keys: tuple[CoseKey, ...]
    attestation_key: CoseKey | None = None
    device: DeviceClaims | None = None
    supported_cipher_suites: tuple[CipherSuite, ...] | None = None  # default: what agent_key can sign
    supported_suit_cose_profiles: tuple[SuitCoseProfile, ...] = ALL_SUIT_COSE_PROFILES
    supported_freshness_mechanisms: tuple[int, ...] = (FreshnessMechanism.NONCE,)
    require_tam_attestation: bool = False
    tam_attester_keys: tuple[CoseKey, ...] = ()
    present_key: bool = False
    compat: bool = False
    identity: Identity = field(default_factory=Identity)
    decryption_keys: tuple[CoseKey, ...] = ()
    random: Callable[[int], bytes] = secrets.token_bytes

    def __post_init__(self) -> None:
        if not self.agent_key.is_private:
            raise ConfigError("agent_key must be a private key")
        if self.attestation_key is not None and (self.device is None or not self.attestation_key.is_private):
            raise ConfigError("attestation needs a private attestation_key and the device claims")
        if self.require_tam_attestation and not self.tam_attester_keys:
            raise ConfigError("require_tam_attestation needs tam_attester_keys")
        for suite in self.suites:
            if not _can_sign(self.agent_key, suite):
                raise ConfigError(f"agent_key cannot sign with cipher suite {suite}")

    @property
    def suites(self) -> tuple[CipherSuite, ...]:
        if self.supported_cipher_suites is not None:
            return self.supported_cipher_suites
        return _suites_for(self.agent_key, self.compat)


class _Reject(VeriteeError):
    """Internal control flow: answer the TAM with this Error (``options`` go into the Error message)."""

    def __init__(self, code: ErrorCode, reason: str, *, events: tuple[Event, ...] = (), **options: Any) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.events = events
        self.options = options


class TeepAgent:
    """One TEEP Agent (device side) serving TAM sessions over a SUIT component store."""

    def __init__(self, config: AgentConfig, store: ComponentStore, fetcher: Fetcher | None = None) -> None:
        self.config = config
        self.store = store
        self.fetcher = fetcher
        self.state = AgentState.IDLE
        self.suite: CipherSuite | None = None
        self._requested: dict[ComponentId, RequestedTc] = {}
        self._unneeded: list[ComponentId] = []
        self._tam_challenge: bytes | None = None

    # --- the application's requests (RequestTA / UnrequestTA of RFC 9397) -----------------------------------------
    def request_ta(
        self, component_id: ComponentId, *, sequence_number: int | None = None, have_binary: bool | None = None
    ) -> None:
        cid = tuple(component_id)
        self._requested[cid] = RequestedTc(cid, sequence_number, have_binary)

    def unrequest_ta(self, manifest_id: ComponentId) -> None:
        mid = tuple(manifest_id)
        if mid not in self._unneeded:
            self._unneeded.append(mid)

    def close(self) -> None:
        self._advance(AgentInput.CLOSE)

    # --- the table ------------------------------------------------------------------------------------------------
    def _advance(self, event: AgentInput) -> None:
        nxt = AGENT_TRANSITIONS.get((self.state, event))
        if nxt is None:
            previous = self.state
            if self.state is not AgentState.CLOSED:
                self.state = AgentState.ERROR
            raise ProtocolError(f"Agent: {event.value} is not allowed in state {previous.value}")
        self.state = nxt

    # --- messages from the TAM ------------------------------------------------------------------------------------
    def receive(self, data: bytes, now: float) -> tuple[list[Event], bytes | None]:
        """Process one message from the TAM; return the events and the signed reply (None: nothing to send)."""
        if self.state in (AgentState.CLOSED, AgentState.ERROR):
            raise ProtocolError(f"Agent: the session is {self.state.value}")
        algs = [s.sign1_algorithm for s in self.config.suites if s.sign1_algorithm is not None]
        try:
            verified = open_message(data, self.config.tam_keys, compat=self.config.compat, allowed_algs=algs)
        except UnsupportedAlgorithmError as exc:
            reject = _Reject(ErrorCode.UNSUPPORTED_CIPHER_SUITES, str(exc), supported_cipher_suites=self.config.suites)
            return self._error_reply(reject, self._unverified_token(data), mti=True)
        except (UntrustedSignerError, SignatureError, VerificationError) as exc:
            return self._error_reply(_Reject(ErrorCode.PERMANENT_ERROR, f"TAM not trusted: {exc}"), None)
        except (DecodeError, ValidationError) as exc:
            reason = f"invalid TEEP message: {exc}"
            return self._error_reply(_Reject(ErrorCode.PERMANENT_ERROR, reason), self._unverified_token(data))
        message = verified.message
        event = _INPUTS[type(message)]
        if (self.state, event) not in AGENT_TRANSITIONS:
            self._advance(event)  # raises ProtocolError, session ends
        events: list[Event] = [CompatQuirks(message.quirks)] if message.quirks else []
        try:
            if isinstance(message, QueryRequest):
                if verified.cose_type is CoseType.SIGN1 and verified.suite in self.config.suites:
                    self.suite = verified.suite
                more, reply = self._query_request(message, now)
            else:
                assert isinstance(message, Update)
                if verified.suite in self.config.suites:
                    self.suite = verified.suite
                more, reply = self._update(message)
        except _Reject as reject:
            mti = reject.code is ErrorCode.UNSUPPORTED_CIPHER_SUITES
            return self._error_reply(reject, message.token, events=events, mti=mti)
        self._advance(event)
        return events + more, reply

    def _unverified_token(self, data: bytes) -> bytes | None:
        try:
            return decode_message(peek_message(data).payload, compat=True).token
        except (DecodeError, ValidationError):
            return None

    def _sign(self, message: Message, *, mti: bool = False) -> bytes:
        suite = self.suite if (self.suite is not None and not mti) else self.config.suites[0]
        alg = suite.sign1_algorithm
        assert alg is not None
        return sign_message(message, self.config.agent_key, alg=alg, present_key=self.config.present_key)

    def _error_reply(
        self, reject: _Reject, token: bytes | None, *, events: list[Event] | None = None, mti: bool = False
    ) -> tuple[list[Event], bytes]:
        msg = reject.reason.encode("utf-8")[:128].decode("utf-8", "ignore") or None
        error = Error(err_code=reject.code, token=token, err_msg=msg, **reject.options)
        return [*(events or []), *reject.events, ErrorSent(reject.code, reject.reason)], self._sign(error, mti=mti)

    # --- QueryRequest ---------------------------------------------------------------------------------------------
    def _query_request(self, request: QueryRequest, now: float) -> tuple[list[Event], bytes]:
        config = self.config
        if request.versions is not None and TEEP_VERSION not in request.versions:
            raise _Reject(ErrorCode.UNSUPPORTED_MSG_VERSION, "no supported TEEP version", versions=(TEEP_VERSION,))
        offered = common_suites(request.supported_cipher_suites, config.suites)
        if not offered:
            raise _Reject(
                ErrorCode.UNSUPPORTED_CIPHER_SUITES, "no common cipher suite", supported_cipher_suites=config.suites
            )
        if self.suite is None or self.suite not in offered:
            self.suite = offered[0]
        items = DataItem(request.data_item_requested)
        attest = bool(items & DataItem.ATTESTATION)
        freshness = request.supported_freshness_mechanisms or (FreshnessMechanism.NONCE,)
        if attest and not set(freshness) & set(config.supported_freshness_mechanisms):
            raise _Reject(
                ErrorCode.UNSUPPORTED_FRESHNESS_MECHANISMS,
                "no common freshness mechanism",
                supported_freshness_mechanisms=config.supported_freshness_mechanisms,
            )
        if items & DataItem.SUIT_REPORTS and not set(request.supported_suit_cose_profiles) & set(
            config.supported_suit_cose_profiles
        ):
            raise _Reject(
                ErrorCode.UNSUPPORTED_SUIT_REPORT,
                "no common SUIT COSE profile",
                supported_suit_cose_profiles=config.supported_suit_cose_profiles,
            )
        events: list[Event] = []
        if config.require_tam_attestation:
            events += self._check_tam_attestation(request, now)
        evidence = self._evidence(request, now) if attest else None
        response = QueryResponse(
            token=request.token,
            selected_version=TEEP_VERSION,
            attestation_payload=evidence,
            tc_list=(tc_list(self.store) or None) if items & DataItem.TRUSTED_COMPONENTS else None,
            requested_tc_list=tuple(self._requested.values()) or None,
            unneeded_manifest_list=tuple(self._unneeded) or None,
        )
        assert self.suite is not None
        events.append(QueryAnswered(request.token, items, self.suite, evidence is not None))
        return events, self._sign(response)

    def _check_tam_attestation(self, request: QueryRequest, now: float) -> list[Event]:
        if request.attestation_payload is None or self._tam_challenge is None:
            challenge = self.config.random(32)
            self._tam_challenge = challenge
            raise _Reject(
                ErrorCode.ATTESTATION_REQUIRED,
                "this Agent requires the TAM's attestation",
                events=(TamAttestationRequired(challenge),),
                challenge=challenge,
                supported_freshness_mechanisms=self.config.supported_freshness_mechanisms,
            )
        challenge, self._tam_challenge = self._tam_challenge, None
        try:
            verify_eat(
                request.attestation_payload,
                self.config.tam_attester_keys,
                expected_nonce=challenge,
                teep_profile=False,
                compat=self.config.compat,
            )
        except (VerificationError, DecodeError, ValidationError) as exc:
            raise _Reject(ErrorCode.PERMANENT_ERROR, f"TAM attestation failed: {exc}") from None
        payload, fmt = request.attestation_payload, request.attestation_payload_format
        return [AttestationResultReceived(payload, fmt, "QueryRequest")]

    def _evidence(self, request: QueryRequest, now: float) -> bytes:
        config = self.config
        if config.attestation_key is None or config.device is None:
            raise _Reject(ErrorCode.PERMANENT_ERROR, "this Agent cannot produce attestation evidence")
        nonce = request.challenge if request.challenge is not None else request.token
        if nonce is None:
            raise _Reject(ErrorCode.PERMANENT_ERROR, "attestation needs a challenge (or a token) to be fresh")
        device = config.device
        claims = make_teep_claims(
            agent_key=config.agent_key,
            ueid=device.ueid,
            oemid=device.oemid,
            hwmodel=device.hwmodel,
            hwversion=device.hwversion,
            manifests=device.manifests,
            nonce=nonce,
            iat=int(now),
        )
        return sign_eat(claims, config.attestation_key)

    # --- Update ---------------------------------------------------------------------------------------------------
    def _update(self, update: Update) -> tuple[list[Event], bytes]:
        events: list[Event] = []
        if update.err_code is not None:
            events.append(TamErrorReported(update.err_code, update.err_msg))
        if update.attestation_payload is not None:
            events.append(
                AttestationResultReceived(update.attestation_payload, update.attestation_payload_format, "Update")
            )
        processor = ProcessorConfig(
            trust_anchors=self.config.tc_signer_keys,
            identity=self.config.identity,
            decryption_keys=self.config.decryption_keys,
            nonce=update.token,
        )
        txn = UpdateTransaction(self.store)
        reports: list[Report] = []
        unlinked: list[ComponentId] = []
        installed: list[ComponentId] = []
        failure: str | None = None
        for manifest_id in update.unneeded_manifest_list or ():
            envelope = txn.read(manifest_id)
            if envelope is None or txn.installed_manifest(manifest_id) is None:  # the record outlives an unlink
                failure = f"no installed manifest {manifest_id!r} to unlink"
                break
            result = process(envelope, Procedure.UNINSTALL, config=processor, store=txn, fetcher=self.fetcher)
            reports.append(result.report)
            if not result.ok:
                failure = f"unlinking {manifest_id!r} failed: {result.error}"
                break
            unlinked.append(manifest_id)
        for index, envelope in enumerate(update.manifest_list or ()) if failure is None else ():
            try:
                result = process(envelope, Procedure.UPDATE, config=processor, store=txn, fetcher=self.fetcher)
            except (DecodeError, ValidationError) as exc:
                failure = f"manifest {index} is malformed: {exc}"
                break
            reports.append(result.report)
            if not result.ok:
                failure = f"manifest {index} failed: {result.error}"
                break
            manifest = result.verified.manifest if result.verified is not None else None
            if manifest is not None and manifest.component_id is not None:
                installed.append(manifest.component_id)
            for cid in manifest.common.components if manifest is not None else ():
                self._requested.pop(cid, None)
        wrapped = tuple(wrap_report(r) for r in reports) or None
        if failure is None:
            try:
                txn.finish()
            except VeriteeError as exc:
                failure = f"the component store refused the update: {exc}"
        if failure is not None:
            events.append(UpdateFailed(failure, tuple(reports)))
            error = Error(
                err_code=ErrorCode.MANIFEST_PROCESSING_FAILED,
                token=update.token,
                err_msg=failure.encode("utf-8")[:128].decode("utf-8", "ignore"),
                suit_reports=wrapped,
            )
            return [*events, ErrorSent(ErrorCode.MANIFEST_PROCESSING_FAILED, failure)], self._sign(error)
        self._unneeded = [m for m in self._unneeded if m not in unlinked]
        events.append(UpdateApplied(tuple(installed), tuple(unlinked), tuple(reports)))
        return events, self._sign(Success(token=update.token, suit_reports=wrapped))
