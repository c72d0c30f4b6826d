"""``StoreCheckpointSaver``: LangGraph checkpoints kept in the trajectory store's own database.

The checkpoints of an episode go to the store's ``lg_checkpoints`` and
``lg_checkpoint_writes`` tables (SQLite by default, PostgreSQL when the store is, plain
dicts for the in-memory store) through the store's group-commit writer, so a node's step
row (queued with ``add_step_deferred``) and the checkpoint LangGraph writes after the node
share one commit when the graph runs with ``durability="sync"`` (as the agent does), and a
killed process keeps every checkpoint whose ``aput`` returned. Values are serialised with
LangGraph's serde (``JsonPlusSerializer``); channel versions are integers.

What is kept is what resuming needs: the **newest checkpoint of each thread** and the
pending writes made after it (LangGraph's ``prune(strategy="keep_latest")``, applied as
checkpoints arrive). So ``alist`` yields one checkpoint per thread, and an older
``checkpoint_id`` is not found: no time travel, and not for graphs with ``DeltaChannel``
state, whose values are rebuilt from older checkpoints. Writes for a checkpoint that a
newer one replaces in the same commit are never written at all.

The saver is async-only (the agent graph runs with ``ainvoke``/``astream``). The agent
deletes an episode's checkpoint when the episode ends: an ended episode is never resumed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

#: a stored checkpoint (``lg_checkpoints`` row) and its pending writes (``lg_checkpoint_writes`` rows)
CheckpointRecord = tuple[dict[str, Any], list[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class PendingWrites:
    """The writes one task made after a checkpoint, serialised only when a store keeps them.

    Most never are: the next checkpoint of the thread usually arrives in the same commit and
    replaces them (see ``StoreCheckpointSaver``).
    """

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    task_id: str
    task_path: str
    writes: Sequence[tuple[str, Any]]
    serde: SerializerProtocol

    @property
    def replace(self) -> bool:
        """Special channels (errors, interrupts) overwrite their slot; other writes keep the first."""
        return all(channel in WRITES_IDX_MAP for channel, _ in self.writes)

    def rows(self) -> list[dict[str, Any]]:
        """The ``lg_checkpoint_writes`` rows."""
        rows = []
        for idx, (channel, value) in enumerate(self.writes):
            vtype, blob = self.serde.dumps_typed(value)
            rows.append(
                {
                    "thread_id": self.thread_id,
                    "checkpoint_ns": self.checkpoint_ns,
                    "checkpoint_id": self.checkpoint_id,
                    "task_id": self.task_id,
                    "idx": WRITES_IDX_MAP.get(channel, idx),
                    "task_path": self.task_path,
                    "channel": channel,
                    "type": vtype,
                    "value": blob,
                }
            )
        return rows


@runtime_checkable
class CheckpointStore(Protocol):
    """What a trajectory store offers to keep LangGraph checkpoints (``SqlStore``, ``InMemoryStore``)."""

    async def put_checkpoint(self, row: dict[str, Any]) -> None:
        """Make ``row`` its thread's checkpoint, dropping writes made after any other; returns once committed."""
        ...

    async def put_checkpoint_writes(self, writes: PendingWrites) -> None:
        """Store a task's writes (``writes.rows()``); an existing (task, idx) is kept, or overwritten
        when ``writes.replace``. A store may skip writes that a newer checkpoint of the thread replaced."""
        ...

    async def get_checkpoint(self, thread_id: str, ns: str, checkpoint_id: str | None) -> CheckpointRecord | None:
        """The thread's checkpoint (if ``checkpoint_id`` is None or its id) and its writes, or None."""
        ...

    async def list_checkpoints(
        self, thread_id: str | None, ns: str | None, *, before: str | None = None, limit: int | None = None
    ) -> list[CheckpointRecord]:
        """Checkpoints (newest first) with their writes; None for thread or namespace matches any."""
        ...

    async def delete_checkpoints(self, thread_id: str) -> None:
        """Delete every checkpoint and pending write of a thread."""
        ...


