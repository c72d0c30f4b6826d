"""The InData engine: a DuckDB workspace of base tables and derived handles.

Every operation checks identifiers against the table schemas, binds every value as a
query parameter and materialises its result as a new DuckDB table with a handle
(``t1``, ``t2``, ...). No text from the model is ever put into SQL: identifiers are
looked up in the schema and quoted; values travel as parameters.

Row order is part of the semantics: filter, compute and join keep the order of their
input(s) (DuckDB's ``preserve_insertion_order``); sort orders by its keys with ties in
input order; aggregate orders its groups by the group keys, NULLs last.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import uuid
from decimal import Decimal
from typing import Any

import duckdb
import pyarrow as pa

from tether.errors import ToolError
from tether.tools.indata.args import Col, Condition, Expr, Lit, Metric, SortKey
from tether.tools.indata.policy import PrivacyPolicy
from tether.tools.indata.schema import HANDLE, IDENT, NUMERIC, ORDERED, ColumnInfo, TableInfo, column_type, quote

_CMP = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_MAX_EXPR_NODES = 40
_MAX_EXPR_DEPTH = 8
_MAX_IN_VALUES = 1000


def jsonable(value: Any) -> Any:
    """A DuckDB value as JSON: dates as ISO text, floats to 12 significant digits, NaN as null, inf as "inf"/"-inf"."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return float(f"{value:.12g}")  # 12 significant digits: no float noise for the model to copy
    if isinstance(value, Decimal):
        return jsonable(float(value))
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


