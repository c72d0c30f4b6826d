"""Property tests: every InData tool against an independent pandas implementation.

Random tables hold nulls, empty tables, unicode text and extreme values. Semantics under
test (documented in tether/tools/indata/engine.py): NULL never matches a comparison,
sort puts NULLs last with ties in input order, aggregate groups are ordered by their
keys (NULLs last) and groups of fewer than k rows are suppressed.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether.errors import ToolError
from tether.tools.indata.args import Condition, Expr, Metric, SortKey
from tether.tools.indata.engine import Workspace
from tether.tools.indata.policy import PrivacyPolicy

K = 3
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SCHEMA = pa.schema([("i", pa.int64()), ("f", pa.float64()), ("s", pa.string()), ("d", pa.date32()), ("b", pa.bool_())])
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=6)
INTS = st.one_of(st.integers(-5, 5), st.integers(-(2**50), 2**50))
FLOATS = st.one_of(st.sampled_from([0.0, -0.0, 1.5, -2.25, 1e12, -1e12, 1e-9]), st.floats(-1e12, 1e12))
DATES = st.dates(dt.date(1900, 1, 1), dt.date(2100, 12, 31))


def nullable(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), s, s, s)


@st.composite
def tables(draw: st.DrawFn, max_rows: int = 14) -> dict[str, list[Any]]:
    n = draw(st.integers(0, max_rows))
    pool_s = draw(st.lists(TEXT, min_size=1, max_size=4))
    pool_i = draw(st.lists(INTS, min_size=1, max_size=5))
    return {
        "i": draw(st.lists(nullable(st.sampled_from(pool_i)), min_size=n, max_size=n)),
        "f": draw(st.lists(nullable(FLOATS), min_size=n, max_size=n)),
        "s": draw(st.lists(nullable(st.sampled_from(pool_s)), min_size=n, max_size=n)),
        "d": draw(st.lists(nullable(DATES), min_size=n, max_size=n)),
        "b": draw(st.lists(nullable(st.booleans()), min_size=n, max_size=n)),
    }


@pytest.fixture(scope="module")
def conn() -> Any:
    c = duckdb.connect(":memory:", config={"enable_external_access": False, "threads": 1})
    yield c
    c.close()


def workspace(
    conn: Any, data: dict[str, list[Any]], name: str = "x", right: dict[str, list[Any]] | None = None
) -> Workspace:
    ws = Workspace(conn.cursor(), policy=PrivacyPolicy(k=K), schema="ep_" + uuid.uuid4().hex[:10])
    ws.conn.execute(f'CREATE SCHEMA "{ws.schema}"')
    ws.add_base_table(name, pa.table(data, schema=SCHEMA))
    if right is not None:
        ws.add_base_table("y", pa.table(right, schema=SCHEMA))
    return ws


def frame(data: dict[str, list[Any]]) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in data.items()})


def rows_of(ws: Workspace, handle: str) -> list[list[Any]]:
    info = ws.tables[handle]
    out = ws.head(handle, min(10, max(info.rows, 1)), None)["rows"] if info.rows else []
    return out


def all_rows(ws: Workspace, handle: str) -> list[tuple[Any, ...]]:
    """Every row of a handle (test-side read, bypassing the output cap)."""
    cols = ", ".join(f'"{c.name}"' for c in ws.tables[handle].columns)
    return ws.conn.execute(f"SELECT {cols} FROM {ws._phys(handle)}").fetchall()


def same(a: Any, b: Any, scale: float = 1.0) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, float) and math.isnan(a) or isinstance(b, float) and math.isnan(b):
            return isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9 * max(1.0, scale))
    return bool(a == b)


def same_rows(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]], scale: float = 1.0) -> bool:
    return len(got) == len(want) and all(
        len(g) == len(w) and all(same(x, y, scale) for x, y in zip(g, w, strict=True))
        for g, w in zip(got, want, strict=True)
    )


def records(df: pd.DataFrame) -> list[tuple[Any, ...]]:
    return [
        tuple(None if (isinstance(v, float) and math.isnan(v)) or v is pd.NA else v for v in r)
        for r in df.itertuples(index=False)
    ]


# ----- filter -----

OPS = ["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "between", "contains", "startswith", "is_null", "not_null"]


@st.composite
def table_and_conditions(draw: st.DrawFn) -> tuple[dict[str, list[Any]], list[dict[str, Any]], str]:
    data = draw(tables())
    conds = []
    for _ in range(draw(st.integers(0, 3))):
        col = draw(st.sampled_from(["i", "f", "s", "d", "b"]))
        ops = {"s": OPS, "b": ["eq", "ne", "is_null", "not_null"]}.get(
            col, [o for o in OPS if o not in ("contains", "startswith")]
        )
        op = draw(st.sampled_from(ops))
        present = [v for v in data[col] if v is not None]
        gen = {"i": INTS, "f": FLOATS, "s": TEXT, "d": DATES, "b": st.booleans()}[col]
        val_s = st.one_of(st.sampled_from(present), gen) if present else gen
        if op in ("is_null", "not_null"):
            value = None
        elif op in ("in", "not_in"):
            value = draw(st.lists(val_s, max_size=3))
        elif op == "between":
            value = sorted(draw(st.lists(val_s, min_size=2, max_size=2)))
        else:
            value = draw(val_s)
        conds.append({"column": col, "op": op, "value": value})
    return data, conds, draw(st.sampled_from(["and", "or"]))


def ref_match(x: Any, op: str, v: Any) -> bool:
    if op == "is_null":
        return x is None
    if op == "not_null":
        return x is not None
    if x is None:
        return False
    return {
        "eq": lambda: x == v,
        "ne": lambda: x != v,
        "lt": lambda: x < v,
        "le": lambda: x <= v,
        "gt": lambda: x > v,
        "ge": lambda: x >= v,
        "in": lambda: x in v,
        "not_in": lambda: x not in v,
        "between": lambda: v[0] <= x <= v[1],
        "contains": lambda: v in x,
        "startswith": lambda: x.startswith(v),
    }[op]()


def wire(v: Any) -> Any:
    """A filter value as the model writes it (dates as ISO text)."""
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, list):
        return [wire(x) for x in v]
    return v


@SETTINGS
@given(table_and_conditions())
def test_filter_matches_pandas(conn: Any, case: tuple[dict[str, list[Any]], list[dict[str, Any]], str]) -> None:
    data, conds, combine = case
    ws = workspace(conn, data)
    try:
        df = frame(data)
        masks = [df[c["column"]].map(lambda x, c=c: ref_match(x, c["op"], c["value"])).astype(bool) for c in conds]
        if not masks:
            mask = pd.Series(True, index=df.index)
        else:
            mask = masks[0]
            for m in masks[1:]:
                mask = (mask & m) if combine == "and" else (mask | m)
        want = records(df[mask])
        out = ws.filter(
            "x", [Condition(column=c["column"], op=c["op"], value=wire(c["value"])) for c in conds], combine
        )
        assert out["rows"] == len(want)
        assert same_rows(all_rows(ws, out["handle"]), want)
    finally:
        ws.close()


# ----- aggregate -----

FNS = ["count", "count_distinct", "sum", "mean", "median", "min", "max", "std"]


def ref_metric(s: pd.Series, fn: str, col: str) -> Any:
    vals = [v for v in s if v is not None]
    if fn == "count":
        return len(vals)
    if fn == "count_distinct":
        return len(set(vals))
    if not vals:
        return None
    num = pd.Series(vals, dtype="float64") if col == "f" or fn in ("mean", "median", "std") else pd.Series(vals)
    if fn == "sum":
        return int(sum(vals)) if col == "i" else float(num.sum())
    if fn == "std":
        return None if len(vals) < 2 else float(num.std(ddof=1))
    return {
        "mean": lambda: float(num.mean()),
        "median": lambda: float(num.median()),
        "min": lambda: min(vals),
        "max": lambda: max(vals),
    }[fn]()


def null_last_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, v if v is not None else 0) for v in row)


@SETTINGS
@given(
    tables(max_rows=20),
    st.lists(st.sampled_from(["s", "b", "i", "d"]), max_size=2, unique=True),
    st.lists(st.tuples(st.sampled_from(FNS), st.sampled_from(["i", "f", "s", "d", None])), min_size=1, max_size=3),
)
def test_aggregate_matches_pandas(
    conn: Any, data: dict[str, list[Any]], group_by: list[str], metrics: list[tuple[str, str | None]]
) -> None:
    ws = workspace(conn, data)
    try:
        ms = []
        for n, (fn, col) in enumerate(metrics):
            if col is None:
                fn = "count"
            if fn in ("sum", "mean", "median", "std") and col not in ("i", "f"):
                col = "f"
            ms.append(Metric(fn=fn, column=col, **{"as": f"m{n}"}))
        out = ws.aggregate("x", group_by, ms)
        df = frame(data)
        scale = (
            max([abs(v) for v in data["f"] if v is not None] + [abs(v) for v in data["i"] if v is not None] + [1.0])
            * 30
        )
        if not group_by:
            if len(df) < K:
                assert out["suppressed"] is True and "handle" not in out
                return
            want = [
                tuple(
                    ref_metric(df[m.column] if m.column else pd.Series([1] * len(df)), m.fn, m.column or "") for m in ms
                )
            ]
            assert same_rows(all_rows(ws, out["handle"]), want, scale)
            return
        groups: dict[tuple[Any, ...], list[int]] = {}
        for idx in range(len(df)):
            groups.setdefault(tuple(df.iloc[idx][g] for g in group_by), []).append(idx)
        want = []
        for key in sorted(groups, key=null_last_key):
            idxs = groups[key]
            if len(idxs) < K:
                continue
            sub = df.iloc[idxs]
            want.append(
                (
                    *key,
                    *(
                        ref_metric(sub[m.column] if m.column else pd.Series([1] * len(sub)), m.fn, m.column or "")
                        for m in ms
                    ),
                )
            )
        assert out["rows"] == len(want)
        assert out.get("suppressed_groups", 0) == sum(1 for v in groups.values() if len(v) < K)
        assert same_rows(all_rows(ws, out["handle"]), want, scale)
    finally:
        ws.close()


# ----- sort -----


@SETTINGS
@given(
    tables(),
    st.lists(
        st.tuples(st.sampled_from(["i", "f", "s", "d", "b"]), st.booleans()),
        min_size=1,
        max_size=3,
        unique_by=lambda t: t[0],
    ),
    st.one_of(st.none(), st.integers(0, 20)),
)
def test_sort_matches_pandas(
    conn: Any, data: dict[str, list[Any]], keys: list[tuple[str, bool]], limit: int | None
) -> None:
    ws = workspace(conn, data)
    try:
        out = ws.sort("x", [SortKey(column=c, desc=d) for c, d in keys], limit)
        df = frame(data)
        order = list(range(len(df)))
        for col, desc in reversed(keys):  # stable sorts from the last key: NULLs last either way
            vals = list(df[col])
            present = sorted((i for i in order if vals[i] is not None), key=lambda i: vals[i], reverse=desc)
            if desc:  # keep ties in their previous order under reverse=True
                present = sorted((i for i in order if vals[i] is not None), key=lambda i: (-order.index(i),))
                present = sorted(present, key=lambda i: vals[i], reverse=True)
                present = _stable_desc(order, vals)
            order = present + [i for i in order if vals[i] is None]
        if limit is not None:
            order = order[:limit]
        want = records(df.iloc[order]) if order else []
        assert out["rows"] == len(want)
        assert same_rows(all_rows(ws, out["handle"]), want)
    finally:
        ws.close()


def _stable_desc(order: list[int], vals: list[Any]) -> list[int]:
    present = [i for i in order if vals[i] is not None]
    rank = {i: n for n, i in enumerate(present)}
    return sorted(present, key=lambda i: (_Desc(vals[i]), rank[i]))


class _Desc:
    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: _Desc) -> bool:
        return bool(self.v > other.v)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and bool(self.v == other.v)


# ----- join -----


@SETTINGS
@given(
    tables(),
    tables(),
    st.sampled_from([("i", "i"), ("s", "s"), ("d", "d"), ("f", "i")]),
    st.sampled_from(["inner", "left"]),
)
def test_join_matches_pandas(
    conn: Any, left: dict[str, list[Any]], right: dict[str, list[Any]], keys: tuple[str, str], how: str
) -> None:
    lk, rk = keys
    right = dict(right)
    if lk == rk:  # make some keys match
        right[rk] = [left[lk][n % len(left[lk])] if left[lk] and n % 2 else v for n, v in enumerate(right[rk])]
    ws = workspace(conn, left, right=right)
    try:
        out = ws.join("x", "y", lk, rk, how)
        lf, rf = frame(left), frame(right)
        lf["_l"], rf["_r"] = range(len(lf)), range(len(rf))
        rf = rf[rf[rk].map(lambda v: v is not None).astype(bool)]
        lkey = lf[lk].map(lambda v: None if v is None else (float(v) if lk in ("i", "f") else v))
        rkey = rf[rk].map(lambda v: None if v is None else (float(v) if rk in ("i", "f") else v))
        lf2, rf2 = lf.assign(_k=lkey), rf.assign(_k=rkey)
        inner = lf2[lf2["_k"].map(lambda v: v is not None).astype(bool)].merge(
            rf2, on="_k", how="inner", suffixes=("", "_right")
        )
        if how == "left":
            unmatched = lf2[~lf2["_l"].isin(inner["_l"])]
            merged = pd.concat([inner, unmatched], ignore_index=True)
            merged["_r"] = merged["_r"].astype(float)
        else:
            merged = inner
        merged = merged.sort_values(["_l", "_r"], kind="mergesort", na_position="first")
        right_cols = [f"{c}_right" for c in ["i", "f", "s", "d", "b"] if c != rk]
        want = records(merged[["i", "f", "s", "d", "b", *right_cols]].astype(object))
        got = all_rows(ws, out["handle"])
        assert out["columns"] == ["i", "f", "s", "d", "b", *right_cols]
        assert same_rows(got, want)
    finally:
        ws.close()


def test_join_rejects_incompatible_keys(conn: Any) -> None:
    ws = workspace(conn, {"i": [1], "f": [1.0], "s": ["a"], "d": [None], "b": [True]})
    try:
        with pytest.raises(ToolError, match="incompatible types"):
            ws.join("x", "x", "i", "s", "inner")
    finally:
        ws.close()


# ----- compute -----

EXPR_OPS = ["add", "sub", "mul", "div", "abs", "round"]


@st.composite
def numeric_expr(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    if depth >= 2 or (depth > 0 and draw(st.booleans())):
        return draw(
            st.sampled_from(
                [{"col": "i"}, {"col": "f"}, {"lit": draw(st.integers(-100, 100))}, {"lit": draw(st.floats(-1e3, 1e3))}]
            )
        )
    op = draw(st.sampled_from(EXPR_OPS))
    if op == "abs":
        return {"op": op, "args": [draw(numeric_expr(depth + 1))]}
    if op == "round":
        return {"op": op, "args": [draw(numeric_expr(depth + 1)), {"lit": draw(st.integers(0, 3))}]}
    return {"op": op, "args": [draw(numeric_expr(depth + 1)), draw(numeric_expr(depth + 1))]}


def ref_eval(node: dict[str, Any], row: dict[str, Any]) -> Any:
    if "col" in node:
        return row[node["col"]]
    if "lit" in node:
        return node["lit"]
    op, args = node["op"], node["args"]
    vals = [ref_eval(a, row) for a in args]
    if op in ("year", "month", "day"):
        return None if vals[0] is None else getattr(vals[0], op)
    if any(v is None for v in vals[: 1 if op == "round" else None]):
        return None
    if op == "abs":
        return abs(vals[0])
    if op == "round":
        x = vals[0]
        if isinstance(x, int):
            return x
        p = 10 ** (vals[1] if len(vals) > 1 else 0)
        return math.copysign(math.floor(abs(x) * p + 0.5) / p, x)
    a, b = vals
    if op == "div":
        return None if float(b) == 0 else float(a) / float(b)
    r = {"add": a + b, "sub": a - b, "mul": a * b}[op]
    return r if isinstance(a, int) and isinstance(b, int) else float(r)


@SETTINGS
@given(tables(), numeric_expr())
def test_compute_matches_reference(conn: Any, data: dict[str, list[Any]], expr: dict[str, Any]) -> None:
    data = dict(data)
    data["i"] = [None if v is None else max(-1000, min(1000, v)) for v in data["i"]]  # products stay exact
    data["f"] = [None if v is None else round(max(-1e6, min(1e6, v)), 3) for v in data["f"]]
    ws = workspace(conn, data)
    try:
        out = ws.compute("x", "z", Expr.model_validate(expr))
        df = frame(data)
        want = [ref_eval(expr, dict(zip(df.columns, r, strict=True))) for r in df.itertuples(index=False)]
        got = [r[-1] for r in all_rows(ws, out["handle"])]
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            if "round" in str(expr) and g is not None and w is not None:
                assert math.isclose(
                    float(g), float(w), rel_tol=1e-6, abs_tol=1e-3
                )  # halfway cases may differ in the last digit
            else:
                assert same(g, w, 1e3)
    finally:
        ws.close()


@SETTINGS
@given(tables())
def test_compute_date_parts(conn: Any, data: dict[str, list[Any]]) -> None:
    ws = workspace(conn, data)
    try:
        for part in ("year", "month", "day"):
            out = ws.compute("x", part, Expr.model_validate({"op": part, "args": [{"col": "d"}]}))
            got = [r[-1] for r in all_rows(ws, out["handle"])]
            assert got == [None if d is None else getattr(d, part) for d in data["d"]]
    finally:
        ws.close()


def test_compute_type_errors_teach(conn: Any) -> None:
    ws = workspace(conn, {"i": [1], "f": [1.0], "s": ["a"], "d": [None], "b": [True]})
    try:
        with pytest.raises(ToolError, match="needs numbers"):
            ws.compute("x", "z", Expr.model_validate({"op": "add", "args": [{"col": "s"}, {"lit": 1}]}))
        with pytest.raises(ToolError, match="date"):
            ws.compute("x", "z", Expr.model_validate({"op": "year", "args": [{"col": "i"}]}))
        with pytest.raises(ToolError, match="already exists"):
            ws.compute("x", "i", Expr.model_validate({"op": "abs", "args": [{"col": "i"}]}))
        with pytest.raises(ToolError, match="overflow"):
            ws.add_base_table("big", pa.table({"v": [2**62]}))
            ws.compute("big", "z", Expr.model_validate({"op": "mul", "args": [{"col": "v"}, {"lit": 4}]}))
    finally:
        ws.close()


# ----- head, distinct, value, count, describe, correlation -----


@SETTINGS
@given(
    tables(),
    st.integers(1, 10),
    st.lists(st.sampled_from(["i", "f", "s", "d", "b"]), min_size=1, max_size=3, unique=True),
)
def test_head_value_count(conn: Any, data: dict[str, list[Any]], n: int, cols: list[str]) -> None:
    ws = workspace(conn, data)
    try:
        df = frame(data)
        out = ws.head("x", n, cols)
        want = [[(v.isoformat() if isinstance(v, dt.date) else v) for v in r] for r in records(df[cols].head(n))]
        assert same_rows([tuple(r) for r in out["rows"]], [tuple(r) for r in want]) and out["total_rows"] == len(df)
        assert ws.count("x")["rows"] == len(df)
        for r in range(min(n, len(df))):
            assert same(ws.value("x", cols[0], r)["value"], want[r][0])
        with pytest.raises(ToolError, match="out of range"):
            ws.value("x", cols[0], len(df))
    finally:
        ws.close()


@SETTINGS
@given(tables(max_rows=25), st.sampled_from(["i", "f", "s", "d", "b"]), st.integers(1, 50))
def test_distinct_matches_pandas(conn: Any, data: dict[str, list[Any]], col: str, limit: int) -> None:
    ws = workspace(conn, data)
    try:
        out = ws.distinct("x", col, limit)
        vals = frame(data)[col]
        present = sorted({v for v in vals if v is not None})
        full = present + ([None] if any(v is None for v in vals) else [])
        want = [(v.isoformat() if isinstance(v, dt.date) else v) for v in full[:limit]]
        assert out["distinct"] == len(full)
        assert out["truncated"] == (len(full) > limit)
        assert len(out["values"]) == len(want) and all(same(a, b) for a, b in zip(out["values"], want, strict=True))
    finally:
        ws.close()


@SETTINGS
@given(tables(max_rows=20))
def test_describe_matches_pandas(conn: Any, data: dict[str, list[Any]]) -> None:
    ws = workspace(conn, data)
    try:
        out = ws.describe("x")
        assert out["rows"] == len(data["i"])
        assert ws.list_tables()["tables"] == [{"name": "x", "kind": "base", "rows": len(data["i"]), "columns": 5}]
        types = {"i": "integer", "f": "number", "s": "string", "d": "date", "b": "boolean"}
        for c in out["columns"]:
            assert c["type"] == types[c["name"]]
            assert c["nulls"] == sum(v is None for v in data[c["name"]])
    finally:
        ws.close()


@SETTINGS
@given(tables(max_rows=20))
def test_correlation_matches_pandas(conn: Any, data: dict[str, list[Any]]) -> None:
    data = dict(data)
    data["f"] = [None if v is None else round(v / 1e6, 3) for v in data["f"]]
    data["i"] = [None if v is None else v % 1000 for v in data["i"]]
    ws = workspace(conn, data)
    try:
        out = ws.correlation("x", "i", "f")
        pairs = pd.DataFrame({"i": data["i"], "f": data["f"]}).dropna().astype(float)
        assert out["pairs"] == len(pairs)
        if len(pairs) < K:
            assert out["suppressed"] is True and "correlation" not in out
            return
        want = pairs["i"].corr(pairs["f"])
        if pairs["i"].nunique() < 2 or pairs["f"].nunique() < 2:
            assert out["correlation"] is None
        else:
            assert math.isclose(out["correlation"], want, abs_tol=1e-6)
    finally:
        ws.close()


def test_empty_table_everywhere(conn: Any) -> None:
    ws = workspace(conn, {c: [] for c in "ifsdb"})
    try:
        assert ws.filter("x", [Condition(column="i", op="gt", value=1)], "and")["rows"] == 0
        assert ws.aggregate("x", [], [Metric(fn="count")])["suppressed"] is True
        assert ws.aggregate("x", ["s"], [Metric(fn="count")])["rows"] == 0
        assert ws.sort("x", [SortKey(column="f")], None)["rows"] == 0
        assert ws.distinct("x", "s", 10)["values"] == []
        assert ws.describe("x")["rows"] == 0
        assert ws.correlation("x", "i", "f")["suppressed"] is True
    finally:
        ws.close()
