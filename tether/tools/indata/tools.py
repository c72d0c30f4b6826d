"""``InDataToolSet``: the secure data-analysis tool set offered to the model.

The model sees table names, column names and types, row counts and small results; never
a sensitive value (see ``policy``). Derived tables get handles ``t1``, ``t2``... valid
for the episode. Every call (valid or not) is appended to ``audit`` and the entry is
also put in the stored ``ToolResult.data`` (``{"result": ..., "audit": ...}``) so it is
kept with the episode's steps; the text the model sees is only the result.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, Literal

from tether.errors import ToolError
from tether.tools.base import ToolSet, tool
from tether.tools.indata.args import Condition, Expr, Metric, SortKey
from tether.tools.indata.engine import Workspace
from tether.types import ToolCall, ToolResult

AuditSink = Callable[[dict[str, Any]], None]

INSTRUCTIONS = (
    "You analyse data only through the tools below; you cannot run code or see raw data. "
    "Start with list_tables and describe. Tools that build tables return a handle (t1, t2, ...) "
    "that later calls can use as a table name. Columns marked sensitive can never be shown, "
    "filtered, grouped, sorted, joined or aggregated, and aggregates over fewer than 5 rows are "
    "suppressed. When you know the answer, call answer(value) with just the value "
    "(a number, a text, or a JSON list)."
)


class InDataToolSet(ToolSet):
    """The ``indata`` tool set over one ``Workspace``."""

    name = "indata"
    instructions = INSTRUCTIONS

    def __init__(self, workspace: Workspace, audit_sink: AuditSink | None = None, first_seq: int = 1) -> None:
        super().__init__()  # argument models and schemas are cached per function by ``ToolSet``
        self.ws = workspace
        self.audit: list[dict[str, Any]] = []
        self.first_seq = first_seq
        self.audit_sink = audit_sink
        self.answer_value: Any = None
        self.answered = False

    async def _run(self, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
        return await asyncio.to_thread(fn, *args)

    async def call(self, call: ToolCall) -> ToolResult:
        """Run one call, audit it, and attach the audit entry to the stored result data."""
        self.ws.stats = {}
        started = time.time()
        result = await super().call(call)
        entry: dict[str, Any] = {
            "seq": self.first_seq + len(self.audit),
            "tool": call.name,
            "args": call.arguments,
            "ok": not result.is_error,
            "error": result.content.removeprefix("ToolError: ") if result.is_error else None,
            "rows_in": self.ws.stats.get("rows_in"),
            "rows_out": self.ws.stats.get("rows_out"),
            "suppressed": bool(self.ws.stats.get("suppressed", False)),
            "at": started,
            "duration_ms": round(result.duration_ms, 3),
        }
        self.audit.append(entry)
        if self.audit_sink is not None:
            self.audit_sink(entry)
        return result.model_copy(update={"data": {"result": result.data, "audit": entry}})

    async def close(self) -> None:
        """Close the DuckDB connection."""
        await asyncio.to_thread(self.ws.close)

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ----- tools -----

    @tool
    async def list_tables(self) -> dict[str, Any]:
        """List the dataset's tables and the handles made so far, with row counts."""
        return await self._run(self.ws.list_tables)

    @tool
    async def describe(self, table: str) -> dict[str, Any]:
        """Describe a table: its columns (name, type, sensitive, nulls) and its row count.

        Args:
            table: a table name or handle (t1, t2, ...)
        """
        return await self._run(self.ws.describe, table)

    @tool
    async def filter(self, table: str, where: list[Condition], combine: Literal["and", "or"] = "and") -> dict[str, Any]:
        """Keep the rows that match conditions; returns a handle and the row count. Missing values never match.

        Args:
            table: a table name or handle
            where: conditions {column, op, value}; op is one of eq ne lt le gt ge in not_in between
                contains startswith is_null not_null
            combine: "and" (all conditions) or "or" (any condition)
        """
        return await self._run(self.ws.filter, table, where, combine)

    @tool
    async def aggregate(self, table: str, metrics: list[Metric], group_by: list[str] | None = None) -> dict[str, Any]:
        """Aggregate a table, optionally per group; returns a handle, the row count and a preview.

        Groups with fewer than 5 rows are suppressed (left out) and an aggregate of fewer than 5 rows is refused.

        Args:
            table: a table name or handle
            metrics: aggregates {fn, column, as}; fn is count count_distinct sum mean median min max std
            group_by: columns to group by (omit for one row over the whole table)
        """
        return await self._run(self.ws.aggregate, table, group_by or [], metrics)

    @tool
    async def sort(self, table: str, by: list[SortKey], limit: int | None = None) -> dict[str, Any]:
        """Sort a table by one or more columns (missing values last); returns a handle.

        Args:
            table: a table name or handle
            by: sort keys {column, desc}
            limit: keep only the first rows after sorting
        """
        return await self._run(self.ws.sort, table, by, limit)

    @tool
    async def join(
        self, left: str, right: str, left_on: str, right_on: str, how: Literal["inner", "left"] = "inner"
    ) -> dict[str, Any]:
        """Join two tables on equal key values; returns a handle. Clashing right column names get _right.

        Args:
            left: the left table name or handle
            right: the right table name or handle
            left_on: key column of the left table
            right_on: key column of the right table
            how: "inner" (matching rows only) or "left" (all left rows)
        """
        return await self._run(self.ws.join, left, right, left_on, right_on, how)

    @tool
    async def compute(self, table: str, name: str, expr: Expr) -> dict[str, Any]:
        """Add a computed column; returns a handle. expr is a tree {"op", "args"} of {"col"}, {"lit"} or expressions.

        Ops: add sub mul div (2 args), abs (1), round (value, optional digits literal), year month day (1 date).

        Args:
            table: a table name or handle
            name: name of the new column
            expr: e.g. {"op": "mul", "args": [{"col": "quantity"}, {"col": "unit_price"}]}
        """
        return await self._run(self.ws.compute, table, name, expr)

    @tool
    async def head(self, table: str, n: int = 5, columns: list[str] | None = None) -> dict[str, Any]:
        """Show the first rows (at most 10) of the non-sensitive columns.

        Args:
            table: a table name or handle
            n: how many rows (1 to 10)
            columns: which columns (default: all non-sensitive ones)
        """
        return await self._run(self.ws.head, table, n, columns)

    @tool
    async def distinct(self, table: str, column: str, limit: int = 20) -> dict[str, Any]:
        """List the distinct values of a column (ascending) and how many there are.

        Args:
            table: a table name or handle
            column: the column
            limit: most values to list (1 to 50)
        """
        return await self._run(self.ws.distinct, table, column, limit)

    @tool
    async def value(self, table: str, column: str, row: int = 0) -> dict[str, Any]:
        """Read one cell of a table.

        Args:
            table: a table name or handle
            column: the column
            row: the row number, from 0
        """
        return await self._run(self.ws.value, table, column, row)

    @tool
    async def count(self, table: str) -> dict[str, Any]:
        """Count the rows of a table.

        Args:
            table: a table name or handle
        """
        return await self._run(self.ws.count, table)

    @tool
    async def correlation(self, table: str, x: str, y: str) -> dict[str, Any]:
        """Pearson correlation of two numeric columns (rows where both are present).

        Args:
            table: a table name or handle
            x: the first numeric column
            y: the second numeric column
        """
        return await self._run(self.ws.correlation, table, x, y)

    @tool(terminal=True)
    async def answer(self, value: str | int | float | list[Any]) -> Any:
        """Give the final answer and end the episode.

        Args:
            value: the answer: a number, a text, or a list
        """
        if isinstance(value, str) and not value.strip():
            raise ToolError("the answer is empty; give a number, a text or a list.")
        self.answer_value = value
        self.answered = True
        if isinstance(value, list):
            return json.dumps(value, ensure_ascii=False)
        return value
