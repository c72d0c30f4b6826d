"""The public async API: the one door every front end (CLI, TUI, HTTP) uses.

    async with tether.Agent(suite="calc", model="local") as agent:
        episode = await agent.run("What is 12*7-5?")
        async for event in agent.stream("What is 2+2?"):
            print(event.type)

    episodes = await tether.rollout(tasks, suite="calc", model="local", concurrency=8)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from tether.agents.graph import (
    AgentState,
    Budget,
    EpisodeContext,
    build_graph,
    messages_from_steps,
    settle_commits,
)
from tether.agents.reasoning import get_reasoning_mode
from tether.config import get_settings
from tether.errors import ModelError, UserError
from tether.models import ChatModel, load_model
from tether.runtime import tune_gc
from tether.store import langgraph_checkpointer, open_store
from tether.store.base import TrajectoryStore
from tether.store.saver import StoreCheckpointSaver
from tether.suites import Suite, get_suite
from tether.tools.calls import render_tools_prompt
from tether.types import (
    Episode,
    EpisodeFinished,
    EpisodeStarted,
    Event,
    Message,
    Run,
    SamplingParams,
    Step,
    StepCompleted,
    Task,
    utcnow,
)


class Agent:
    """Runs episodes of one suite with one model, storing every step.

    Args:
        suite: a suite name (``"calc"``, ``"indata"``, ``"rg:countdown"``) or a ``Suite``.
        model: a model spec (``"local"``, ``"openai:URL#NAME"``, ``"scripted:FILE"``) or a ``ChatModel``.
        store: a database URL, a ``TrajectoryStore``, or None for the configured default.
        reasoning: ``plain``, ``interleaved`` or ``think-answer``.
        run: the run the episodes belong to (created if None).
        max_turns / max_new_tokens / wall_time_s: the episode budget (defaults from settings).
        sampling: sampling parameters of every model turn.
        checkpoint: keep LangGraph checkpoints so interrupted episodes can be resumed.
        constrained: for backends that support it, constrain tool calls to the schemas (True or "auto":
            free text or a valid call; "required": exactly one valid call; False: unconstrained).
        suite_options: options passed to the suite when ``suite`` is a name.
    """

    def __init__(
        self,
        suite: str | Suite = "calc",
        model: str | ChatModel | None = None,
        store: str | TrajectoryStore | None = None,
        *,
        reasoning: str = "plain",
        run: Run | None = None,
        max_turns: int | None = None,
        max_new_tokens: int | None = None,
        wall_time_s: float | None = None,
        sampling: SamplingParams | None = None,
        checkpoint: bool = True,
        constrained: bool | str | None = None,
        suite_options: dict[str, Any] | None = None,
    ) -> None:
        settings = get_settings()
        self.suite: Suite = get_suite(suite, **(suite_options or {})) if isinstance(suite, str) else suite
        suite_name = suite if isinstance(suite, str) else self.suite.name
        self._suite_spec = {"name": suite_name, "options": suite_options or {}}
        self._model_arg = model if model is not None else settings.model
        self._store_arg = store
        self.mode = get_reasoning_mode(reasoning)
        self.budget = Budget(
            max_turns=max_turns or settings.max_turns,
            max_new_tokens=max_new_tokens or settings.max_new_tokens,
            wall_time_s=wall_time_s or settings.wall_time_s,
        )
        self.sampling = sampling or SamplingParams(
            temperature=settings.temperature, max_tokens=settings.max_tokens_per_turn
        )
        self.constrained = constrained
        self._checkpoint = checkpoint
        self._run = run
        self._owned: contextlib.AsyncExitStack | None = None
        self.model: ChatModel
        self.store: TrajectoryStore
        self.run_record: Run
        self._graph: Any = None
        self._saver: StoreCheckpointSaver | None = None
        self.model_spec = model if isinstance(model, str) else ""

    async def __aenter__(self) -> Agent:
        tune_gc()
        stack = contextlib.AsyncExitStack()
        await stack.__aenter__()
        try:
            if isinstance(self._model_arg, str):
                self.model = load_model(self._model_arg)
                stack.push_async_callback(self.model.aclose)
            else:
                self.model = self._model_arg
            if isinstance(self._store_arg, str) or self._store_arg is None:
                self.store = await open_store(self._store_arg)
                stack.push_async_callback(self.store.close)
            else:
                self.store = self._store_arg
            if self._checkpoint:
                self._saver = await stack.enter_async_context(langgraph_checkpointer(self.store))
            self._graph = build_graph(self._saver)
            self.model_spec = (
                self._model_arg if isinstance(self._model_arg, str) else getattr(self.model, "spec", self.model.name)
            )
            self.run_record = self._run or Run(kind="run", suite=self.suite.name, model=self.model_spec)
            self.run_record.config.setdefault("agent", self.describe())
            await self.store.create_run(self.run_record)
        except BaseException:
            await stack.aclose()
            raise
        self._owned = stack
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._owned is not None:
            await self._owned.aclose()
            self._owned = None

    def describe(self) -> dict[str, Any]:
        """What is needed to rebuild this agent (stored with the run, used by resume)."""
        return {
            "suite": self._suite_spec,
            "model": self.model_spec,
            "reasoning": self.mode.name,
            "budget": dict(self.budget),
            "sampling": self.sampling.model_dump(mode="json"),
            "constrained": self.constrained,
        }

    # ----- episodes -----

    def _task(self, task: Task | str) -> Task:
        return self.suite.task_from_prompt(task) if isinstance(task, str) else task

    def _messages(self, task: Task, tools_prompt: str) -> list[Message]:
        system = self.suite.system_prompt(task)
        extra = [part for part in (tools_prompt, self.mode.instruction()) if part]
        if extra:
            system = "\n\n".join([system, *extra])
        return [Message(role="system", content=system), Message(role="user", content=task.prompt)]

    async def run(self, task: Task | str) -> Episode:
        """Run one episode to the end and return it (with steps and rewards)."""
        return await self._episode(self._task(task), emit=None)

    async def run_many(
        self,
        tasks: Sequence[Task | str],
        *,
        concurrency: int = 8,
        group: int = 1,
        progress: Callable[[Episode], None] | None = None,
    ) -> list[Episode]:
        """Run every task ``group`` times, at most ``concurrency`` at once; episodes in task order.

        ``progress`` (optional) is called with each finished episode.
        """
        if concurrency < 1:
            raise UserError("Concurrency must be at least 1.")
        gate = asyncio.Semaphore(concurrency)

        async def one(task: Task | str) -> Episode:
            async with gate:
                episode = await self.run(task)
            if progress is not None:
                progress(episode)
            return episode

        return list(await asyncio.gather(*(one(task) for task in tasks for _ in range(group))))

    async def stream(self, task: Task | str) -> AsyncIterator[Event]:
        """Run one episode, yielding typed events as they happen; the last is ``EpisodeFinished``."""
        queue: asyncio.Queue[Any] = asyncio.Queue()
        done = object()

        async def emit(event: Any) -> None:
            await queue.put(event)

        async def runner() -> None:
            try:
                await self._episode(self._task(task), emit=emit)
            finally:
                await queue.put(done)

        job = asyncio.create_task(runner())
        try:
            while (item := await queue.get()) is not done:
                yield item
            await job
        finally:
            if not job.done():
                job.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await job

    async def resume(self, episode_id: str) -> Episode:
        """Continue an interrupted episode from its last checkpointed step."""
        if self._graph is None or not self._checkpoint:
            raise UserError("Resuming needs an agent opened with checkpoint=True.")
        episode = await self.store.get_episode(episode_id)
        if episode is None:
            raise UserError(f"No episode {episode_id!r} in the store at {self.store.url}.")
        if episode.status != "running":
            raise UserError(f"Episode {episode_id} already ended with status {episode.status!r}; nothing to resume.")
        if episode.task is None:
            raise UserError(f"Episode {episode_id} has no stored task, so it cannot be resumed.")
        config = {"configurable": {"thread_id": episode_id}}
        snapshot = await self._graph.aget_state(config)
        delete = getattr(self.store, "delete_steps_from", None)
        if not snapshot.values:
            # killed before the first checkpoint: only the prompt step can exist; start over from it
            prompt = next((s for s in episode.steps if s.index == 0), None)
            if prompt is None or len(episode.steps) > 1 or delete is None:
                raise UserError(f"Episode {episode_id} has no checkpoint to resume from.")
            episode.steps = [prompt]
            return await self._episode(episode.task, emit=None, resume=(episode, "restart"))
        control = snapshot.values["ep"]
        kept = [s for s in episode.steps if s.index < control.get("next_index", 1)]
        if len(kept) != len(episode.steps) and delete is not None:
            await delete(episode_id, control.get("next_index", 1))  # the step in flight when it stopped
        episode.steps = kept
        return await self._episode(episode.task, emit=None, resume=(episode, "continue" if snapshot.next else "ended"))

    async def _episode(
        self, task: Task, emit: Any, resume: tuple[Episode, str] | None = None
    ) -> Episode:
        started = time.monotonic()
        if resume is None:
            episode = Episode(
                run_id=self.run_record.id,
                suite=self.suite.name,
                task_id=task.id,
                model=self.model_spec,
                policy_version=self.model.policy_version,
                task=task,
            )
            await self.store.start_episode(episode)
        else:
            episode = resume[0]
        if emit is not None:
            await emit(EpisodeStarted(episode_id=episode.id, task=task))
        config = {"configurable": {"thread_id": episode.id}}
        final: dict[str, Any] = {}
        ctx: EpisodeContext | None = None
        try:
            async with self.suite.toolset(task) as toolset:
                ctx = EpisodeContext(
                    episode_id=episode.id,
                    task=task,
                    suite=self.suite,
                    model=self.model,
                    toolset=toolset,
                    store=self.store,
                    mode=self.mode,
                    sampling=self.sampling,
                    budget=self.budget,
                    emit=emit,
                    constrained=self.constrained,
                    defer_commits=self._saver is not None,
                )
                if resume is None or resume[1] == "restart":
                    if resume is None:
                        messages = self._messages(task, render_tools_prompt(toolset.tools()) if toolset.tools() else "")
                        prompt = Step(index=0, role="prompt", text=task.prompt, messages=messages)
                        await self.store.add_step(episode.id, prompt)
                        episode.steps.append(prompt)
                        if emit is not None:
                            await emit(StepCompleted(episode_id=episode.id, step=prompt))
                    else:
                        messages = list(episode.steps[0].messages)
                    ctx.messages = messages
                    if resume is None and self._saver is not None:
                        self._saver.expect_new_thread(episode.id)
                    state: AgentState = {"ep": {"episode_id": episode.id, "n_messages": len(messages), "next_index": 1}}
                    final = (await self._invoke(state, config, ctx))["ep"]
                else:
                    snapshot = await self._graph.aget_state(config)
                    final = snapshot.values["ep"]
                    ctx.elapsed_before_ms = float(final.get("elapsed_ms", 0.0))
                    ctx.messages = messages_from_steps(episode.steps)
                    if len(ctx.messages) != final.get("n_messages", len(ctx.messages)):
                        raise UserError(f"Episode {episode.id}: its stored steps do not match its checkpoint.")
                    if resume[1] == "continue":
                        final = (await self._invoke(None, config, ctx))["ep"]
                await settle_commits(ctx)
            episode.status = "done" if final.get("status") == "done" else "truncated"
            episode.final_answer = final.get("final_answer")
        except (ModelError, UserError) as exc:
            episode.status, episode.error = "error", f"{type(exc).__name__}: {exc}"
        except Exception:  # anything else is a bug: store the traceback
            episode.status, episode.error = "error", traceback.format_exc()
        if ctx is not None:
            with contextlib.suppress(Exception):  # after an error: let deferred steps land before finishing
                await settle_commits(ctx)
            episode.steps.extend(ctx.steps)
        episode.metrics.update(self._metrics(final, episode.steps))
        episode.finished_at = utcnow()
        episode.duration_ms = float(final.get("elapsed_ms") or (time.monotonic() - started) * 1000)
        if episode.status != "error":
            episode.rewards, episode.reward_errors = self.suite.score(task, episode)
        await self.store.finish_episode(episode)
        if self._saver is not None:  # an ended episode is never resumed: drop its checkpoints
            await self._saver.adelete_thread(episode.id)
        if emit is not None:
            await emit(EpisodeFinished(episode=episode))
        return episode

    async def _invoke(self, state: AgentState | None, config: dict[str, Any], ctx: EpisodeContext) -> dict[str, Any]:
        """Run the graph; with checkpoints, each super-step's checkpoint is committed (with the
        step its node stored) before the next super-step starts (LangGraph ``durability="sync"``)."""
        if self._saver is None:
            return await self._graph.ainvoke(state, config, context=ctx)  # type: ignore[no-any-return]
        return await self._graph.ainvoke(state, config, context=ctx, durability="sync")  # type: ignore[no-any-return]

    def _metrics(self, state: dict[str, Any], steps: list[Step]) -> dict[str, float]:
        metrics = {
            "turns": float(state.get("turns", 0)),
            "tool_calls": float(state.get("tool_calls", 0)),
            "invalid_calls": float(state.get("invalid_calls", 0)),
            "new_tokens": float(state.get("new_tokens", 0)),
            "answers_streamed": float(state.get("answers_streamed", 0)),
        }
        if state.get("first_answer_ms") is not None:
            metrics["ttfa_ms"] = float(state["first_answer_ms"])
        last = next((s for s in reversed(steps) if s.role == "assistant"), None)  # the final response
        if last is not None:
            decode = getattr(getattr(self.model, "tokenizer", None), "decode", None)
            metrics.update(
                self.mode.metrics(
                    last.text,
                    len(last.token_ids),
                    state.get("first_answer_ms"),
                    token_ids=last.token_ids or None,
                    decode=(lambda ids: decode(ids, skip_special_tokens=True)) if decode is not None else None,
                )
            )
        return metrics


async def resume_episode(episode_id: str, store: str | TrajectoryStore | None = None, **overrides: Any) -> Episode:
    """Resume an interrupted episode with the agent settings stored with its run."""
    db = await open_store(store) if store is None or isinstance(store, str) else store
    try:
        episode = await db.get_episode(episode_id, with_steps=False)
        if episode is None:
            raise UserError(f"No episode {episode_id!r} in the store at {db.url}.")
        run = await db.get_run(episode.run_id)
        cfg = (run.config if run else {}).get("agent", {})
        suite_cfg = cfg.get("suite", {"name": episode.suite, "options": {}})
        options: dict[str, Any] = {
            "suite": suite_cfg["name"],
            "suite_options": suite_cfg.get("options") or {},
            "model": cfg.get("model") or episode.model,
            "reasoning": cfg.get("reasoning", "plain"),
            "run": run,
        }
        if cfg.get("budget"):
            options.update(cfg["budget"])
        if cfg.get("sampling"):
            options["sampling"] = SamplingParams.model_validate(cfg["sampling"])
        options.update({k: v for k, v in overrides.items() if v is not None})
        async with Agent(store=db, **options) as agent:
            return await agent.resume(episode_id)
    finally:
        if db is not store:
            await db.close()


async def rollout(
    tasks: Sequence[Task | str],
    *,
    suite: str | Suite = "calc",
    model: str | ChatModel | None = None,
    store: str | TrajectoryStore | None = None,
    concurrency: int = 8,
    group: int = 1,
    run: Run | None = None,
    progress: Any = None,
    **agent_options: Any,
) -> list[Episode]:
    """Run every task ``group`` times with at most ``concurrency`` episodes at once.

    ``progress`` (optional) is called with each finished episode. Returns the episodes in
    task order (each task's ``group`` samples together).
    """
    async with Agent(suite=suite, model=model, store=store, run=run, **agent_options) as agent:
        return await agent.run_many(tasks, concurrency=concurrency, group=group, progress=progress)
