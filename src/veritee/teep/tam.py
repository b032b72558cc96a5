"""The TAM side of a TEEP session as a sans-I/O state machine (h11 style).

Bytes in, events out, bytes to send: ``start(now)`` returns a signed QueryRequest, ``receive(data, now)`` verifies
and interprets the Agent's answer and returns events, and the caller decides with ``attestation_result(...)``,
``send_update(...)`` or ``close()``. Nothing here reads a clock or does I/O: ``now`` is passed in, randomness comes
from the config.

The allowed transitions are the data table ``TAM_TRANSITIONS``; any (state, input) pair not in it raises
ProtocolError and ends the session (state ERROR). A message that fails verification or validation raises its typed
error (SignatureError, UntrustedSignerError, DecodeError, ValidationError) and is dropped without changing the state,
as the draft says; a token that is unknown, replayed or expired raises ProtocolError and ends the session.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final

from veritee.cose import Algorithm, CoseKey
from veritee.errors import ConfigError, FreshnessError, ProtocolError, VeriteeError
from veritee.suit.report import Report
from veritee.teep.codes import (
    ALL_SUIT_COSE_PROFILES,
    MTI_CIPHER_SUITES,
    TEEP_VERSION,
    CipherSuite,
    DataItem,
    ErrorCode,
    SuitCoseProfile,
    common_suites,
)
from veritee.teep.cose_wrap import VerifiedMessage, open_message, sign_message, sign_query_request
from veritee.teep.eat import TEEP_EAT_MEDIA_TYPE, ConfirmationKeyMismatch, EatClaims, check_nonce
from veritee.teep.events import (
    AgentAuthenticated,
    CompatQuirks,
    DeviceStateReported,
    ErrorReceived,
    Event,
    EvidenceReceived,
    SuccessReceived,
    TokenExpired,
)
from veritee.teep.fields import ComponentId
from veritee.teep.messages import Error, QueryRequest, QueryResponse, Success, Update
from veritee.teep.reports import check_report_nonces, open_reports

__all__ = ["TAM_TRANSITIONS", "TamConfig", "TamInput", "TamSession", "TamState", "TokenExpiredError"]


class TamState(Enum):
    IDLE = "idle"  # nothing outstanding: start() (again, e.g. after an Error) or close()
    AWAIT_QUERY_RESPONSE = "await-query-response"
    APPRAISING = "appraising"  # evidence received: waiting for attestation_result()
    READY = "ready"  # device state known: send_update() or close()
    AWAIT_UPDATE_RESPONSE = "await-update-response"
    UPDATE_DONE = "update-done"  # Success or Error received: another update, a new query, or close()
    CLOSED = "closed"
    ERROR = "error"


class TamInput(Enum):
    START = "start"
    QUERY_RESPONSE = "query-response"
    QUERY_RESPONSE_WITH_EVIDENCE = "query-response+evidence"
    ATTESTATION_RESULT = "attestation-result"
    SEND_UPDATE = "send-update"
    SUCCESS = "success"
    ERROR = "error"
    QUERY_REQUEST = "query-request"  # a TAM never accepts these: always illegal
    UPDATE = "update"  # likewise
    TIMEOUT = "timeout"
    CLOSE = "close"


S, In = TamState, TamInput
TAM_TRANSITIONS: Final[dict[tuple[TamState, TamInput], TamState]] = {
    (S.IDLE, In.START): S.AWAIT_QUERY_RESPONSE,
    (S.IDLE, In.CLOSE): S.CLOSED,
    (S.AWAIT_QUERY_RESPONSE, In.QUERY_RESPONSE): S.READY,
    (S.AWAIT_QUERY_RESPONSE, In.QUERY_RESPONSE_WITH_EVIDENCE): S.APPRAISING,
    (S.AWAIT_QUERY_RESPONSE, In.ERROR): S.IDLE,
    (S.AWAIT_QUERY_RESPONSE, In.TIMEOUT): S.CLOSED,
    (S.AWAIT_QUERY_RESPONSE, In.CLOSE): S.CLOSED,
    (S.APPRAISING, In.ATTESTATION_RESULT): S.READY,
    (S.APPRAISING, In.CLOSE): S.CLOSED,
    (S.READY, In.SEND_UPDATE): S.AWAIT_UPDATE_RESPONSE,
    (S.READY, In.START): S.AWAIT_QUERY_RESPONSE,
    (S.READY, In.CLOSE): S.CLOSED,
    (S.AWAIT_UPDATE_RESPONSE, In.SUCCESS): S.UPDATE_DONE,
    (S.AWAIT_UPDATE_RESPONSE, In.ERROR): S.UPDATE_DONE,
    (S.AWAIT_UPDATE_RESPONSE, In.TIMEOUT): S.CLOSED,
    (S.AWAIT_UPDATE_RESPONSE, In.CLOSE): S.CLOSED,
    (S.UPDATE_DONE, In.SEND_UPDATE): S.AWAIT_UPDATE_RESPONSE,
    (S.UPDATE_DONE, In.START): S.AWAIT_QUERY_RESPONSE,
    (S.UPDATE_DONE, In.CLOSE): S.CLOSED,
}
del S, In


class TokenExpiredError(ProtocolError, FreshnessError):
    """A response arrived after its token's lifetime; the TAM must ignore it (and this session ends)."""


