"""InData tool calls on a 1,000,000-row table vs the same operation in DuckDB directly.

Per operation the median of interleaved runs; the summary is the mean over operations.

Both sides run in the same process on the same DuckDB database, same run. The direct side
writes the SQL a person would write for the same result (materialised as a table where
the tool returns a handle, plus its row count). Target: tool / direct <= 2x.

    .venv/bin/python bench/indata_tools.py [--rows 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from tether.tools.indata.engine import SharedTables, Workspace
from tether.tools.indata.tools import InDataToolSet
from tether.types import ToolCall


def make_tables(rows: int) -> dict[str, pa.Table]:
    rng = np.random.default_rng(0)
    big = pa.table(
        {
            "id": np.arange(rows),
            "cust": rng.integers(0, 1000, rows),
            "status": rng.choice(["completed", "returned", "cancelled", "pending"], rows, p=[0.8, 0.08, 0.07, 0.05]),
            "qty": rng.integers(1, 10, rows),
            "price": np.round(rng.lognormal(3, 1, rows), 2),
            "day": pa.array(np.datetime64("2021-01-01") + rng.integers(0, 1400, rows).astype("timedelta64[D]")),
            "email": [f"u{i}@x.example" for i in range(rows)],
        }
    )
    dim = pa.table(
        {"cust": np.arange(1000), "segment": rng.choice(["a", "b", "c"], 1000), "name": [f"n{i}" for i in range(1000)]}
    )
    return {"big": big, "dim": dim}


# (tool, args, direct SQL statements; {r} is a fresh result table name)
CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "filter",
        {
            "table": "big",
            "where": [
                {"column": "status", "op": "eq", "value": "returned"},
                {"column": "price", "op": "gt", "value": 20.0},
            ],
        },
        [
            "CREATE TABLE {r} AS SELECT * FROM big WHERE status = 'returned' AND price > 20.0",
            "SELECT count(*) FROM {r}",
        ],
    ),
    (
        "aggregate",
        {
            "table": "big",
            "group_by": ["status"],
            "metrics": [{"fn": "sum", "column": "price"}, {"fn": "mean", "column": "qty"}],
        },
        [
            "CREATE TABLE {r} AS SELECT status, sum(price), avg(qty) FROM big GROUP BY status ORDER BY status",
            "SELECT * FROM {r} LIMIT 10",
        ],
    ),
    (
        "aggregate",
        {"table": "big", "metrics": [{"fn": "median", "column": "price"}]},
        ["SELECT median(price) FROM big"],
    ),
    (
        "sort",
        {"table": "big", "by": [{"column": "price", "desc": True}], "limit": 10},
        ["CREATE TABLE {r} AS SELECT * FROM big ORDER BY price DESC LIMIT 10", "SELECT count(*) FROM {r}"],
    ),
    (
        "join",
        {"left": "big", "right": "dim", "left_on": "cust", "right_on": "cust"},
        [
            "CREATE TABLE {r} AS SELECT big.*, dim.segment, dim.name FROM big JOIN dim ON big.cust = dim.cust",
            "SELECT count(*) FROM {r}",
        ],
    ),
    (
        "compute",
        {"table": "big", "name": "revenue", "expr": {"op": "mul", "args": [{"col": "qty"}, {"col": "price"}]}},
        ["CREATE TABLE {r} AS SELECT *, qty * price AS revenue FROM big", "SELECT count(*) FROM {r}"],
    ),
    (
        "compute",
        {"table": "big", "name": "yr", "expr": {"op": "year", "args": [{"col": "day"}]}},
        ["CREATE TABLE {r} AS SELECT *, year(day) AS yr FROM big", "SELECT count(*) FROM {r}"],
    ),
    (
        "distinct",
        {"table": "big", "column": "cust", "limit": 20},
        ["SELECT DISTINCT cust FROM big ORDER BY cust LIMIT 20", "SELECT count(DISTINCT cust) FROM big"],
    ),
    ("correlation", {"table": "big", "x": "qty", "y": "price"}, ["SELECT count(*), corr(price, qty) FROM big"]),
    ("count", {"table": "big"}, ["SELECT count(*) FROM big"]),
    ("head", {"table": "big", "n": 10}, ["SELECT id, cust, status, qty, price, day FROM big LIMIT 10"]),
    ("describe", {"table": "big"}, ["DESCRIBE big", "SELECT count(*) - count(id), count(*) - count(cust) FROM big"]),
]


# not in the mean: the tool's join returns rows in a defined order (left rows, then right rows);
# plain SQL joins do not. This line prices that guarantee.
ORDERED_JOIN = [
    "CREATE TABLE {r} AS SELECT l.* EXCLUDE (__lr), r.segment, r.name FROM (SELECT *, rowid AS __lr FROM big) l "
    "JOIN (SELECT *, rowid AS __rr FROM dim) r ON l.cust = r.cust ORDER BY l.__lr * 1001 + r.__rr",
    "SELECT count(*) FROM {r}",
]


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median milliseconds of ``repeat`` runs of ``fn``."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ns = ap.parse_args()
    t0 = time.perf_counter()
    shared = SharedTables(make_tables(ns.rows), {"big": {"email"}, "dim": {"name"}}, {})
    print(f"loaded {ns.rows:,} rows in {time.perf_counter() - t0:.1f}s")
    direct = shared.conn.cursor()
    loop = asyncio.get_running_loop()
    counter = [0]

    def run_direct(stmts: list[str]) -> None:
        counter[0] += 1
        name = f"r{counter[0]}"
        for s in stmts:
            direct.execute(s.format(r=name)).fetchall()
        if "{r}" in stmts[0]:
            direct.execute(f"DROP TABLE {name}")

    rows = []
    for tool, args, stmts in CASES:
        ws = Workspace.on_shared(shared)
        tools = InDataToolSet(ws)
        tool_times, direct_times = [], []
        for _ in range(ns.repeat):  # interleaved, so load changes hit both sides alike
            t1 = time.perf_counter()
            res = await tools.call(ToolCall(name=tool, arguments=args))
            tool_times.append(time.perf_counter() - t1)
            assert not res.is_error, res.content
            direct_times.append(await loop.run_in_executor(None, timed, lambda s=stmts: run_direct(s), 1) / 1000)
        await tools.close()
        rows.append(
            (
                f"{tool}:{json.dumps(args)[:40]}",
                statistics.median(tool_times) * 1000,
                statistics.median(direct_times) * 1000,
            )
        )
    print(f"{'operation':52} {'tool ms':>9} {'duckdb ms':>10} {'ratio':>6}")
    for name, a, b in rows:
        print(f"{name:52} {a:9.2f} {b:10.2f} {a / b:6.2f}")
    total_tool, total_direct = sum(r[1] for r in rows), sum(r[2] for r in rows)
    join_ms = next(r[1] for r in rows if r[0].startswith("join"))
    ordered_ms = await loop.run_in_executor(None, timed, lambda: run_direct(ORDERED_JOIN), ns.repeat)
    print(
        f"join vs DuckDB with the same ORDER BY: {join_ms:.2f} / {ordered_ms:.2f} ms = {join_ms / ordered_ms:.2f}x "
        "(not in the mean)"
    )
    print(
        f"mean latency per call: tool {total_tool / len(rows):.2f} ms, duckdb {total_direct / len(rows):.2f} ms, "
        f"ratio {total_tool / total_direct:.2f}x (target <= 2x); worst single op {max(r[1] / r[2] for r in rows):.2f}x"
    )


if __name__ == "__main__":
    asyncio.run(main())
