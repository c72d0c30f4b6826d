"""Core data types (pydantic v2): messages, tool calls, steps, episodes, tasks, rewards, events.

Every type round-trips exactly through JSON: ``T.model_validate_json(x.model_dump_json()) == x``.
These are the shapes stored in SQL, streamed to front ends and read by the trainer.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]
EpisodeStatus = Literal["running", "done", "truncated", "error", "interrupted"]
StepRole = Literal["prompt", "assistant", "tool"]


def new_id() -> str:
    """Return a fresh random hex id."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ToolCall(_Model):
    """One call the model asked for: a tool name and its JSON arguments."""

    id: str = Field(default_factory=lambda: "call_" + uuid.uuid4().hex[:12])
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolResult(_Model):
    """What a tool call returned, as shown to the model (``content``) and as data."""

    call_id: str
    name: str
    content: str
    is_error: bool = False
    data: Any = None
    duration_ms: float = 0.0


class Message(_Model):
    """One chat message. Assistant messages may carry the exact token ids that were sampled."""

    role: Role
    content: str
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    token_ids: list[int] | None = None


class SamplingParams(_Model):
    """Sampling settings for one model turn."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    n: int = 1
    seed: int | None = None
    stop: list[str] = Field(default_factory=list)


class Completion(_Model):
    """One model turn: the text plus the exact sampled tokens and their logprobs.

    ``prompt_token_ids`` are the ids the model was conditioned on (when the backend
    reports them); ``token_ids`` are the sampled ids and ``logprobs[i]`` is the log
    probability of ``token_ids[i]`` under the sampling policy.
    """

    text: str
    token_ids: list[int] = Field(default_factory=list)
    logprobs: list[float] = Field(default_factory=list)
    prompt_token_ids: list[int] = Field(default_factory=list)
    finish_reason: str = "stop"
    model: str = ""
    policy_version: int = 0


class Step(_Model):
    """One step of an episode: the prompt, a model turn, or the results of its tool calls.

    For model turns ``token_ids``/``logprobs`` are what was sampled and ``loss_mask``
    has one entry per token id (1 = sampled by the policy, 0 = forced).
    ``prompt_token_ids`` is the exact context the turn was sampled from.
    """

    index: int
    role: StepRole
    text: str = ""
    messages: list[Message] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_results: list[ToolResult] = Field(default_factory=list)
    token_ids: list[int] = Field(default_factory=list)
    logprobs: list[float] = Field(default_factory=list)
    loss_mask: list[int] = Field(default_factory=list)
    prompt_token_ids: list[int] = Field(default_factory=list)
    policy_version: int = 0
    started_at: datetime = Field(default_factory=utcnow)
    duration_ms: float = 0.0


class Reward(_Model):
    """One named reward of an episode; ``error`` is set (and value None) when the function failed."""

    name: str
    value: float | None
    error: str | None = None


class Task(_Model):
    """One task of a suite: the prompt, the gold answer and anything the tools need."""

    id: str
    suite: str
    prompt: str
    gold: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class Episode(_Model):
    """One run of the agent on one task, with all its steps and rewards."""

    id: str = Field(default_factory=new_id)
    run_id: str = ""
    suite: str = ""
    task_id: str = ""
    model: str = ""
    policy_version: int = 0
    status: EpisodeStatus = "running"
    final_answer: str | None = None
    rewards: dict[str, float | None] = Field(default_factory=dict)
    reward_errors: dict[str, str] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    error: str | None = None
    task: Task | None = None
    steps: list[Step] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None
    duration_ms: float = 0.0

    @property
    def model_steps(self) -> list[Step]:
        """The steps sampled by the model, in order."""
        return [s for s in self.steps if s.role == "assistant"]

    @property
    def reward(self) -> float | None:
        """The ``total`` reward if present, else the sum of rewards, None on any reward error."""
        if self.reward_errors:
            return None
        if "total" in self.rewards:
            return self.rewards["total"]
        values = [v for v in self.rewards.values() if v is not None]
        return float(sum(values)) if values else None


class Run(_Model):
    """A group of episodes started together (a batch, an eval, a training run)."""

    id: str = Field(default_factory=new_id)
    kind: str = "rollout"
    suite: str = ""
    model: str = ""
    config: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)


# ----- events streamed by the agent -----


class EpisodeStarted(_Model):
    """The episode began."""

    type: Literal["episode_started"] = "episode_started"
    episode_id: str
    task: Task


class TokenDelta(_Model):
    """Text the model produced while streaming a turn."""

    type: Literal["token"] = "token"
    episode_id: str
    text: str


class StepCompleted(_Model):
    """A step was completed and stored."""

    type: Literal["step"] = "step"
    episode_id: str
    step: Step


class IntermediateAnswer(_Model):
    """An ``<answer>`` block closed while the model was still generating."""

    type: Literal["intermediate_answer"] = "intermediate_answer"
    episode_id: str
    text: str
    index: int
    elapsed_ms: float


class EpisodeFinished(_Model):
    """The episode ended (done, truncated, error)."""

    type: Literal["episode_finished"] = "episode_finished"
    episode: Episode


Event = Annotated[
    EpisodeStarted | TokenDelta | StepCompleted | IntermediateAnswer | EpisodeFinished,
    Field(discriminator="type"),
]
