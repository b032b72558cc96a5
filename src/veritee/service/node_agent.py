"""The node agent: registers the node's TPM with a verifier and answers its evidence requests (I/O layer).

* Identity: an AK created under the EK in the node's TPM, kept in the state directory (:mod:`.node_state`), so a
  restarted agent keeps its identity and does not register again.
* Registration (``POST /v1/nodes``, then ``POST /v1/nodes/{id}/activate``): EK certificate, EK public, AK public;
  the verifier's MakeCredential blob is opened with TPM2_ActivateCredential, which only this TPM can do for this AK.
* Evidence (:meth:`NodeAgent.answer`): a TPM2_Quote over the PCRs the verifier asks for with its nonce, the PCR
  values as tpm2-tools writes them, the firmware event log when asked for, and the IMA lines from the verifier's
  offset on (never the whole list again).
* Pull mode: the verifier POSTs challenges to the agent (:mod:`veritee.web.node_app` serves them with
  :meth:`NodeAgent.answer`). Push mode (:meth:`NodeAgent.run_push`): every interval the agent asks for a challenge
  and posts its evidence.

The TPM is opened for each operation and closed right after (TPMs without a resource manager, such as swtpm, serve
one connection at a time), and one operation runs at a time. A verifier that is down is retried with backoff
(:mod:`.node_client`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from urllib.parse import quote as url_quote

from veritee.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    DecodeError,
    DeviceError,
    NotFoundError,
    ProtocolError,
    TransportError,
    ValidationError,
    VerificationError,
)
from veritee.service.node_client import RetryNotice, StoppedError, VerifierClient, VerifierRefusedError
from veritee.service.node_config import AgentConfig
from veritee.service.node_logs import ImaLogReader, read_event_log
from veritee.service.node_state import IdentityStore, NodeIdentity
from veritee.service.node_wire import (
    ActivationRequest,
    Challenge,
    CredentialChallenge,
    NodeEvidence,
    RegistrationRequest,
    Verdict,
)
from veritee.tpm.alg import HashAlg
from veritee.tpm.attest import PcrSelection
from veritee.tpm.device import TpmCommandError, TpmDevice
from veritee.tpm.pcrs import build_tpm2tools_pcr_blob

__all__ = ["NodeAgent"]

_log = logging.getLogger("veritee.node")

#: Failures of one push round after which the agent carries on at the next interval. AuthError (403: the verifier
#: refuses this node's evidence — its AK was revoked, or it was never activated) is one of them: the agent keeps
#: asking but does not register again by itself, which would undo a revocation; ``register()`` does that on purpose.
_ROUND_ERRORS = (
    TransportError,
    DeviceError,
    ProtocolError,
    ValidationError,
    DecodeError,
    VerificationError,
    ConflictError,
    AuthError,
)


class NodeAgent:
    """One node's agent. Thread-safe: TPM operations and registration are serialised.

    ``stop`` ends :meth:`run_push` and interrupts backoff waits; ``on_retry`` is told about each retry.
    """

    def __init__(
        self,
        config: AgentConfig,
        *,
        stop: threading.Event | None = None,
        on_retry: RetryNotice | None = None,
    ) -> None:
        self.config = config
        self.stop_event = stop or threading.Event()
        self._store = IdentityStore(config.state_dir)
        self._ima = ImaLogReader(config.ima_log)
        self._tpm_lock = threading.Lock()
        self._identity_lock = threading.RLock()
        self._client = VerifierClient(
            config.verifier_base,
            retry=config.retry,
            timeout=config.timeout,
            stop=self.stop_event,
            on_retry=on_retry,
        )
        self._identity: NodeIdentity | None = None
        self.last_verdict: Verdict | None = None
        self.rounds = 0
        self.answered = 0
        """Challenges answered (pull and push)."""

    # --- lifecycle ------------------------------------------------------------------------------------------------
    def close(self) -> None:
        self._client.close()

    def stop(self) -> None:
        self.stop_event.set()

    def __enter__(self) -> NodeAgent:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def _node_path(self) -> str:
        return "/v1/nodes/" + url_quote(self.config.node_id, safe="")

    # --- identity ------------------------------------------------------------------------------------------------
    @property
    def identity(self) -> NodeIdentity:
        """The node's identity: loaded from the state directory, or a new AK created in the TPM and saved."""
        with self._identity_lock:
            if self._identity is None:
                self._identity = self._load_or_create()
            return self._identity

    def _load_or_create(self) -> NodeIdentity:
        saved = self._store.load()
        if saved is not None:
            if saved.node_id != self.config.node_id:
                raise ConfigError(
                    f"the state directory {self.config.state_dir} belongs to node {saved.node_id!r}, "
                    f"not {self.config.node_id!r}"
                )
            if (saved.ak.alg, saved.ak.parent) != (self.config.ak_alg, self.config.ek_kind):
                _log.info("keeping the saved %s AK under the %s EK", saved.ak.alg.value, saved.ak.parent.value)
            return saved
        with self._tpm() as tpm:
            ak = tpm.create_ak(self.config.ak_alg, parent=self.config.ek_kind)
        identity = NodeIdentity(self.config.node_id, ak)
        self._store.save(identity)
        _log.info("created a %s AK under the %s EK (name %s)", ak.alg.value, ak.parent.value, ak.name.hex())
        return identity

    def _save(self, identity: NodeIdentity) -> None:
        with self._identity_lock:
            self._store.save(identity)
            self._identity = identity

    def _tpm(self) -> _LockedTpm:
        return _LockedTpm(self.config.tcti, self._tpm_lock)

    # --- registration --------------------------------------------------------------------------------------------
    def register(self) -> NodeIdentity:
        """Register with the verifier and activate the credential it sends; saves the registered identity."""
        with self._identity_lock:
            identity = self.identity
            ak = identity.ak
            with self._tpm() as tpm:
                ek_public = tpm.create_ek(ak.parent)
                try:
                    ek_cert: bytes | None = tpm.read_ek_certificate(ak.parent)
                except (TpmCommandError, DecodeError) as exc:
                    _log.warning("no usable %s EK certificate in NV (%s): registering without one", ak.parent, exc)
                    ek_cert = None
            request = RegistrationRequest(
                node_id=self.config.node_id,
                ek_cert=ek_cert,
                ek_public=ek_public,
                ak_public=ak.public,
                attributes=dict(self.config.attributes),
                agent_url=self.config.agent_url,
            )
            reply = self._client.request("POST", "/v1/nodes", body=request.to_json(), expect=(200, 201))
            challenge = CredentialChallenge.from_json(reply)
            with self._tpm() as tpm:
                secret = tpm.activate_credential(ak, ak.parent, challenge.credential_blob, challenge.encrypted_secret)
            activation = ActivationRequest(challenge.challenge_id, secret)
            result = self._client.request("POST", self._node_path + "/activate", body=activation.to_json())
            state = result.get("state") if isinstance(result, dict) else None
            if state != "registered":
                raise ProtocolError(f"activation answered state {state!r}, not 'registered'")
            registered = identity.registered(self.config.verifier_base)
            self._save(registered)
            _log.info("registered node %s with %s", self.config.node_id, self.config.verifier_base)
            return registered

    def ensure_registered(self) -> NodeIdentity:
        """The identity, registering first unless it is already registered with this verifier."""
        with self._identity_lock:
            identity = self.identity
            if identity.registered_with == self.config.verifier_base:
                return identity
            return self.register()

    # --- evidence ------------------------------------------------------------------------------------------------
    def answer(self, challenge: Challenge) -> NodeEvidence:
        """Evidence for ``challenge``: a quote with its nonce over its PCRs, the logs it asks for."""
        ak = self.identity.ak
        with self._tpm() as tpm:
            quote = tpm.quote(ak, challenge.pcr_selection, challenge.nonce)
            self.answered += 1  # under the TPM lock: answers may run in several threads (pull mode)
        banks = {HashAlg.from_label(label): values for label, values in quote.pcrs.items()}
        selections = [PcrSelection.of(alg, sorted(values)) for alg, values in banks.items()]
        event_log = read_event_log(self.config.event_log) if challenge.want_event_log else None
        ima = self._ima.lines_from(challenge.ima_offset)
        return NodeEvidence(
            nonce=challenge.nonce,
            quote=quote.attest,
            signature=quote.signature,
            pcrs=build_tpm2tools_pcr_blob(selections, banks),
            event_log=event_log,
            ima_offset=ima.offset,
            ima_entries=ima.text,
        )

    def push_round(self) -> Verdict:
        """One push round: ask for a challenge, answer it, return the verifier's verdict.

        A verifier that no longer knows this node (404: its database was reset or the node deleted) gets a new
        registration with the same AK, then the round goes on. When the verifier refuses the evidence because its
        challenge no longer applies — 409: the node rebooted since the challenge was made, so the incremental state
        does not apply; 422: the challenge expired or the node's state moved on — the round starts over once with a
        new challenge.
        """
        self.ensure_registered()
        try:
            return self._push_once()
        except (ConflictError, VerifierRefusedError) as exc:
            _log.info("the verifier asks for a new round: %s", exc)
            return self._push_once()

    def _push_once(self) -> Verdict:
        try:
            reply = self._client.request("GET", self._node_path + "/challenge")
        except NotFoundError:
            _log.warning("the verifier does not know node %s: registering again", self.config.node_id)
            with self._identity_lock:
                self._save(self.identity.unregistered())
                self.register()
            reply = self._client.request("GET", self._node_path + "/challenge")
        evidence = self.answer(Challenge.from_json(reply))
        reply = self._client.request("POST", self._node_path + "/evidence", body=evidence.to_json())
        verdict = Verdict.from_json(reply)
        self.last_verdict = verdict
        self.rounds += 1
        if verdict.passed:
            _log.info("round %d: %s, passed", self.rounds, verdict.state)
        else:
            _log.warning("round %d: %s, FAILED: %s", self.rounds, verdict.state, ", ".join(verdict.finding_ids()))
        return verdict

    def run_push(self, *, rounds: int | None = None, on_verdict: Callable[[Verdict], None] | None = None) -> None:
        """Push rounds every ``interval`` seconds until stopped (or ``rounds`` rounds were tried); ``on_verdict``
        sees each verdict.

        A round that fails (verifier unreachable after retries, TPM error, bad reply, evidence refused) is logged and
        the next round comes at the next interval; ConfigError (bad local state) ends the loop.
        """
        tried = 0
        while not self.stop_event.is_set() and (rounds is None or tried < rounds):
            started = time.monotonic()
            tried += 1
            try:
                verdict = self.push_round()
            except StoppedError:
                break
            except _ROUND_ERRORS as exc:
                _log.error("push round failed: %s: %s", type(exc).__name__, exc)
            else:
                if on_verdict is not None:
                    on_verdict(verdict)
            if rounds is not None and tried >= rounds:
                break
            self.stop_event.wait(max(0.0, self.config.interval - (time.monotonic() - started)))


class _LockedTpm:
    """A TpmDevice opened for one operation while holding the agent's TPM lock."""

    def __init__(self, tcti: str, lock: threading.Lock) -> None:
        self._device = TpmDevice(tcti)
        self._lock = lock

    def __enter__(self) -> TpmDevice:
        self._lock.acquire()
        opened = False
        try:
            device = self._device.open()
            opened = True
            return device
        finally:
            if not opened:
                self._lock.release()

    def __exit__(self, *_: object) -> None:
        try:
            self._device.close()
        finally:
            self._lock.release()