class Workspace:
    """Tables of one episode (or one CLI session) in one DuckDB connection.

    ``stats`` holds what the last operation touched (rows in/out, suppressed) for the audit.
    """

    def __init__(
        self,
        conn: duckdb.DuckDBPyConnection,
        tables: dict[str, TableInfo] | None = None,
        policy: PrivacyPolicy | None = None,
        counter: int = 0,
        schema: str | None = None,
    ) -> None:
        self.conn = conn
        self.schema = schema
        self.tables: dict[str, TableInfo] = dict(tables or {})
        self.policy = policy or PrivacyPolicy()
        self.counter = counter
        self.stats: dict[str, Any] = {}

    # ----- construction -----

    @classmethod
    def in_memory(cls, policy: PrivacyPolicy | None = None, threads: int | None = None) -> Workspace:
        """An empty in-memory workspace with file access disabled."""
        config: dict[str, Any] = {"enable_external_access": False}
        if threads:
            config["threads"] = threads
        return cls(duckdb.connect(":memory:", config=config), policy=policy)

    @classmethod
    def on_shared(cls, shared: SharedTables, policy: PrivacyPolicy | None = None) -> Workspace:
        """A workspace over shared, already loaded base tables; its handles go in a private schema."""
        schema = "ep_" + uuid.uuid4().hex[:16]
        conn = shared.conn.cursor()
        conn.execute(f"CREATE SCHEMA {quote(schema)}")
        tables = {n: TableInfo.from_dict(t.to_dict()) for n, t in shared.tables.items()}
        return cls(conn, tables, policy=policy, schema=schema)

    def add_base_table(
        self, name: str, data: pa.Table, sensitive: set[str] | frozenset[str] = frozenset(), description: str = ""
    ) -> TableInfo:
        """Load an Arrow table as a base table (NaN floats become NULL)."""
        if not IDENT.match(name) or HANDLE.match(name) or name.startswith("__"):
            raise ValueError(f"invalid base table name {name!r}")
        data = _nan_to_null(data)
        view = "__load_" + name
        self.conn.register(view, data)
        try:
            self.conn.execute(f"CREATE OR REPLACE TABLE {quote(name)} AS SELECT * FROM {quote(view)}")
        finally:
            self.conn.unregister(view)
        cols = self._columns(name, {c: (c in sensitive) for c in data.column_names})
        info = TableInfo(name=name, columns=cols, rows=data.num_rows, kind="base", description=description)
        self.tables[name] = info
        return info

    def _columns(self, physical: str, sensitive: dict[str, bool]) -> list[ColumnInfo]:
        rows = self.conn.execute(f"DESCRIBE {self._phys(physical)}").fetchall()
        return [ColumnInfo(name=r[0], type=column_type(r[1]), sensitive=sensitive.get(r[0], False)) for r in rows]

    # ----- helpers -----

    def _phys(self, name: str) -> str:
        """The quoted DuckDB name of a table or handle (handles live in the workspace's schema)."""
        if self.schema and HANDLE.match(name):
            return f"{quote(self.schema)}.{quote(name)}"
        return quote(name)

    def close(self) -> None:
        """Drop this workspace's handles (its schema, when it has one) and close the connection."""
        try:
            if self.schema:
                self.conn.execute(f"DROP SCHEMA IF EXISTS {quote(self.schema)} CASCADE")
        finally:
            self.conn.close()

    def table(self, name: str) -> TableInfo:
        """The table called ``name``; a teaching ``ToolError`` if there is none."""
        if not isinstance(name, str) or name not in self.tables:
            known = ", ".join(self.tables) or "(none)"
            raise ToolError(f"unknown table {name!r}. Available tables and handles: {known}.")
        return self.tables[name]

    def _new_handle(self) -> str:
        derived = sum(1 for t in self.tables.values() if t.kind == "derived")
        if derived >= self.policy.max_handles:
            raise ToolError(f"this episode already has {derived} derived tables (limit); reuse existing handles.")
        self.counter += 1
        return f"t{self.counter}"

    def _exec(self, sql: str, params: list[Any] | None = None) -> duckdb.DuckDBPyConnection:
        try:
            return self.conn.execute(sql, params or [])
        except duckdb.OutOfRangeException as exc:
            raise ToolError(f"arithmetic overflow or out-of-range value: {str(exc).splitlines()[0]}") from None
        except duckdb.ConversionException as exc:
            raise ToolError(f"a value could not be converted: {str(exc).splitlines()[0]}") from None

    def _materialise(
        self,
        select_sql: str,
        params: list[Any],
        src: TableInfo,
        origin: str,
        sensitive: dict[str, bool],
        aggregated: bool,
    ) -> TableInfo:
        handle = self._new_handle()
        try:
            self._exec(f"CREATE TABLE {self._phys(handle)} AS {select_sql}", params)
        except ToolError:
            self.counter -= 1
            raise
        rows_out = self.conn.execute(f"SELECT count(*) FROM {self._phys(handle)}").fetchone()[0]  # type: ignore[index]
        info = TableInfo(
            name=handle,
            columns=self._columns(handle, sensitive),
            rows=int(rows_out),
            kind="derived",
            aggregated=aggregated,
            origin=origin,
        )
        self.tables[handle] = info
        self.stats.update(rows_in=src.rows, rows_out=info.rows)
        return info

    def _summary(self, info: TableInfo) -> dict[str, Any]:
        return {"handle": info.name, "rows": info.rows, "columns": [c.name for c in info.visible]}

    # ----- tools -----

    def list_tables(self) -> dict[str, Any]:
        """Every table and handle: name, kind, rows, number of columns, origin."""
        out = []
        for t in self.tables.values():
            item: dict[str, Any] = {"name": t.name, "kind": t.kind, "rows": t.rows, "columns": len(t.columns)}
            if t.description:
                item["description"] = t.description
            if t.origin:
                item["origin"] = t.origin
            out.append(item)
        return {"tables": out}

    def describe(self, table: str) -> dict[str, Any]:
        """Columns (name, type, sensitive, nulls) and row count; nulls of sensitive columns are withheld."""
        info = self.table(table)
        visible = info.visible
        nulls: dict[str, int] = {}
        if visible and info.rows:
            exprs = ", ".join(f"count(*) - count({quote(c.name)})" for c in visible)
            row = self.conn.execute(f"SELECT {exprs} FROM {self._phys(info.name)}").fetchone()
            nulls = {c.name: int(v) for c, v in zip(visible, row or [], strict=True)}
        cols = [
            {
                "name": c.name,
                "type": c.type,
                "sensitive": c.sensitive,
                "nulls": None if c.sensitive else nulls.get(c.name, 0),
            }
            for c in info.columns
        ]
        self.stats.update(rows_in=info.rows)
        out: dict[str, Any] = {"table": info.name, "rows": info.rows, "columns": cols}
        if info.description:
            out["description"] = info.description
        return out

    def filter(self, table: str, where: list[Condition], combine: str) -> dict[str, Any]:
        """Rows of ``table`` matching the conditions (NULL never matches a comparison)."""
        src = self.table(table)
        if combine not in ("and", "or"):
            raise ToolError(f"combine must be 'and' or 'or', not {combine!r}.")
        parts: list[str] = []
        params: list[Any] = []
        for cond in where:
            sql, ps = self._condition(src, cond)
            parts.append(sql)
            params.extend(ps)
        clause = f" {combine.upper()} ".join(f"({p})" for p in parts) if parts else "TRUE"
        info = self._materialise(
            f"SELECT * FROM {self._phys(src.name)} WHERE {clause}",
            params,
            src,
            f"filter({src.name})",
            {c.name: c.sensitive for c in src.columns},
            src.aggregated,
        )
        return self._summary(info)

    def _condition(self, src: TableInfo, cond: Condition) -> tuple[str, list[Any]]:
        col = self.policy.usable(src, cond.column, "filtered on")
        c = quote(col.name)
        op, value = cond.op, cond.value
        if op in ("is_null", "not_null"):
            if value is not None:
                raise ToolError(f"op {op!r} takes no value; omit 'value'.")
            return f"{c} IS {'NOT ' if op == 'not_null' else ''}NULL", []
        if op in _CMP:
            if col.type not in ORDERED:
                raise ToolError(f"column {col.name!r} has type {col.type}; it cannot be compared.")
            if op not in ("eq", "ne") and col.type == "boolean":
                raise ToolError(f"column {col.name!r} is boolean: use eq or ne.")
            return f"{c} {_CMP[op]} ?", [_coerce(col, value, op)]
        if op in ("in", "not_in"):
            if not isinstance(value, list):
                raise ToolError(f'op {op!r} needs a list value, e.g. ["a", "b"].')
            if len(value) > _MAX_IN_VALUES:
                raise ToolError(f"op {op!r} takes at most {_MAX_IN_VALUES} values.")
            vals = [_coerce(col, v, op) for v in value]
            if not vals:
                return ("FALSE" if op == "in" else f"{c} IS NOT NULL"), []
            marks = ", ".join("?" for _ in vals)
            return f"{c} {'NOT ' if op == 'not_in' else ''}IN ({marks})", vals
        if op == "between":
            if not isinstance(value, list) or len(value) != 2:
                raise ToolError("op 'between' needs a value [low, high] (both ends included).")
            if col.type not in ORDERED or col.type == "boolean":
                raise ToolError(f"column {col.name!r} has type {col.type}; 'between' needs numbers, dates or text.")
            return f"{c} BETWEEN ? AND ?", [_coerce(col, value[0], op), _coerce(col, value[1], op)]
        # contains / startswith
        if col.type != "string":
            raise ToolError(f"op {op!r} works on text columns; {col.name!r} has type {col.type}.")
        if not isinstance(value, str):
            raise ToolError(f"op {op!r} needs a text value.")
        fn = "contains" if op == "contains" else "starts_with"
        return f"{fn}({c}, ?)", [value]

    def aggregate(self, table: str, group_by: list[str], metrics: list[Metric]) -> dict[str, Any]:
        """Aggregates over ``table`` (grouped); groups of fewer than k raw records are suppressed."""
        src = self.table(table)
        if not metrics:
            raise ToolError('give at least one metric, e.g. [{"fn": "count"}].')
        if len(set(group_by)) != len(group_by):
            raise ToolError("group_by lists a column twice.")
        groups = [self.policy.usable(src, g, "grouped by") for g in group_by]
        names = [g.name for g in groups]
        selects = [quote(n) for n in names]
        for m in metrics:
            expr, alias = self._metric(src, m)
            if alias in names:
                raise ToolError(f"result column name {alias!r} is used twice; set a different 'as'.")
            names.append(alias)
            selects.append(f"{expr} AS {quote(alias)}")
        s = self._phys(src.name)
        k = self.policy.k
        if not groups:
            records = src.rows
            if self.policy.suppress(src, records):
                self.stats.update(rows_in=records, rows_out=0, suppressed=True)
                return {
                    "suppressed": True,
                    "rows_in": records,
                    "message": f"suppressed: the aggregate covers {records} rows, fewer than the minimum of {k}.",
                }
            info = self._materialise(
                f"SELECT {', '.join(selects)} FROM {s}", [], src, f"aggregate({src.name})", {}, True
            )
            return {**self._summary(info), "preview": self._preview(info)}
        gsql = ", ".join(quote(g.name) for g in groups)
        inner = f"SELECT {', '.join(selects)}, count(*) AS __n FROM {s} GROUP BY {gsql}"
        order = ", ".join(f"{quote(g.name)} NULLS LAST" for g in groups)
        keep = ", ".join(quote(n) for n in names)
        if src.aggregated:
            info = self._materialise(
                f"SELECT {keep} FROM ({inner}) ORDER BY {order}", [], src, f"aggregate({src.name})", {}, True
            )
            suppressed = 0
        else:  # group once into a scratch table; keep the groups of at least k rows
            scratch = self._phys("__scratch") if not self.schema else f"{quote(self.schema)}.{quote('__scratch')}"
            self._exec(f"CREATE OR REPLACE TABLE {scratch} AS {inner}")
            try:
                info = self._materialise(
                    f"SELECT {keep} FROM {scratch} WHERE __n >= ? ORDER BY {order}",
                    [k],
                    src,
                    f"aggregate({src.name})",
                    {},
                    True,
                )
                total = self.conn.execute(f"SELECT count(*) FROM {scratch}").fetchone()[0]  # type: ignore[index]
            finally:
                self.conn.execute(f"DROP TABLE IF EXISTS {scratch}")
            suppressed = int(total) - info.rows
        self.stats.update(suppressed=suppressed > 0, suppressed_groups=suppressed)
        out = {**self._summary(info), "preview": self._preview(info)}
        if suppressed:
            out["suppressed_groups"] = suppressed
            out["message"] = f"{suppressed} group(s) with fewer than {k} rows were suppressed (left out)."
        return out

    def _metric(self, src: TableInfo, m: Metric) -> tuple[str, str]:
        fn = m.fn
        if m.column is None:
            if fn != "count":
                raise ToolError(f"metric {fn!r} needs a 'column'.")
            alias = m.as_ or "count"
            expr = "count(*)"
        else:
            col = self.policy.usable(src, m.column, "aggregated")
            c = quote(col.name)
            alias = m.as_ or f"{fn}_{col.name}"
            if fn in ("sum", "mean", "median", "std") and col.type not in NUMERIC:
                raise ToolError(f"{fn} needs a numeric column; {col.name!r} has type {col.type}.")
            if fn in ("min", "max") and col.type not in ORDERED:
                raise ToolError(f"{fn} cannot be applied to {col.name!r} (type {col.type}).")
            expr = {
                "count": f"count({c})",
                "count_distinct": f"count(DISTINCT {c})",
                "sum": f"sum({c})" if col.type == "integer" else f"sum(CAST({c} AS DOUBLE))",
                "mean": f"avg(CAST({c} AS DOUBLE))",
                "median": f"median(CAST({c} AS DOUBLE))",
                "std": f"stddev_samp(CAST({c} AS DOUBLE))",
                "min": f"min({c})",
                "max": f"max({c})",
            }[fn]
        if not IDENT.match(alias) or alias.startswith("__"):
            raise ToolError(
                f"result column name {alias!r} is invalid: use letters, digits and _ (not starting with __)."
            )
        return expr, alias

    def _preview(self, info: TableInfo) -> dict[str, Any]:
        cols = [c.name for c in info.visible]
        if not cols:
            return {"columns": [], "rows": []}
        sel = ", ".join(quote(c) for c in cols)
        rows = self.conn.execute(
            f"SELECT {sel} FROM {self._phys(info.name)} LIMIT ?", [self.policy.max_rows]
        ).fetchall()
        return {"columns": cols, "rows": [[jsonable(v) for v in r] for r in rows], "truncated": info.rows > len(rows)}

    def sort(self, table: str, by: list[SortKey], limit: int | None) -> dict[str, Any]:
        """``table`` ordered by the keys (NULLs last, ties in input order), optionally the first ``limit`` rows."""
        src = self.table(table)
        if not by:
            raise ToolError('give at least one sort key, e.g. [{"column": "price", "desc": true}].')
        keys = []
        for key in by:
            col = self.policy.usable(src, key.column, "sorted by")
            keys.append(f"{quote(col.name)} {'DESC' if key.desc else 'ASC'} NULLS LAST")
        params: list[Any] = []
        lim = ""
        if limit is not None:
            if limit < 0:
                raise ToolError("limit must be 0 or more.")
            lim, params = " LIMIT ?", [limit]
        info = self._materialise(
            f"SELECT * FROM {self._phys(src.name)} ORDER BY {', '.join(keys)}, rowid{lim}",
            params,
            src,
            f"sort({src.name})",
            {c.name: c.sensitive for c in src.columns},
            src.aggregated,
        )
        return self._summary(info)

    def join(self, left: str, right: str, left_on: str, right_on: str, how: str) -> dict[str, Any]:
        """Rows of ``left`` joined to ``right`` on equal keys (NULL keys never match)."""
        lt, rt = self.table(left), self.table(right)
        if how not in ("inner", "left"):
            raise ToolError(f"how must be 'inner' or 'left', not {how!r}.")
        lk = self.policy.usable(lt, left_on, "joined on")
        rk = self.policy.usable(rt, right_on, "joined on")
        kinds = {lk.type, rk.type}
        if not (kinds <= NUMERIC or len(kinds) == 1) or "other" in kinds:
            raise ToolError(f"join keys have incompatible types: {lk.name!r} is {lk.type}, {rk.name!r} is {rk.type}.")
        taken = {c.name for c in lt.columns}
        selects = [f"l.{quote(c.name)}" for c in lt.columns]
        sensitive = {c.name: c.sensitive for c in lt.columns}
        renamed: dict[str, str] = {}
        for c in rt.columns:
            if c.name == rk.name:
                continue
            name = c.name
            n = 1
            while name in taken:
                name = f"{c.name}_right" if n == 1 else f"{c.name}_right{n}"
                n += 1
            taken.add(name)
            if name != c.name:
                renamed[c.name] = name
            sensitive[name] = c.sensitive
            selects.append(f"r.{quote(c.name)} AS {quote(name)}")
        jt = "INNER JOIN" if how == "inner" else "LEFT JOIN"
        width = rt.rows + 1
        params: list[Any] = []
        if lt.rows * width < 2**62:  # one sort key is cheaper than two; width is our own integer, not model text
            order = f"l.__lr * {int(width)} + coalesce(r.__rr, 0)"
        else:
            order = "l.__lr, r.__rr NULLS FIRST"
        sql = (
            f"SELECT {', '.join(selects)} FROM (SELECT *, rowid AS __lr FROM {self._phys(lt.name)}) l {jt} "
            f"(SELECT *, rowid AS __rr FROM {self._phys(rt.name)}) r ON l.{quote(lk.name)} = r.{quote(rk.name)} "
            f"ORDER BY {order}"
        )
        info = self._materialise(
            sql, params, lt, f"join({lt.name}, {rt.name})", sensitive, lt.aggregated and rt.aggregated
        )
        self.stats["rows_in"] = lt.rows + rt.rows
        out = self._summary(info)
        if renamed:
            out["renamed"] = {k: v for k, v in renamed.items() if not rt.column(k).sensitive}  # type: ignore[union-attr]
        return out

    def compute(self, table: str, name: str, expr: Expr) -> dict[str, Any]:
        """``table`` plus a new column ``name`` computed from the expression tree."""
        src = self.table(table)
        if not IDENT.match(name) or name.startswith("__"):
            raise ToolError(f"new column name {name!r} is invalid: use letters, digits and _ (not starting with __).")
        if src.column(name) is not None:
            raise ToolError(f"column {name!r} already exists in {src.name!r}; pick a new name.")
        params: list[Any] = []
        counter = [0]
        sql, _ = self._expr(src, expr, params, 1, counter)
        info = self._materialise(
            f"SELECT *, {sql} AS {quote(name)} FROM {self._phys(src.name)}",
            params,
            src,
            f"compute({src.name}.{name})",
            {c.name: c.sensitive for c in src.columns},
            src.aggregated,
        )
        return self._summary(info)

    def _expr(
        self, src: TableInfo, node: Col | Lit | Expr, params: list[Any], depth: int, counter: list[int]
    ) -> tuple[str, str]:
        counter[0] += 1
        if counter[0] > _MAX_EXPR_NODES or depth > _MAX_EXPR_DEPTH:
            raise ToolError(f"expression too large (at most {_MAX_EXPR_NODES} nodes, depth {_MAX_EXPR_DEPTH}).")
        if isinstance(node, Col):
            col = self.policy.usable(src, node.col, "used in a computed column")
            return quote(col.name), col.type
        if isinstance(node, Lit):
            if isinstance(node.lit, int):
                params.append(node.lit)
                return "CAST(? AS BIGINT)", "integer"
            if not math.isfinite(node.lit):
                raise ToolError("literals must be finite numbers.")
            params.append(node.lit)
            return "CAST(? AS DOUBLE)", "number"
        op, args = node.op, node.args
        arity = {"add": (2, 2), "sub": (2, 2), "mul": (2, 2), "div": (2, 2), "abs": (1, 1), "round": (1, 2)}
        lo, hi = arity.get(op, (1, 1))
        if not lo <= len(args) <= hi:
            want = str(lo) if lo == hi else f"{lo} or {hi}"
            raise ToolError(f"op {op!r} takes {want} argument(s), got {len(args)}.")
        if op == "round":
            digits = 0
            if len(args) == 2:
                d = args[1]
                if not isinstance(d, Lit) or not isinstance(d.lit, int) or not 0 <= d.lit <= 10:
                    raise ToolError('round\'s second argument must be {"lit": N} with an integer N from 0 to 10.')
                digits = d.lit
            a, t = self._expr(src, args[0], params, depth + 1, counter)
            _need_numeric(op, t)
            if t == "integer":
                return a, t
            return f"round({a}, {digits})", "number"
        subs = [self._expr(src, a, params, depth + 1, counter) for a in args]
        if op in ("year", "month", "day"):
            ((a, t),) = subs
            if t not in ("date", "timestamp"):
                raise ToolError(f"op {op!r} needs a date or timestamp, got {t}.")
            return f"CAST({op}({a}) AS BIGINT)", "integer"
        for _, t in subs:
            _need_numeric(op, t)
        if op == "abs":
            ((a, t),) = subs
            return f"abs({a})", t
        (a, ta), (b, tb) = subs
        if op == "div":
            return f"(CAST({a} AS DOUBLE) / NULLIF(CAST({b} AS DOUBLE), 0))", "number"
        sym = {"add": "+", "sub": "-", "mul": "*"}[op]
        if ta == tb == "integer":
            return f"({a} {sym} {b})", "integer"
        return f"(CAST({a} AS DOUBLE) {sym} CAST({b} AS DOUBLE))", "number"

    def head(self, table: str, n: int, columns: list[str] | None) -> dict[str, Any]:
        """The first ``n`` (at most max_rows) rows of the chosen non-sensitive columns."""
        info = self.table(table)
        cap = self.policy.max_rows
        if not 1 <= n <= cap:
            raise ToolError(f"n must be between 1 and {cap}.")
        cols = [self.policy.usable(info, c, "shown") for c in columns] if columns else info.visible
        if not cols:
            raise ToolError(f"table {info.name!r} has no non-sensitive columns to show.")
        sel = ", ".join(quote(c.name) for c in cols)
        rows = self.conn.execute(f"SELECT {sel} FROM {self._phys(info.name)} LIMIT ?", [n]).fetchall()
        self.stats.update(rows_in=info.rows, rows_out=len(rows))
        return {
            "table": info.name,
            "columns": [c.name for c in cols],
            "rows": [[jsonable(v) for v in r] for r in rows],
            "total_rows": info.rows,
        }

    def distinct(self, table: str, column: str, limit: int) -> dict[str, Any]:
        """Distinct values of a non-sensitive column, ascending with NULL last, and how many there are."""
        info = self.table(table)
        cap = self.policy.max_distinct
        if not 1 <= limit <= cap:
            raise ToolError(f"limit must be between 1 and {cap}.")
        col = self.policy.usable(info, column, "listed")
        c, t = quote(col.name), self._phys(info.name)
        vals = self.conn.execute(f"SELECT DISTINCT {c} FROM {t} ORDER BY {c} NULLS LAST LIMIT ?", [limit]).fetchall()
        total = self.conn.execute(f"SELECT count(*) FROM (SELECT DISTINCT {c} FROM {t})").fetchone()[0]  # type: ignore[index]
        self.stats.update(rows_in=info.rows, rows_out=len(vals))
        return {
            "table": info.name,
            "column": col.name,
            "values": [jsonable(v[0]) for v in vals],
            "distinct": int(total),
            "truncated": int(total) > len(vals),
        }

    def value(self, table: str, column: str, row: int) -> dict[str, Any]:
        """One cell of a non-sensitive column."""
        info = self.table(table)
        col = self.policy.usable(info, column, "shown")
        if not 0 <= row < info.rows:
            raise ToolError(f"row {row} is out of range: {info.name!r} has {info.rows} rows (rows start at 0).")
        got = self.conn.execute(
            f"SELECT {quote(col.name)} FROM {self._phys(info.name)} LIMIT 1 OFFSET ?", [row]
        ).fetchone()
        self.stats.update(rows_in=info.rows, rows_out=1)
        return {"table": info.name, "column": col.name, "row": row, "value": jsonable(got[0] if got else None)}

    def count(self, table: str) -> dict[str, Any]:
        """Number of rows of a table."""
        info = self.table(table)
        self.stats.update(rows_in=info.rows)
        return {"table": info.name, "rows": info.rows}

    def correlation(self, table: str, x: str, y: str) -> dict[str, Any]:
        """Pearson correlation of two numeric columns over rows where both are non-null."""
        info = self.table(table)
        cx, cy = self.policy.usable(info, x, "correlated"), self.policy.usable(info, y, "correlated")
        for c in (cx, cy):
            if c.type not in NUMERIC:
                raise ToolError(f"correlation needs numeric columns; {c.name!r} has type {c.type}.")
        qx, qy = quote(cx.name), quote(cy.name)
        row = self.conn.execute(
            f"SELECT count(*), corr(CAST({qy} AS DOUBLE), CAST({qx} AS DOUBLE)) FROM {self._phys(info.name)} "
            f"WHERE {qx} IS NOT NULL AND {qy} IS NOT NULL"
        ).fetchone()
        pairs, r = int(row[0]), row[1]  # type: ignore[index]
        self.stats.update(rows_in=info.rows)
        if self.policy.suppress(info, pairs):
            self.stats["suppressed"] = True
            return {
                "suppressed": True,
                "pairs": pairs,
                "message": f"suppressed: only {pairs} complete pairs, fewer than the minimum of {self.policy.k}.",
            }
        out: dict[str, Any] = {
            "table": info.name,
            "x": cx.name,
            "y": cy.name,
            "pairs": pairs,
            "correlation": jsonable(r),
        }
        if out["correlation"] is None:
            out["message"] = "undefined: one of the columns is constant over these rows."
        return out


