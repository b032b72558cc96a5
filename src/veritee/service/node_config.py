"""Configuration of the node agent (built by the CLI or a test, passed in; nothing is read from the environment)."""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from veritee.errors import ConfigError
from veritee.service.node_logs import DEFAULT_EVENT_LOG, DEFAULT_IMA_LOG
from veritee.tpm.device import AkAlg, EkKind

__all__ = ["NODE_ID", "AgentConfig", "AgentMode", "RetryPolicy", "parse_listen"]

NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")
"""Node ids appear in URLs; the verifier accepts these (docs/node-verifier-api.md)."""


class AgentMode(StrEnum):
    """Who starts a round: the verifier (pull: it POSTs /v1/quote to the agent) or the agent (push, on its interval)."""

    PULL = "pull"
    PUSH = "push"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff for a verifier that is down or overloaded (connection errors, 5xx, 429).

    The n-th retry waits ``min(max_delay, initial_delay * factor ** (n - 1))``, less up to ``jitter`` of it at random
    (so a fleet that lost its verifier does not come back in lockstep). ``attempts`` bounds the tries of one request
    (None: keep trying).
    """

    initial_delay: float = 0.5
    max_delay: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    attempts: int | None = None

    def __post_init__(self) -> None:
        if self.initial_delay < 0 or self.max_delay < self.initial_delay or self.factor < 1:
            raise ConfigError(f"invalid retry policy {self}")
        if not 0 <= self.jitter < 1:
            raise ConfigError(f"retry jitter must be in [0, 1), not {self.jitter}")
        if self.attempts is not None and self.attempts < 1:
            raise ConfigError(f"retry attempts must be at least 1, not {self.attempts}")

    def delay(self, retry: int, rng: random.Random) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        base = min(self.max_delay, self.initial_delay * self.factor ** max(0, retry - 1))
        return base * (1 - self.jitter * rng.random())


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:PORT``) -> (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(f"--listen must be HOST:PORT, not {text!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port} is out of range")
    return host.strip("[]"), port


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """Everything the node agent needs.

    ``tcti`` is a tpm2-tss TCTI string (``device:/dev/tpmrm0`` on a host, ``swtpm:host=...,port=...`` for swtpm).
    ``state_dir`` keeps the AK (wrapped by this TPM's EK) so a restarted agent keeps its identity. ``agent_url`` is
    the URL the verifier reaches the agent at in pull mode.
    """

    verifier_url: str
    tcti: str
    node_id: str
    state_dir: Path
    mode: AgentMode = AgentMode.PUSH
    event_log: Path | None = DEFAULT_EVENT_LOG
    ima_log: Path | None = DEFAULT_IMA_LOG
    agent_url: str | None = None
    interval: float = 60.0
    ek_kind: EkKind = EkKind.RSA
    ak_alg: AkAlg = AkAlg.RSA2048_RSASSA_SHA256
    attributes: Mapping[str, str] = field(default_factory=dict)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 30.0

    def __post_init__(self) -> None:
        _check_url(self.verifier_url, "verifier URL")
        if self.agent_url is not None:
            _check_url(self.agent_url, "agent URL")
        if self.mode is AgentMode.PULL and self.agent_url is None:
            raise ConfigError("pull mode needs the URL the verifier reaches this agent at (agent_url)")
        if not NODE_ID.fullmatch(self.node_id):
            raise ConfigError(f"node id {self.node_id!r} is not 1..200 of [A-Za-z0-9._:-] (starting alphanumeric)")
        if self.interval <= 0:
            raise ConfigError(f"the interval must be positive, not {self.interval}")
        if self.timeout <= 0:
            raise ConfigError(f"the timeout must be positive, not {self.timeout}")
        if not self.tcti:
            raise ConfigError("no TCTI given")

    @property
    def verifier_base(self) -> str:
        return self.verifier_url.rstrip("/")


def _check_url(url: str, what: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"the {what} must be an http(s) URL, not {url!r}")