@dataclass(frozen=True)
class TamConfig:
    """What a TAM session needs. ``tam_keys`` are private keys: a P-256 key signs ESP256 / ES256, an Ed25519 key
    Ed25519 / EdDSA. ``agent_keys`` are the Agents' TEEP keys the TAM trusts (matched by thumbprint, or tried one by
    one when a message has no kid); with ``learn_agent_keys`` an unknown Agent may present its key (kccs header),
    which is pinned for the session and reported in AgentAuthenticated(learned=True) so the caller can store it."""

    tam_keys: tuple[CoseKey, ...]
    agent_keys: tuple[CoseKey, ...] = ()
    learn_agent_keys: bool = False
    supported_cipher_suites: tuple[CipherSuite, ...] = MTI_CIPHER_SUITES
    offered_cipher_suites: tuple[CipherSuite, ...] | None = None  # first QueryRequest's offer (default: supported)
    supported_suit_cose_profiles: tuple[SuitCoseProfile, ...] = ALL_SUIT_COSE_PROFILES
    data_items: DataItem = DataItem.ATTESTATION | DataItem.TRUSTED_COMPONENTS
    require_attestation: bool = True
    token_lifetime: float = 300.0
    token_size: int = 16
    challenge_size: int = 32
    compat: bool = False
    random: Callable[[int], bytes] = secrets.token_bytes

    def __post_init__(self) -> None:
        if not self.tam_keys or not all(isinstance(k, CoseKey) and k.is_private for k in self.tam_keys):
            raise ConfigError("tam_keys must be one or more private CoseKeys")
        if not self.supported_cipher_suites:
            raise ConfigError("the TAM must support at least one cipher suite")
        if not 8 <= self.token_size <= 64 or not 8 <= self.challenge_size <= 512:
            raise ConfigError("token_size must be 8..64 and challenge_size 8..512")
        if self.token_lifetime <= 0:
            raise ConfigError("token_lifetime must be positive")
        for suite in (*self.supported_cipher_suites, *(self.offered_cipher_suites or ())):
            alg = suite.sign1_algorithm
            if alg is None:
                raise ConfigError(f"only single COSE_Sign1 cipher suites are implemented, not {suite}")
            self.key_for(alg)

    def key_for(self, alg: int) -> CoseKey:
        algorithm = Algorithm.from_id(alg)
        for key in self.tam_keys:
            try:
                key.check_alg(algorithm)
            except VeriteeError:
                continue
            return key
        raise ConfigError(f"no TAM key can sign with {algorithm.name}")


