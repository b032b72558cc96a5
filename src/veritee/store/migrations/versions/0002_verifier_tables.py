"""verifier tables

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 13:30:27.509211
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "verifier_event_logs",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_verifier_event_logs")),
    )
    op.create_table(
        "verifier_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "node.registered",
                "node.trusted",
                "node.untrusted",
                "node.recovered",
                "node.unreachable",
                "node.quarantined",
                "node.released",
                "node.revoked",
                "node.appraisal_failed",
                name="nodeevent",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "previous_state",
            sa.Enum(
                "registered",
                "trusted",
                "untrusted",
                "unreachable",
                "quarantined",
                name="nodestate",
                native_enum=False,
                length=32,
            ),
            nullable=True,
        ),
        sa.Column(
            "state",
            sa.Enum(
                "registered",
                "trusted",
                "untrusted",
                "unreachable",
                "quarantined",
                name="nodestate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verifier_events")),
    )
    with op.batch_alter_table("verifier_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_verifier_events_node_id"), ["node_id"], unique=False)

    op.create_table(
        "verifier_groups",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("policy_name", sa.String(length=200), nullable=True),
        sa.Column("interval_s", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_verifier_groups")),
    )
    op.create_table(
        "verifier_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "registration", "appraisal", "unreachable", "admin", name="historykind", native_enum=False, length=32
            ),
            nullable=False,
        ),
        sa.Column(
            "state",
            sa.Enum(
                "registered",
                "trusted",
                "untrusted",
                "unreachable",
                "quarantined",
                name="nodestate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("passed", sa.Boolean(), nullable=True),
        sa.Column("policy_id", sa.String(length=200), nullable=True),
        sa.Column("findings", sa.JSON(), nullable=False),
        sa.Column("ear", sa.Text(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verifier_history")),
        sa.UniqueConstraint("node_id", "seq", name=op.f("uq_verifier_history_node_id")),
    )
    with op.batch_alter_table("verifier_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_verifier_history_node_id"), ["node_id"], unique=False)

    op.create_table(
        "verifier_nodes",
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("ek_public", sa.LargeBinary(), nullable=False),
        sa.Column("ek_cert", sa.LargeBinary(), nullable=True),
        sa.Column("ak_public", sa.LargeBinary(), nullable=False),
        sa.Column("ak_name", sa.LargeBinary(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("agent_url", sa.String(length=2000), nullable=True),
        sa.Column("mode", sa.Enum("pull", "push", name="nodemode", native_enum=False, length=32), nullable=False),
        sa.Column("group_name", sa.String(length=200), nullable=True),
        sa.Column("policy_name", sa.String(length=200), nullable=True),
        sa.Column("interval_s", sa.Float(), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "registered",
                "trusted",
                "untrusted",
                "unreachable",
                "quarantined",
                name="nodestate",
                native_enum=False,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("activated", sa.Boolean(), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ak_revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("challenge_id", sa.String(length=64), nullable=True),
        sa.Column("challenge_secret_sha256", sa.LargeBinary(), nullable=True),
        sa.Column("challenge_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pending_registration", sa.JSON(), nullable=True),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("clock", sa.JSON(), nullable=True),
        sa.Column("ima_state", sa.JSON(), nullable=True),
        sa.Column("event_log_digest", sa.String(length=64), nullable=True),
        sa.Column("boot_pcrs_digest", sa.String(length=64), nullable=True),
        sa.Column("want_full", sa.Boolean(), nullable=False),
        sa.Column("pending_challenges", sa.JSON(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attested_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_passed", sa.Boolean(), nullable=True),
        sa.Column("last_policy_id", sa.String(length=200), nullable=True),
        sa.Column("next_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tam_blocked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("history_seq", sa.Integer(), nullable=False),
        sa.Column("history_head", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_verifier_nodes")),
    )
    with op.batch_alter_table("verifier_nodes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_verifier_nodes_group_name"), ["group_name"], unique=False)
        batch_op.create_index(batch_op.f("ix_verifier_nodes_lease_owner"), ["lease_owner"], unique=False)
        batch_op.create_index(batch_op.f("ix_verifier_nodes_next_due_at"), ["next_due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_verifier_nodes_state"), ["state"], unique=False)

    op.create_table(
        "verifier_policies",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("policy_id", sa.String(length=200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_verifier_policies")),
    )
    op.create_table(
        "verifier_replicas",
        sa.Column("replica_id", sa.String(length=100), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("info", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("replica_id", name=op.f("pk_verifier_replicas")),
    )
    with op.batch_alter_table("verifier_replicas", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_verifier_replicas_heartbeat_at"), ["heartbeat_at"], unique=False)

    op.create_table(
        "verifier_ima_logs",
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("reset_count", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["verifier_nodes.node_id"],
            name=op.f("fk_verifier_ima_logs_node_id_verifier_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_verifier_ima_logs")),
    )
    op.create_table(
        "verifier_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column(
            "kind", sa.Enum("webhook", "tam-block", name="deliverykind", native_enum=False, length=32), nullable=False
        ),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["verifier_events.id"],
            name=op.f("fk_verifier_outbox_event_id_verifier_events"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_verifier_outbox")),
    )
    with op.batch_alter_table("verifier_outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_verifier_outbox_next_attempt_at"), ["next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("verifier_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verifier_outbox_next_attempt_at"))

    op.drop_table("verifier_outbox")
    op.drop_table("verifier_ima_logs")
    with op.batch_alter_table("verifier_replicas", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verifier_replicas_heartbeat_at"))

    op.drop_table("verifier_replicas")
    op.drop_table("verifier_policies")
    with op.batch_alter_table("verifier_nodes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verifier_nodes_state"))
        batch_op.drop_index(batch_op.f("ix_verifier_nodes_next_due_at"))
        batch_op.drop_index(batch_op.f("ix_verifier_nodes_lease_owner"))
        batch_op.drop_index(batch_op.f("ix_verifier_nodes_group_name"))

    op.drop_table("verifier_nodes")
    with op.batch_alter_table("verifier_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verifier_history_node_id"))

    op.drop_table("verifier_history")
    op.drop_table("verifier_groups")
    with op.batch_alter_table("verifier_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_verifier_events_node_id"))

    op.drop_table("verifier_events")
    op.drop_table("verifier_event_logs")
