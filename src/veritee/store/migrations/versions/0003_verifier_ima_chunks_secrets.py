"""verifier: IMA lists kept in chunks, shared secrets

The kept IMA list of a node moves from one text column (rewritten whole by every round) to one row per appended
chunk; ``verifier_secrets`` holds the key that authenticates push challenges, shared by every replica.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_logs = sa.table(
    "verifier_ima_logs",
    sa.column("node_id", sa.String),
    sa.column("lines", sa.Integer),
    sa.column("content", sa.Text),
)
_chunks = sa.table(
    "verifier_ima_chunks",
    sa.column("node_id", sa.String),
    sa.column("start_line", sa.Integer),
    sa.column("lines", sa.Integer),
    sa.column("content", sa.Text),
)


def upgrade() -> None:
    op.create_table(
        "verifier_secrets",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_verifier_secrets")),
    )
    op.create_table(
        "verifier_ima_chunks",
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("start_line", sa.Integer(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["verifier_ima_logs.node_id"],
            name=op.f("fk_verifier_ima_chunks_node_id_verifier_ima_logs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("node_id", "start_line", name=op.f("pk_verifier_ima_chunks")),
    )
    op.execute(
        _chunks.insert().from_select(
            ["node_id", "start_line", "lines", "content"],
            sa.select(_logs.c.node_id, sa.literal(0), _logs.c.lines, _logs.c.content),
        )
    )
    with op.batch_alter_table("verifier_ima_logs", schema=None) as batch_op:
        batch_op.drop_column("content")


def downgrade() -> None:
    with op.batch_alter_table("verifier_ima_logs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("content", sa.Text(), nullable=False, server_default=""))
    connection = op.get_bind()
    texts: dict[str, list[str]] = {}
    query = sa.select(_chunks.c.node_id, _chunks.c.content).order_by(_chunks.c.node_id, _chunks.c.start_line)
    for node_id, content in connection.execute(query):
        texts.setdefault(node_id, []).append(content)
    for node_id, parts in texts.items():
        connection.execute(_logs.update().where(_logs.c.node_id == node_id).values(content="".join(parts)))
    with op.batch_alter_table("verifier_ima_logs", schema=None) as batch_op:
        batch_op.alter_column("content", server_default=None)
    op.drop_table("verifier_ima_chunks")
    op.drop_table("verifier_secrets")
