"""Initial schema: runs, episodes, steps, rewards, train_metrics.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
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
        "runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("suite", sa.String(128), nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_runs_kind_created_at", "runs", ["kind", "created_at"])
    op.create_index("ix_runs_created_at", "runs", ["created_at"])

    op.create_table(
        "episodes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("suite", sa.String(128), nullable=False),
        sa.Column("task_id", sa.Text, nullable=False),
        sa.Column("task", sa.Text, nullable=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("policy_version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("final_answer", sa.Text, nullable=True),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Double, nullable=False),
    )
    op.create_index("ix_episodes_run_id_created_at", "episodes", ["run_id", "created_at"])
    op.create_index("ix_episodes_suite_created_at", "episodes", ["suite", "created_at"])
    op.create_index("ix_episodes_status", "episodes", ["status"])
    op.create_index("ix_episodes_policy_version", "episodes", ["policy_version"])
    op.create_index("ix_episodes_created_at", "episodes", ["created_at"])

    op.create_table(
        "steps",
        sa.Column("episode_id", sa.String(64), sa.ForeignKey("episodes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("index", sa.Integer, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("messages", sa.Text, nullable=True),
        sa.Column("tool_calls", sa.Text, nullable=True),
        sa.Column("tool_results", sa.Text, nullable=True),
        sa.Column("token_ids", sa.LargeBinary, nullable=False),
        sa.Column("logprobs", sa.LargeBinary, nullable=False),
        sa.Column("loss_mask", sa.LargeBinary, nullable=False),
        sa.Column("prompt_token_ids", sa.LargeBinary, nullable=False),
        sa.Column("policy_version", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_ms", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("episode_id", "index", name="pk_steps"),
    )

    op.create_table(
        "rewards",
        sa.Column("episode_id", sa.String(64), sa.ForeignKey("episodes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("scored", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("episode_id", "name", name="pk_rewards"),
    )

    op.create_table(
        "train_metrics",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("step", sa.Integer, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_train_metrics_run_id_step", "train_metrics", ["run_id", "step"])


def downgrade() -> None:
    op.drop_table("train_metrics")
    op.drop_table("rewards")
    op.drop_table("steps")
    op.drop_index("ix_episodes_created_at", table_name="episodes")
    op.drop_index("ix_episodes_policy_version", table_name="episodes")
    op.drop_index("ix_episodes_status", table_name="episodes")
    op.drop_index("ix_episodes_suite_created_at", table_name="episodes")
    op.drop_index("ix_episodes_run_id_created_at", table_name="episodes")
    op.drop_table("episodes")
    op.drop_index("ix_runs_created_at", table_name="runs")
    op.drop_index("ix_runs_kind_created_at", table_name="runs")
    op.drop_table("runs")
