"""Configuration of the verifier service, passed in (never read from globals or the environment), and its errors."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from veritee import __version__
from veritee.appraisal.ear import VerifierId
from veritee.appraisal.jws import PrivateKey
from veritee.errors import ConfigError, ConflictError, ForbiddenError

__all__ = [
    "DEFAULT_PCR_SELECTION",
    "EvidenceRefusedError",
    "NodeRebootedError",
    "RemediationAction",
    "VerifierConfig",
    "WrongSecretError",
    "default_replica_id",
]

DEFAULT_PCR_SELECTION: Mapping[str, tuple[int, ...]] = MappingProxyType({"sha256": (*range(11), 14)})
"""PCRs 0-9 (firmware and boot loader), 10 (IMA) and 14 (shim's MOK lists) in the SHA-256 bank."""


class RemediationAction(StrEnum):
    """What the verifier does when a node's appraisal fails."""

    QUARANTINE = "quarantine"
    """Move the node to the quarantined state (only an operator releases it)."""
    NOTIFY = "notify"
    """Publish a ``node.appraisal_failed`` event (with the findings) for every failed appraisal."""
    REVOKE = "revoke"
    """Revoke the node's AK: its evidence is refused until it registers again."""
    TAM_BLOCK = "tam-block"
    """Tell the TAM to stop deploying to the node (POST {tam_url}/admin/devices/{id}/block)."""


class WrongSecretError(ForbiddenError):
    """The secret a node returned does not open the credential challenge: it does not hold the AK and EK it
    registered. The challenge is spent; the node must register again. (HTTP 403.)"""


class EvidenceRefusedError(ForbiddenError):
    """Evidence (or a challenge request) from a node that may not send any: unknown, not activated, AK revoked."""


class NodeRebootedError(ConflictError):
    """The node rebooted (or its boot PCRs changed) since the challenge was made: its IMA offset and event log no
    longer apply. Nothing was recorded; the node should ask for a new challenge, which covers the new boot."""


def default_replica_id() -> str:
    """hostname-pid-random: unique per process, readable in the replicas table."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class VerifierConfig:
    """Everything the verifier service needs to know; validated when built.

    Times are seconds. ``interval_s`` is the default attestation interval (a node or its group may set its own);
    ``lease_s`` how long a replica's claim on a node lasts without renewal (a dead replica's nodes are taken over
    within that); ``late_grace_s`` how long after its interval a push node may be silent before it is unreachable
    (default: one interval). ``ek_ca_certs`` are the manufacturer CA certificates (PEM or DER) EK certificates must
    chain to. ``webhooks`` receive every event; ``remediation`` lists the actions on a failed appraisal.
    """

    replica_id: str = field(default_factory=default_replica_id)
    interval_s: float = 60.0
    lease_s: float = 30.0
    tick_s: float | None = None
    late_grace_s: float | None = None
    ek_ca_certs: tuple[bytes, ...] = ()
    allow_uncertified_ek: bool = False
    pcr_selection: Mapping[str, tuple[int, ...]] = field(default_factory=lambda: DEFAULT_PCR_SELECTION)
    webhooks: tuple[str, ...] = ()
    remediation: frozenset[RemediationAction] = frozenset({RemediationAction.NOTIFY})
    tam_url: str | None = None
    tam_token: str | None = None
    admin_token: str | None = None
    ear_key: PrivateKey | None = None
    verifier_id: VerifierId = field(default_factory=lambda: VerifierId("veritee", __version__))
    default_policy: str | None = "default"
    keep_evidence: bool = True
    challenge_ttl_s: float = 120.0
    registration_ttl_s: float = 600.0
    pull_timeout_s: float = 10.0
    pull_concurrency: int = 64
    batch_size: int = 256
    delivery_max_attempts: int = 8
    delivery_backoff_s: float = 0.5
    delivery_backoff_max_s: float = 60.0
    delivery_timeout_s: float = 5.0
    delivery_poll_s: float = 0.2
    stream_poll_s: float = 0.2

    def __post_init__(self) -> None:
        positive = {
            "interval_s": self.interval_s,
            "lease_s": self.lease_s,
            "challenge_ttl_s": self.challenge_ttl_s,
            "registration_ttl_s": self.registration_ttl_s,
            "pull_timeout_s": self.pull_timeout_s,
            "delivery_backoff_s": self.delivery_backoff_s,
            "delivery_backoff_max_s": self.delivery_backoff_max_s,
            "delivery_timeout_s": self.delivery_timeout_s,
            "delivery_poll_s": self.delivery_poll_s,
            "stream_poll_s": self.stream_poll_s,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigError(f"{name} must be positive, not {value}")
        for name, optional in (("tick_s", self.tick_s), ("late_grace_s", self.late_grace_s)):
            if optional is not None and not optional > 0:
                raise ConfigError(f"{name} must be positive, not {optional}")
        if self.pull_concurrency < 1 or self.batch_size < 1 or self.delivery_max_attempts < 1:
            raise ConfigError("pull_concurrency, batch_size and delivery_max_attempts must be at least 1")
        if not self.replica_id or len(self.replica_id) > 100:
            raise ConfigError("replica_id must be 1..100 characters")
        if not self.ek_ca_certs and not self.allow_uncertified_ek:
            raise ConfigError("no EK CA certificates configured: give ek_ca_certs (or allow_uncertified_ek for tests)")
        if RemediationAction.TAM_BLOCK in self.remediation and (not self.tam_url or not self.tam_token):
            raise ConfigError("the tam-block remediation needs tam_url and tam_token")
        for url in (*self.webhooks, *([self.tam_url] if self.tam_url else [])):
            if not url.startswith(("http://", "https://")):
                raise ConfigError(f"{url!r} is not an http(s) URL")
        if not self.pcr_selection or any(not pcrs for pcrs in self.pcr_selection.values()):
            raise ConfigError("pcr_selection must select at least one PCR")

    @property
    def tick(self) -> float:
        """How often the attestation loop looks for due nodes and renews its leases."""
        if self.tick_s is not None:
            return self.tick_s
        return min(5.0, max(0.05, min(self.interval_s, self.lease_s) / 4))

    @property
    def grace(self) -> float:
        return self.late_grace_s if self.late_grace_s is not None else self.interval_s
