"""TAM tables

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-21 12:23:39.619256
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "admin_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_tokens")),
        sa.UniqueConstraint("name", name=op.f("uq_admin_tokens_name")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_admin_tokens_token_sha256")),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("component_id", sa.String(length=512), nullable=False),
        sa.Column("min_sequence_number", sa.BigInteger(), nullable=True),
        sa.Column("selector", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
    )
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deployments_component_id"), ["component_id"], unique=False)

    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_thumbprint", sa.String(length=128), nullable=False),
        sa.Column("cose_key", sa.LargeBinary(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "attestation_status",
            sa.Enum(
                "none",
                "affirming",
                "warning",
                "contraindicated",
                name="attestationstatus",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("attestation_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attestation_claims", sa.JSON(), nullable=True),
        sa.Column("last_evidence", sa.LargeBinary(), nullable=True),
        sa.Column("attestation_key", sa.LargeBinary(), nullable=True),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("blocked_reason", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("key_thumbprint", name=op.f("uq_devices_key_thumbprint")),
    )
    op.create_table(
        "tc_signers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        sa.Column("thumbprint", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tc_signers")),
        sa.UniqueConstraint("name", name=op.f("uq_tc_signers_name")),
        sa.UniqueConstraint("thumbprint", name=op.f("uq_tc_signers_thumbprint")),
    )
    op.create_table(
        "device_components",
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("component_id", sa.String(length=512), nullable=False),
        sa.Column("sequence_number", sa.BigInteger(), nullable=True),
        sa.Column("image_digest", sa.String(length=200), nullable=True),
        sa.Column("installed", sa.Boolean(), nullable=False),
        sa.Column("installed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_device_components_device_id_devices"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("device_id", "component_id", name=op.f("pk_device_components")),
    )
    op.create_table(
        "teep_tokens",
        sa.Column("token", sa.String(length=128), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_teep_tokens_device_id_devices"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_teep_tokens")),
    )
    with op.batch_alter_table("teep_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_teep_tokens_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "trusted_components",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("component_id", sa.String(length=512), nullable=False),
        sa.Column("manifest_id", sa.String(length=512), nullable=False),
        sa.Column("sequence_number", sa.BigInteger(), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("manifest_digest", sa.String(length=200), nullable=False),
        sa.Column("image_digest", sa.String(length=200), nullable=True),
        sa.Column("signer_id", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["signer_id"], ["tc_signers.id"], name=op.f("fk_trusted_components_signer_id_tc_signers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trusted_components")),
        sa.UniqueConstraint("component_id", "sequence_number", name=op.f("uq_trusted_components_component_id")),
    )
    with op.batch_alter_table("trusted_components", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trusted_components_component_id"), ["component_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_trusted_components_manifest_digest"), ["manifest_digest"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("trusted_components", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trusted_components_manifest_digest"))
        batch_op.drop_index(batch_op.f("ix_trusted_components_component_id"))

    op.drop_table("trusted_components")
    with op.batch_alter_table("teep_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_teep_tokens_expires_at"))

    op.drop_table("teep_tokens")
    op.drop_table("device_components")
    op.drop_table("tc_signers")
    op.drop_table("devices")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployments_component_id"))

    op.drop_table("deployments")
    op.drop_table("admin_tokens")
