"""The agent graph: a LangGraph ``StateGraph`` of two nodes, ``model`` and ``tools``.

    START -> model --(tool calls or bad calls)--> tools --(not finished)--> model
                   \\--(answer or budget)--> END      \\--(terminal tool or budget)--> END

The graph state is plain JSON (so any LangGraph checkpointer can persist it and an
interrupted episode resumes from its last completed step). Everything that is not
state — the model, the tool set, the store, the event sink — travels in the run-time
``EpisodeContext`` (LangGraph's ``context``), built fresh for every episode.

Every step is written to the trajectory store inside the node that made it, before the
node returns, so a killed process loses at most the step in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import Command

from tether.agents.reasoning import ReasoningMode
from tether.models.base import ChatModel
from tether.store.base import TrajectoryStore
from tether.suites.base import Suite
from tether.tools.base import ToolSet
from tether.tools.calls import parse_tool_calls
from tether.types import (
    Completion,
    IntermediateAnswer,
    Message,
    SamplingParams,
    Step,
    StepCompleted,
    Task,
    TokenDelta,
    ToolCall,
    ToolResult,
)


class Budget(TypedDict):
    """Limits that end an episode as ``truncated``."""

    max_turns: int
    max_new_tokens: int
    wall_time_s: float


class Control(TypedDict, total=False):
    """The JSON control state of one episode (what LangGraph checkpoints)."""

    episode_id: str
    n_messages: int
    next_index: int
    turns: int
    new_tokens: int
    elapsed_ms: float
    status: str
    final_answer: str | None
    pending_calls: list[dict[str, Any]]
    parse_errors: list[str]
    tool_calls: int
    invalid_calls: int
    first_answer_ms: float | None
    answers_streamed: int


class AgentState(TypedDict):
    """The graph state: one channel holding the control state.

    The transcript is not part of it: it lives in the trajectory store (every step is
    stored as it happens) and in the episode context; resume rebuilds it from the
    stored steps. Keeping the checkpoint small and the channel count at one keeps
    LangGraph's per-step cost close to a bare loop.
    """

    ep: Control


_ENDED = ("done", "truncated")

EventSink = Callable[[Any], Awaitable[None]]


@dataclass
class EpisodeContext:
    """Run-time objects of one episode (not checkpointed)."""

    episode_id: str
    task: Task
    suite: Suite
    model: ChatModel
    toolset: ToolSet
    store: TrajectoryStore
    mode: ReasoningMode
    sampling: SamplingParams
    budget: Budget
    emit: EventSink | None = None
    constrained: bool | str | None = None
    started: float = field(default_factory=time.monotonic)
    elapsed_before_ms: float = 0.0
    messages: list[Message] = field(default_factory=list)
    #: the steps this context stored, in order (the episode's steps are the stored ones before + these)
    steps: list[Step] = field(default_factory=list)
    #: commit steps with the checkpoint written after them (the store's ``add_step_deferred``)
    defer_commits: bool = False
    pending_commits: list[asyncio.Future[None]] = field(default_factory=list)
    #: the tool calls the model node just parsed (None: take them from the checkpointed state)
    pending_calls: list[ToolCall] | None = None

    def elapsed_ms(self) -> float:
        """Wall-clock milliseconds this episode has run, across resumes."""
        return self.elapsed_before_ms + (time.monotonic() - self.started) * 1000


async def store_step(ctx: EpisodeContext, step: Step) -> None:
    """Write a step to the store: committed before this returns, or (``defer_commits``) together
    with the checkpoint LangGraph writes when the node returns, awaited by ``settle_commits``."""
    if ctx.defer_commits:
        ctx.pending_commits.append(ctx.store.add_step_deferred(ctx.episode_id, step))
    else:
        await ctx.store.add_step(ctx.episode_id, step)
    ctx.steps.append(step)


async def settle_commits(ctx: EpisodeContext) -> None:
    """Wait until every deferred step of the episode is committed (``StoreError`` if one failed)."""
    while ctx.pending_commits:
        await ctx.pending_commits.pop(0)


def messages_from_steps(steps: list[Step]) -> list[Message]:
    """Rebuild the chat transcript from stored steps (exactly what the nodes appended)."""
    messages: list[Message] = []
    for step in steps:
        if step.role == "assistant":
            messages.append(
                Message(role="assistant", content=step.text, tool_calls=step.tool_calls, token_ids=step.token_ids)
            )
        else:
            messages.extend(step.messages)
    return messages


def _over_budget(state: Control, ctx: EpisodeContext) -> bool:
    b = ctx.budget
    return (
        state.get("turns", 0) >= b["max_turns"]
        or state.get("new_tokens", 0) >= b["max_new_tokens"]
        or ctx.elapsed_ms() >= b["wall_time_s"] * 1000
    )


async def _sample(
    ctx: EpisodeContext, messages: list[Message], params: SamplingParams
) -> tuple[Completion, list[str], float | None]:
    """One model turn; streams when someone listens or the mode needs timing.

    Returns the completion, the answers that closed during the turn, and the episode's
    elapsed milliseconds when the first of them closed.
    """
    kwargs: dict[str, Any] = {}
    if getattr(ctx.model, "supports_constrained_tools", False):
        kwargs = {"tools": [t.schema() for t in ctx.toolset.tools()], "constrained": ctx.constrained}
    parser = ctx.mode.parser()
    answers: list[str] = []
    first_ms: float | None = None
    if ctx.emit is None and ctx.mode.name == "plain":
        completion = await ctx.model.generate(messages, params, **kwargs)
        answers.extend(parser.feed(completion.text))
        return completion, answers, (ctx.elapsed_ms() if answers else None)
    final: Completion | None = None
    async for item in ctx.model.stream(messages, params, **kwargs):
        if isinstance(item, Completion):
            final = item
            break
        if ctx.emit is not None:
            await ctx.emit(TokenDelta(episode_id=ctx.episode_id, text=item))
        for text in parser.feed(item):
            answers.append(text)
            if first_ms is None:
                first_ms = ctx.elapsed_ms()
            if ctx.emit is not None:
                await ctx.emit(
                    IntermediateAnswer(
                        episode_id=ctx.episode_id, text=text, index=len(answers) - 1, elapsed_ms=ctx.elapsed_ms()
                    )
                )
    if final is None:
        raise RuntimeError(f"model {ctx.model.name} ended its stream without a completion")
    return final, answers, first_ms


def build_graph(checkpointer: Any = None) -> Any:
    """Compile the agent graph (once per agent; episodes differ only in state and context)."""

    async def model_node(state: AgentState, runtime: Runtime[EpisodeContext]) -> Command[str]:
        ctx, ep = runtime.context, state["ep"]
        await settle_commits(ctx)
        messages = list(ctx.messages)
        remaining = ctx.budget["max_new_tokens"] - ep.get("new_tokens", 0)
        params = ctx.sampling
        if remaining < params.max_tokens:
            params = params.model_copy(update={"max_tokens": max(1, remaining)})
        started = time.perf_counter()
        remaining_s = ctx.budget["wall_time_s"] - ctx.elapsed_ms() / 1000
        try:
            async with asyncio.timeout(remaining_s):
                completion, answers, answer_ms = await _sample(ctx, messages, params)
        except TimeoutError:  # the wall-time budget ran out mid-turn: the unfinished turn is dropped
            return Command(update={"ep": {**ep, "status": "truncated", "elapsed_ms": ctx.elapsed_ms()}}, goto=END)
        duration = (time.perf_counter() - started) * 1000
        parsed = parse_tool_calls(completion.text, ctx.toolset)
        index = ep.get("next_index", 1)
        step = Step(
            index=index,
            role="assistant",
            text=completion.text,
            tool_calls=parsed.calls,
            token_ids=completion.token_ids,
            logprobs=completion.logprobs,
            loss_mask=[1] * len(completion.token_ids),
            prompt_token_ids=completion.prompt_token_ids,
            policy_version=completion.policy_version,
            duration_ms=duration,
        )
        await store_step(ctx, step)
        if ctx.emit is not None:
            await ctx.emit(StepCompleted(episode_id=ctx.episode_id, step=step))
        assistant = Message(
            role="assistant", content=completion.text, tool_calls=parsed.calls, token_ids=completion.token_ids
        )
        ctx.pending_calls = parsed.calls
        first_ms = ep.get("first_answer_ms")
        if first_ms is None:
            first_ms = answer_ms
        ctx.messages.append(assistant)
        update: Control = {
            **ep,
            "n_messages": len(ctx.messages),
            "next_index": index + 1,
            "turns": ep.get("turns", 0) + 1,
            "new_tokens": ep.get("new_tokens", 0) + len(completion.token_ids),
            "pending_calls": [c.model_dump(mode="json") for c in parsed.calls],
            "parse_errors": parsed.errors,
            "first_answer_ms": first_ms,
            "answers_streamed": ep.get("answers_streamed", 0) + len(answers),
            "elapsed_ms": ctx.elapsed_ms(),
        }
        if not parsed.attempted:
            if ctx.suite.plain_answer_ends:
                update["status"] = "done"
                update["final_answer"] = ctx.mode.final_answer(completion.text)
            else:
                update["parse_errors"] = ["no tool call found: call one of the tools (or the answer tool to finish)."]
        if update.get("status") != "done" and _over_budget(update, ctx):
            update["status"] = "truncated"
        return Command(update={"ep": update}, goto=END if update.get("status") in _ENDED else "tools")

    async def tools_node(state: AgentState, runtime: Runtime[EpisodeContext]) -> Command[str]:
        ctx, ep = runtime.context, state["ep"]
        await settle_commits(ctx)
        started = time.perf_counter()
        results: list[ToolResult] = []
        final_answer: str | None = None
        for n, err in enumerate(ep.get("parse_errors", [])):
            results.append(ToolResult(call_id=f"invalid_{n}", name="", content=f"ToolError: {err}", is_error=True))
        # the calls the model node parsed; after a resume, rebuilt from the checkpointed state
        calls = ctx.pending_calls
        if calls is None:
            calls = [ToolCall.model_validate(c) for c in ep.get("pending_calls", [])]
        ctx.pending_calls = None
        for call in calls:
            result = await ctx.toolset.call(call)
            results.append(result)
            if not result.is_error and ctx.toolset.get(call.name).terminal:
                final_answer = result.content
                break
        tool_messages = [Message(role="tool", content=r.content, tool_call_id=r.call_id) for r in results]
        index = ep.get("next_index", 1)
        step = Step(
            index=index,
            role="tool",
            text="\n".join(r.content for r in results),
            messages=tool_messages,
            tool_results=results,
            duration_ms=(time.perf_counter() - started) * 1000,
        )
        await store_step(ctx, step)
        if ctx.emit is not None:
            await ctx.emit(StepCompleted(episode_id=ctx.episode_id, step=step))
        ctx.messages.extend(tool_messages)
        update: Control = {
            **ep,
            "n_messages": len(ctx.messages),
            "next_index": index + 1,
            "pending_calls": [],
            "parse_errors": [],
            "tool_calls": ep.get("tool_calls", 0) + len(results),
            "invalid_calls": ep.get("invalid_calls", 0) + sum(r.is_error for r in results),
            "elapsed_ms": ctx.elapsed_ms(),
        }
        if final_answer is not None:
            update["status"] = "done"
            update["final_answer"] = final_answer
        elif _over_budget(update, ctx):
            update["status"] = "truncated"
        return Command(update={"ep": update}, goto=END if update.get("status") in _ENDED else "model")

    graph = StateGraph(AgentState, context_schema=EpisodeContext)
    graph.add_node("model", model_node, destinations=("tools", END))
    graph.add_node("tools", tools_node, destinations=("model", END))
    graph.add_edge(START, "model")
    return graph.compile(checkpointer=checkpointer)