class StoreCheckpointSaver(BaseCheckpointSaver[int]):
    """A LangGraph checkpointer writing through a ``CheckpointStore`` (async methods only)."""

    def __init__(self, store: CheckpointStore, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        if not isinstance(store, CheckpointStore):
            raise TypeError(f"{type(store).__name__} cannot keep LangGraph checkpoints")
        self.store = store
        self._new_threads: set[str] = set()

    def expect_new_thread(self, thread_id: str) -> None:
        """Say that ``thread_id`` has no checkpoint yet, so the next ``aget_tuple`` for it skips the read.

        The agent calls this for every new episode (its id is the thread id, fresh by construction).
        """
        self._new_threads.add(str(thread_id))

    # ----- reads -----

    def _tuple(self, record: CheckpointRecord) -> CheckpointTuple:
        row, writes = record
        writes = sorted(writes, key=lambda w: writes_sort_key(w["task_path"], w["task_id"], w["idx"]))
        thread_id, ns = row["thread_id"], row["checkpoint_ns"]
        parent = row["parent_checkpoint_id"]
        return CheckpointTuple(
            config={
                "configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": row["checkpoint_id"]}
            },
            checkpoint=self.serde.loads_typed((row["type"], row["checkpoint"])),
            metadata=self.serde.loads_typed((row["metadata_type"], row["metadata"])),
            parent_config=(
                {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": parent}}
                if parent
                else None
            ),
            pending_writes=[
                (w["task_id"], w["channel"], self.serde.loads_typed((w["type"], w["value"]))) for w in writes
            ],
        )

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by ``config`` (the thread's newest without a ``checkpoint_id``), or None."""
        conf = config["configurable"]
        if conf["thread_id"] in self._new_threads:
            self._new_threads.discard(conf["thread_id"])
            return None
        record = await self.store.get_checkpoint(
            str(conf["thread_id"]), conf.get("checkpoint_ns", ""), get_checkpoint_id(config)
        )
        return self._tuple(record) if record is not None else None

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Checkpoints newest first, optionally of one thread, older than ``before``, matching ``filter``."""
        conf = (config or {}).get("configurable", {})
        thread_id = conf.get("thread_id")
        records = await self.store.list_checkpoints(
            str(thread_id) if thread_id is not None else None,
            conf.get("checkpoint_ns"),
            before=get_checkpoint_id(before) if before else None,
            limit=None if filter else limit,
        )
        yielded = 0
        for record in records:
            item = self._tuple(record)
            if filter and any(item.metadata.get(k) != v for k, v in filter.items()):
                continue
            if limit is not None and yielded >= limit:
                return
            yielded += 1
            yield item

    # ----- writes -----

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint; returns once it is committed."""
        conf = config["configurable"]
        thread_id, ns = str(conf["thread_id"]), conf.get("checkpoint_ns", "")
        ctype, blob = self.serde.dumps_typed(checkpoint)
        mtype, mblob = self.serde.dumps_typed(get_checkpoint_metadata(config, metadata))
        await self.store.put_checkpoint(
            {
                "thread_id": thread_id,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
                "parent_checkpoint_id": conf.get("checkpoint_id"),
                "type": ctype,
                "checkpoint": blob,
                "metadata_type": mtype,
                "metadata": mblob,
            }
        )
        return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"]}}

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """Store the writes a task made after a checkpoint (special channels overwrite, others keep the first)."""
        if not writes:
            return
        conf = config["configurable"]
        await self.store.put_checkpoint_writes(
            PendingWrites(
                thread_id=str(conf["thread_id"]),
                checkpoint_ns=conf.get("checkpoint_ns", ""),
                checkpoint_id=conf["checkpoint_id"],
                task_id=task_id,
                task_path=task_path,
                writes=writes,
                serde=self.serde,
            )
        )

    async def adelete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint and write of a thread."""
        await self.store.delete_checkpoints(str(thread_id))
