"""Every table, imported in one place so Alembic and metadata.create_all see them all."""

from veritee.store.base import Base
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
from veritee.store.verifier_models import (
    VerifierEvent,
    VerifierEventLog,
    VerifierGroup,
    VerifierHistory,
    VerifierImaLog,
    VerifierNode,
    VerifierOutbox,
    VerifierPolicy,
    VerifierReplica,
)

__all__ = [
    "AdminToken",
    "AttestationStatus",
    "Base",
    "Deployment",
    "Device",
    "DeviceComponent",
    "TcSigner",
    "TeepToken",
    "TrustedComponent",
    "VerifierEvent",
    "VerifierEventLog",
    "VerifierGroup",
    "VerifierHistory",
    "VerifierImaLog",
    "VerifierNode",
    "VerifierOutbox",
    "VerifierPolicy",
    "VerifierReplica",
]