def _need_numeric(op: str, t: str) -> None:
    if t not in NUMERIC:
        raise ToolError(f"op {op!r} needs numbers, got a {t} argument.")


def _coerce(col: ColumnInfo, value: Any, op: str) -> Any:
    """Check a filter value against the column type and convert it for binding."""
    t = col.type
    bad = ToolError(f"value {value!r} does not fit column {col.name!r} of type {t} (op {op!r}).")
    if value is None:
        raise ToolError(f"op {op!r} needs a value; to test for missing values use is_null / not_null.")
    if t in NUMERIC:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        if isinstance(value, float) and not math.isfinite(value):
            raise bad
        return value
    if t == "string":
        if not isinstance(value, str):
            raise bad
        return value
    if t == "boolean":
        if not isinstance(value, bool):
            raise bad
        return value
    if t in ("date", "timestamp"):
        if not isinstance(value, str):
            raise ToolError(f"dates are written as text 'YYYY-MM-DD'; got {value!r} for {col.name!r}.")
        try:
            return dt.date.fromisoformat(value) if t == "date" else dt.datetime.fromisoformat(value)
        except ValueError:
            raise ToolError(f"{value!r} is not an ISO date ('YYYY-MM-DD') for column {col.name!r}.") from None
    raise ToolError(f"column {col.name!r} has type {t}; it cannot be filtered with {op!r}.")


def _nan_to_null(data: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    cols = []
    for i, field in enumerate(data.schema):
        col = data.column(i)
        if pa.types.is_floating(field.type):
            col = pc.if_else(pc.is_nan(col), pa.scalar(None, field.type), col)
        cols.append(col)
    return pa.table(cols, names=data.column_names)


class SharedTables:
    """Base tables loaded once into one DuckDB database; workspaces use cursors on it."""

    def __init__(self, tables: dict[str, pa.Table], sensitive: dict[str, set[str]], descriptions: dict[str, str]):
        loader = Workspace.in_memory()
        for name, table in tables.items():
            loader.add_base_table(name, table, sensitive.get(name, set()), descriptions.get(name, ""))
        self.conn = loader.conn
        self.tables = loader.tables
        self.lock = threading.Lock()
