"""Shared bits of the node tests: the e2e logs' type and a fast retry policy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from veritee.service.node_agent import NodeAgent
from veritee.service.node_config import RetryPolicy


@dataclass(frozen=True)
class Logs:
    event_log: bytes
    ima_log: str


FAST_RETRY = RetryPolicy(initial_delay=0.02, max_delay=0.1, jitter=0.0, attempts=50)

AgentFactory = Callable[..., NodeAgent]
"""``make_agent(verifier_url, *, on_retry=None, **config_overrides)``."""
