"""LangGraph checkpoints in the store's own database: lg_checkpoints, lg_checkpoint_writes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
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
        "lg_checkpoints",
        sa.Column("thread_id", sa.String(64), nullable=False),
        sa.Column("checkpoint_ns", sa.String(255), nullable=False),
        sa.Column("checkpoint_id", sa.String(64), nullable=False),
        sa.Column("parent_checkpoint_id", sa.String(64), nullable=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("checkpoint", sa.LargeBinary, nullable=False),
        sa.Column("metadata_type", sa.String(32), nullable=False),
        sa.Column("metadata", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("thread_id", "checkpoint_ns", name="pk_lg_checkpoints"),
    )
    op.create_table(
        "lg_checkpoint_writes",
        sa.Column("thread_id", sa.String(64), nullable=False),
        sa.Column("checkpoint_ns", sa.String(255), nullable=False),
        sa.Column("checkpoint_id", sa.String(64), nullable=False),
        sa.Column("task_id", sa.String(64), nullable=False),
        sa.Column("idx", sa.Integer, nullable=False),
        sa.Column("task_path", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint(
            "thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx", name="pk_lg_checkpoint_writes"
        ),
    )


def downgrade() -> None:
    op.drop_table("lg_checkpoint_writes")
    op.drop_table("lg_checkpoints")