@dataclass(frozen=True)
class _Pending:
    token: bytes
    kind: str  # "QueryRequest" or "Update"
    expires: float
    challenge: bytes | None = None


class TamSession:
    """One TAM <-> Agent session."""

    def __init__(self, config: TamConfig) -> None:
        self.config = config
        self.state = TamState.IDLE
        self.agent_key: CoseKey | None = None
        self.agent_suite: CipherSuite | None = None
        self.attestation_passed: bool | None = None
        self.data_items = DataItem.NONE
        self._pending: _Pending | None = None
        self._used: set[bytes] = set()
        self._offer: tuple[CipherSuite, ...] = config.offered_cipher_suites or config.supported_cipher_suites
        self._challenge: bytes | None = None

    # --- the table ------------------------------------------------------------------------------------------------
    def _advance(self, event: TamInput) -> None:
        nxt = TAM_TRANSITIONS.get((self.state, event))
        if nxt is None:
            previous = self.state
            if self.state is not TamState.CLOSED:
                self.state = TamState.ERROR
            raise ProtocolError(f"TAM: {event.value} is not allowed in state {previous.value}")
        self.state = nxt

    def _fail(self, exc: ProtocolError) -> ProtocolError:
        self.state = TamState.ERROR
        return exc

    def _check_legal(self, event: TamInput) -> None:
        if (self.state, event) not in TAM_TRANSITIONS:
            self._advance(event)  # raises and ends the session

    # --- caller actions -------------------------------------------------------------------------------------------
    def start(
        self,
        now: float,
        *,
        data_items: DataItem | None = None,
        attestation_payload: bytes | None = None,
        attestation_payload_format: str | None = None,
    ) -> bytes:
        """A signed QueryRequest with a fresh token (and a challenge when attestation is requested).

        The first QueryRequest of a session is a COSE_Sign with one signature per offered algorithm; once the Agent's
        suite is known (a QueryResponse, or an Error listing its suites) it is a COSE_Sign1 with that suite.
        """
        self._check_legal(TamInput.START)
        items = self.config.data_items if data_items is None else DataItem(data_items)
        token = self.config.random(self.config.token_size)
        challenge = self.config.random(self.config.challenge_size) if items & DataItem.ATTESTATION else None
        request = QueryRequest(
            token=token,
            challenge=challenge,
            versions=(TEEP_VERSION,),
            attestation_payload=attestation_payload,
            attestation_payload_format=attestation_payload_format,
            supported_cipher_suites=self._offer,
            supported_suit_cose_profiles=self.config.supported_suit_cose_profiles,
            data_item_requested=items,
        )
        if self.agent_suite is not None:
            alg = self._sign_alg(self.agent_suite)
            data = sign_message(request, self.config.key_for(alg), alg=alg)
        else:
            algs = [self._sign_alg(s) for s in self._offer]
            data = sign_query_request(request, [(self.config.key_for(a), a) for a in algs])
        self._advance(TamInput.START)
        self._pending = _Pending(token, "QueryRequest", now + self.config.token_lifetime, challenge)
        self._challenge = challenge
        self.data_items = items
        self.attestation_passed = None
        return data

    def attestation_result(self, passed: bool, claims: EatClaims | None = None) -> list[Event]:
        """Record the Verifier's verdict on the evidence. When it passed, ``claims`` (the Attestation Result's
        claims, if any) must be bound to this Agent: cnf kid = the thumbprint of the key that signed its
        QueryResponse, and eat_nonce (when present) = our challenge."""
        self._check_legal(TamInput.ATTESTATION_RESULT)
        if passed and claims is not None:
            try:
                assert self.agent_key is not None
                kid = claims.cnf_kid
                if kid is None or not hmac.compare_digest(kid, self.agent_key.thumbprint()):
                    raise ConfirmationKeyMismatch("the attestation result's cnf does not name this Agent's key")
                if claims.nonce is not None and self._challenge is not None:
                    check_nonce(claims, self._challenge)
            except (ConfirmationKeyMismatch, FreshnessError):
                self.state = TamState.ERROR
                raise
        self._advance(TamInput.ATTESTATION_RESULT)
        self.attestation_passed = bool(passed)
        return []

    def send_update(
        self,
        manifests: Sequence[bytes],
        unneeded: Sequence[ComponentId],
        now: float,
        *,
        attestation_payload: bytes | None = None,
        attestation_payload_format: str | None = None,
        err_code: ErrorCode | None = None,
        err_msg: str | None = None,
    ) -> bytes:
        """A signed Update installing ``manifests`` (bstr-wrapped SUIT_Envelopes) and unlinking ``unneeded``."""
        self._check_legal(TamInput.SEND_UPDATE)
        if self.config.require_attestation and not self.attestation_passed:
            raise self._fail(ProtocolError("TAM: no Update before the Agent's attestation passed"))
        assert self.agent_suite is not None
        token = self.config.random(self.config.token_size)
        update = Update(
            token=token,
            manifest_list=tuple(manifests) or None,
            unneeded_manifest_list=tuple(tuple(c) for c in unneeded) or None,
            attestation_payload=attestation_payload,
            attestation_payload_format=attestation_payload_format,
            err_code=err_code,
            err_msg=err_msg,
        )
        alg = self._sign_alg(self.agent_suite)
        data = sign_message(update, self.config.key_for(alg), alg=alg)
        self._advance(TamInput.SEND_UPDATE)
        self._pending = _Pending(token, "Update", now + self.config.token_lifetime)
        return data

    def close(self) -> None:
        self._advance(TamInput.CLOSE)
        self._pending = None

    def poll(self, now: float) -> list[Event]:
        """Expire an unanswered request whose token lifetime has passed (the session then closes)."""
        pending = self._pending
        if pending is None or now <= pending.expires:
            return []
        self._advance(TamInput.TIMEOUT)
        self._used.add(pending.token)
        self._pending = None
        return [TokenExpired(pending.token, pending.kind)]

    # --- messages from the Agent ----------------------------------------------------------------------------------
    def receive(self, data: bytes, now: float) -> list[Event]:
        """Verify and interpret one message from the Agent."""
        if self.state in (TamState.CLOSED, TamState.ERROR):
            raise ProtocolError(f"TAM: the session is {self.state.value}")
        anchors = (self.agent_key,) if self.agent_key is not None else self.config.agent_keys
        verified = open_message(
            data,
            anchors,
            compat=self.config.compat,
            allowed_algs=self._accepted_algs(),
            learn=self.config.learn_agent_keys and self.agent_key is None,
        )
        message = verified.message
        if isinstance(message, QueryResponse):
            event = TamInput.QUERY_RESPONSE_WITH_EVIDENCE if message.attestation_payload else TamInput.QUERY_RESPONSE
        elif isinstance(message, Success):
            event = TamInput.SUCCESS
        elif isinstance(message, Error):
            event = TamInput.ERROR
        else:
            event = TamInput.QUERY_REQUEST if isinstance(message, QueryRequest) else TamInput.UPDATE
        self._check_legal(event)
        pending = self._take_token(message.token, now)
        events: list[Event] = []
        first = self.agent_key is None
        self.agent_key = verified.signer
        if first:
            events.append(AgentAuthenticated(verified.signer_thumbprint, verified.suite, verified.learned))
        if message.quirks:
            events.append(CompatQuirks(message.quirks))
        if isinstance(message, QueryResponse):
            events += self._query_response(message, verified, pending)
        elif isinstance(message, Success):
            events.append(SuccessReceived(message.token, self._reports(message.suit_reports, pending), message.msg))
        else:
            assert isinstance(message, Error)
            events.append(self._error(message, verified, pending))
        self._advance(event)
        return events

    def _take_token(self, token: bytes | None, now: float) -> _Pending:
        pending = self._pending
        if token is None:
            raise self._fail(ProtocolError("TAM: the response carries no token"))
        if token in self._used:
            raise self._fail(ProtocolError("TAM: replayed token (a token is accepted once)"))
        if pending is None or not hmac.compare_digest(token, pending.token):
            raise self._fail(ProtocolError("TAM: the response's token matches no outstanding request"))
        self._used.add(token)
        self._pending = None
        if now > pending.expires:
            raise self._fail(TokenExpiredError(f"TAM: the {pending.kind} token expired"))
        return pending

    def _reports(self, entries: tuple[bytes, ...] | None, pending: _Pending) -> tuple[Report, ...]:
        try:
            reports = open_reports(entries, self.agent_key)
            check_report_nonces(reports, pending.token)
        except VeriteeError as exc:
            raise self._fail(ProtocolError(f"TAM: bad SUIT report: {exc}")) from None
        return reports

    def _query_response(self, msg: QueryResponse, verified: VerifiedMessage, pending: _Pending) -> list[Event]:
        if pending.kind != "QueryRequest":
            raise self._fail(ProtocolError("TAM: a QueryResponse answers a QueryRequest, not an Update"))
        if msg.selected_version not in (None, TEEP_VERSION):
            raise self._fail(ProtocolError(f"TAM: the Agent selected unknown version {msg.selected_version}"))
        if self.data_items & DataItem.ATTESTATION and msg.attestation_payload is None:
            raise self._fail(ProtocolError("TAM: attestation was requested but the QueryResponse has none"))
        self._reports(msg.suit_reports, pending)
        suite = msg.selected_cipher_suite or verified.suite
        if suite not in self.config.supported_cipher_suites:
            suite = verified.suite
        if suite not in self.config.supported_cipher_suites:
            raise self._fail(ProtocolError(f"TAM: the Agent signed with {suite}, which this TAM does not support"))
        self.agent_suite = suite
        events: list[Event] = []
        if msg.attestation_payload is not None:
            fmt = msg.attestation_payload_format or TEEP_EAT_MEDIA_TYPE
            events.append(EvidenceReceived(msg.attestation_payload, fmt, pending.challenge))
        else:
            self.attestation_passed = None if self.config.require_attestation else True
        events.append(
            DeviceStateReported(
                tc_list=msg.tc_list or (),
                requested=msg.requested_tc_list or (),
                unneeded=msg.unneeded_manifest_list or (),
                ext_list=msg.ext_list or (),
            )
        )
        return events

    def _error(self, msg: Error, verified: VerifiedMessage, pending: _Pending) -> ErrorReceived:
        reports = self._reports(msg.suit_reports, pending)
        retry: tuple[CipherSuite, ...] = ()
        if msg.err_code is ErrorCode.UNSUPPORTED_CIPHER_SUITES and msg.supported_cipher_suites:
            retry = common_suites(msg.supported_cipher_suites, self.config.supported_cipher_suites)
            if retry:
                self._offer = retry
                self.agent_suite = retry[0] if len(retry) == 1 else None
        return ErrorReceived(
            code=msg.err_code,
            msg=msg.err_msg,
            reports=reports,
            during=pending.kind,
            retry_suites=retry,
            agent_versions=msg.versions or (),
            agent_freshness=msg.supported_freshness_mechanisms or (),
            challenge=msg.challenge,
        )

    def _accepted_algs(self) -> list[int]:
        """What the Agent may sign with: our suites, and always the mandatory ones (an Agent protects
        ERR_UNSUPPORTED_CIPHER_SUITES with one of the suites mandatory for every TAM)."""
        suites = (*self.config.supported_cipher_suites, *MTI_CIPHER_SUITES)
        return sorted({self._sign_alg(s) for s in suites})

    @staticmethod
    def _sign_alg(suite: CipherSuite) -> int:
        alg = suite.sign1_algorithm
        if alg is None:
            raise ConfigError(f"cipher suite {suite} is not a single COSE_Sign1 operation")
        return alg
