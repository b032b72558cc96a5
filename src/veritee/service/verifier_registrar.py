"""The registrar: a node proves its TPM before the verifier attests it.

``register`` checks the EK certificate against the configured manufacturer CAs (the certificate's key must be the
EK the node sent), checks that the AK is a restricted signing key, and answers with a MakeCredential challenge bound
to the AK's name and encrypted to the EK: only the TPM holding both can recover the secret (TPM2_ActivateCredential).
``activate`` compares the secret; only then does the node become attestable with that AK. A wrong secret spends the
challenge (the node must register again) and the node is never trusted with that AK.

A registration for a node id that exists must come from the same EK; its AK, attributes and agent URL replace the
current ones only when the new AK is activated, so a registration request alone (the EK public key is not secret)
cannot take a working node out of service. Activating clears a revocation.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from sqlalchemy.orm import Session

from veritee.appraisal.node_state import NodeEvent, NodeInput, NodeState, next_state
from veritee.errors import ConfigError, ConflictError, FreshnessError, NotFoundError, UntrustedSignerError, VeriteeError
from veritee.errors import ValidationError as VeriteeValidationError
from veritee.service.node_wire import ActivationRequest, CredentialChallenge, RegistrationRequest, b64decode, b64encode
from veritee.service.verifier_config import VerifierConfig, WrongSecretError
from veritee.service.verifier_events import emit_event
from veritee.service.verifier_history import append_record
from veritee.store.base import utcnow
from veritee.store.db import Database
from veritee.store.verifier_models import HistoryKind, NodeMode, VerifierNode
from veritee.tpm.credential import make_credential, parse_encryption_key
from veritee.tpm.public import TpmtPublic
from veritee.tpm.quote import check_ak

__all__ = ["NODE_ID", "Registrar", "load_ca_certificates", "verify_ek_certificate"]

NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")
"""Node ids appear in URLs: letters, digits, ``.``, ``_``, ``:``, ``-``; at most 200 characters."""

_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def load_ca_certificates(blobs: Sequence[bytes]) -> list[x509.Certificate]:
    """CA certificates from PEM (any number of blocks) or DER blobs; ConfigError for anything else."""
    certs: list[x509.Certificate] = []
    for index, blob in enumerate(blobs):
        try:
            blocks = _PEM_BLOCK.findall(blob)
            if blocks:
                certs.extend(x509.load_pem_x509_certificate(block) for block in blocks)
            else:
                certs.append(x509.load_der_x509_certificate(blob))
        except ValueError as exc:
            raise ConfigError(f"EK CA certificate {index} cannot be loaded: {exc}") from None
    return certs


def verify_ek_certificate(
    cert_der: bytes, ek_public: bytes, cas: Sequence[x509.Certificate], now: datetime
) -> x509.Certificate:
    """The EK certificate, once it is directly issued by one of ``cas`` (trust anchors or intermediates the operator
    configured), valid at ``now`` (and so is its issuer), and certifies exactly the key in ``ek_public``."""
    try:
        cert = x509.load_der_x509_certificate(cert_der)
    except ValueError as exc:
        raise VeriteeValidationError(f"EK certificate is not a DER X.509 certificate: {exc}") from None
    issuer = None
    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        issuer = ca
        break
    if issuer is None:
        raise UntrustedSignerError(
            f"EK certificate (issuer {cert.issuer.rfc4514_string()!r}) is not issued by a configured CA"
        )
    for what, item in (("EK certificate", cert), ("its issuer", issuer)):
        if not item.not_valid_before_utc <= now <= item.not_valid_after_utc:
            raise UntrustedSignerError(
                f"{what} is valid from {item.not_valid_before_utc} to {item.not_valid_after_utc}, not at {now}"
            )
    ek = parse_encryption_key(ek_public)
    if cert.public_key() != ek.key:
        raise UntrustedSignerError("the EK certificate certifies another key than the EK the node sent")
    return cert


def _check_request(request: RegistrationRequest) -> None:
    if not NODE_ID.fullmatch(request.node_id):
        raise VeriteeValidationError(f"node_id {request.node_id[:60]!r} is not 1..200 of [A-Za-z0-9._:-]")
    url = request.agent_url
    if url is not None and (not url.startswith(("http://", "https://")) or len(url) > 2000):
        raise VeriteeValidationError("agent_url must be an http(s) URL of at most 2000 characters")
    if len(request.attributes) > 64 or any(len(k) > 200 or len(v) > 2000 for k, v in request.attributes.items()):
        raise VeriteeValidationError("at most 64 attributes, names up to 200 and values up to 2000 characters")


class Registrar:
    """Registration and credential activation against the verifier's database."""

    def __init__(self, db: Database, config: VerifierConfig, *, now: Callable[[], datetime] = utcnow) -> None:
        self.db = db
        self.config = config
        self._cas = load_ca_certificates(config.ek_ca_certs)
        self._now = now

    def register(self, request: RegistrationRequest) -> CredentialChallenge:
        """Check the EK and AK, store the pending registration, return the MakeCredential challenge."""
        _check_request(request)
        now = self._now()
        ek = parse_encryption_key(request.ek_public)
        if request.ek_cert is not None:
            verify_ek_certificate(request.ek_cert, request.ek_public, self._cas, now)
        elif not self.config.allow_uncertified_ek:
            raise VeriteeValidationError("an EK certificate is required to register")
        ak = TpmtPublic.from_tpm2b(request.ak_public)
        check_ak(ak)
        ak_name = ak.name()
        secret = os.urandom(min(32, ek.name_alg.digest_size))
        credential_blob, encrypted_secret = make_credential(request.ek_public, ak_name, secret)
        challenge_id = uuid.uuid4().hex
        pending: dict[str, Any] = {
            "ak_public": b64encode(request.ak_public),
            "ak_name": b64encode(ak_name),
            "ek_cert": None if request.ek_cert is None else b64encode(request.ek_cert),
            "attributes": dict(request.attributes),
            "agent_url": request.agent_url,
        }
        with self.db.transaction() as session:
            node = session.get(VerifierNode, request.node_id, with_for_update=True)
            if node is None:
                node = VerifierNode(
                    node_id=request.node_id,
                    ek_public=request.ek_public,
                    ek_cert=request.ek_cert,
                    ak_public=request.ak_public,
                    ak_name=ak_name,
                    attributes=dict(request.attributes),
                    agent_url=request.agent_url,
                    mode=NodeMode.PULL if request.agent_url else NodeMode.PUSH,
                    state=NodeState.REGISTERED,
                    activated=False,
                    round=0,
                    want_full=True,
                    pending_challenges=[],
                    history_seq=0,
                    history_head="0" * 64,
                    created_at=now,
                )
                session.add(node)
            elif not hmac.compare_digest(node.ek_public, request.ek_public):
                raise ConflictError(f"node {request.node_id!r} is registered with another EK")
            node.challenge_id = challenge_id
            node.challenge_secret_sha256 = hashlib.sha256(secret).digest()
            node.challenge_expires_at = now + timedelta(seconds=self.config.registration_ttl_s)
            node.pending_registration = pending
        return CredentialChallenge(challenge_id, credential_blob, encrypted_secret)

    def activate(self, node_id: str, request: ActivationRequest) -> NodeState:
        """Compare the recovered secret; on success the pending AK becomes the node's AK and it is attested."""
        now = self._now()
        outcome: NodeState | VeriteeError
        with self.db.transaction() as session:
            node = session.get(VerifierNode, node_id, with_for_update=True)
            if node is None:
                raise NotFoundError(f"no node {node_id!r}")
            outcome = self._activate(session, node, request, now)
        if isinstance(outcome, VeriteeError):
            raise outcome  # raised after the commit: a spent challenge stays spent
        return outcome

    def _activate(
        self, session: Session, node: VerifierNode, request: ActivationRequest, now: datetime
    ) -> NodeState | VeriteeError:
        stored = node.challenge_secret_sha256
        pending = node.pending_registration
        if node.challenge_id is None or stored is None or pending is None:
            return WrongSecretError(f"node {node.node_id!r} has no registration challenge open: register first")
        expired = node.challenge_expires_at is None or node.challenge_expires_at < now
        matches = hmac.compare_digest(request.challenge_id, node.challenge_id) and hmac.compare_digest(
            hashlib.sha256(request.secret).digest(), stored
        )
        node.challenge_id = None
        node.challenge_secret_sha256 = None
        node.challenge_expires_at = None
        node.pending_registration = None
        if expired:
            return FreshnessError(f"the registration challenge of {node.node_id!r} expired: register again")
        if not matches:
            return WrongSecretError(
                f"the secret does not open the credential challenge of {node.node_id!r}: the node does not hold the "
                "AK and EK it registered; register again"
            )
        reregistration = node.activated or node.history_seq > 0
        node.ak_public = b64decode(pending["ak_public"], "pending ak_public")
        node.ak_name = b64decode(pending["ak_name"], "pending ak_name")
        node.ek_cert = None if pending.get("ek_cert") is None else b64decode(pending["ek_cert"], "pending ek_cert")
        node.attributes = dict(pending.get("attributes") or {})
        node.agent_url = pending.get("agent_url")
        node.mode = NodeMode.PULL if node.agent_url else NodeMode.PUSH
        node.activated = True
        node.activated_at = now
        node.ak_revoked_at = None
        node.tam_blocked_at = None
        node.clock = None
        node.ima_state = None
        node.event_log_digest = None
        node.boot_pcrs_digest = None
        node.want_full = True
        node.pending_challenges = []
        node.round = node.round + 1
        first_due = 0.0 if node.mode is NodeMode.PULL else self.config.interval_s + self.config.grace
        node.next_due_at = now + timedelta(seconds=first_due)
        previous = NodeState(node.state)
        transition = next_state(previous, NodeInput.REREGISTER) if reregistration else None
        if transition is not None:
            node.state = transition.state
        append_record(
            session,
            node,
            at=now,
            kind=HistoryKind.REGISTRATION,
            detail={"ak_name": node.ak_name.hex(), "mode": node.mode.value, "reregistration": reregistration},
        )
        emit_event(
            session,
            node_id=node.node_id,
            kind=NodeEvent.REGISTERED,
            previous_state=previous if reregistration else None,
            state=NodeState(node.state),
            at=now,
            webhooks=self.config.webhooks,
            detail={"mode": node.mode.value},
        )
        return NodeState(node.state)
