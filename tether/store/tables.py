"""SQLAlchemy Core tables of the trajectory store (the schema that migration 0001 creates).

Arrays (token ids, logprobs, masks) are packed bytes (see ``tether.store.codec``);
structured fields (task, messages, tool calls/results, metrics, config) are JSON text.
Datetimes are UTC (``timestamptz`` on PostgreSQL, UTC text on SQLite).
A test compares this metadata with the migrations, so the two cannot drift.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from tether.store.codec import to_utc


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every dialect (SQLite keeps naive UTC text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = to_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


class SafeText(TypeDecorator[str]):
    """Text that may hold NUL characters (PostgreSQL ``text`` cannot): such values, and values
    that start with the marker, are stored as marker + JSON string; everything else as is."""

    impl = sa.Text
    cache_ok = True
    MARK = "\x01J"

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is not None and ("\x00" in value or value.startswith(self.MARK)):
            return self.MARK + json.dumps(value)
        return value

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is not None and value.startswith(self.MARK):
            return json.loads(value[len(self.MARK) :])  # type: ignore[no-any-return]
        return value


metadata = sa.MetaData()

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("suite", sa.String(128), nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_runs_kind_created_at", "kind", "created_at"),
    sa.Index("ix_runs_created_at", "created_at"),
)

episodes = sa.Table(
    "episodes",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("suite", sa.String(128), nullable=False),
    sa.Column("task_id", sa.Text, nullable=False),
    sa.Column("task", sa.Text, nullable=True),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("policy_version", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("final_answer", SafeText, nullable=True),
    sa.Column("metrics", sa.Text, nullable=False),
    sa.Column("error", SafeText, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("duration_ms", sa.Double, nullable=False),
    sa.Index("ix_episodes_run_id_created_at", "run_id", "created_at"),
    sa.Index("ix_episodes_suite_created_at", "suite", "created_at"),
    sa.Index("ix_episodes_status", "status"),
    sa.Index("ix_episodes_policy_version", "policy_version"),
    sa.Index("ix_episodes_created_at", "created_at"),
)

steps = sa.Table(
    "steps",
    metadata,
    sa.Column("episode_id", sa.String(64), sa.ForeignKey("episodes.id", ondelete="CASCADE"), nullable=False),
    sa.Column("index", sa.Integer, nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("text", SafeText, nullable=False),
    sa.Column("messages", sa.Text, nullable=True),
    sa.Column("tool_calls", sa.Text, nullable=True),
    sa.Column("tool_results", sa.Text, nullable=True),
    sa.Column("token_ids", sa.LargeBinary, nullable=False),
    sa.Column("logprobs", sa.LargeBinary, nullable=False),
    sa.Column("loss_mask", sa.LargeBinary, nullable=False),
    sa.Column("prompt_token_ids", sa.LargeBinary, nullable=False),
    sa.Column("policy_version", sa.Integer, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("duration_ms", sa.Double, nullable=False),
    sa.PrimaryKeyConstraint("episode_id", "index", name="pk_steps"),
)

rewards = sa.Table(
    "rewards",
    metadata,
    sa.Column("episode_id", sa.String(64), sa.ForeignKey("episodes.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("value", sa.Double, nullable=True),
    sa.Column("error", SafeText, nullable=True),
    # True when ``name`` is a key of ``Episode.rewards`` (a failed reward may only be in ``reward_errors``)
    sa.Column("scored", sa.Boolean, nullable=False),
    sa.PrimaryKeyConstraint("episode_id", "name", name="pk_rewards"),
)

train_metrics = sa.Table(
    "train_metrics",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("metrics", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_train_metrics_run_id_step", "run_id", "step"),
)

# LangGraph checkpoints (``tether.store.saver``): the newest checkpoint of each thread and
# the pending writes made after it; the agent deletes an episode's rows when it ends.
# ``lg_`` keeps them apart from the tables of LangGraph's own savers.
lg_checkpoints = sa.Table(
    "lg_checkpoints",
    metadata,
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

lg_checkpoint_writes = sa.Table(
    "lg_checkpoint_writes",
    metadata,
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
