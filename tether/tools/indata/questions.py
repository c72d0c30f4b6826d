"""InData benchmark questions: templates at three levels with independently computed gold answers.

Templates are written against a ``DomainSpec`` (which table is the fact table, which
columns are categories, numbers, dates, which dimension tables join to it), so a new
domain only needs a spec. Every question carries

- ``gold``: computed with pandas on the raw frames (never through the tools), with the
  same semantics the tools document (missing values never match a comparison, groups of
  fewer than ``K`` rows are not reported);
- ``plan``: the tool calls the scripted oracle makes; later arguments refer to earlier
  results with ``{"$ref": [step, key, ...]}``.

Levels count tool calls including ``answer``: easy 1-2, medium 3-5, hard 6+.
Instances whose answer would be ambiguous (ties for the top) are skipped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tether.tools.indata.datasets import Dataset

K = 5
LEVELS = ("easy", "medium", "hard")
LEVEL_CALLS = {"easy": (1, 2), "medium": (3, 5), "hard": (6, 99)}


@dataclass(frozen=True)
class Dim:
    """A dimension table joinable to the fact table."""

    table: str
    fact_key: str
    dim_key: str
    cats: tuple[str, ...]


@dataclass(frozen=True)
class DomainSpec:
    """The roles of a dataset's columns, for the generic templates."""

    fact: str
    cats: tuple[str, ...]
    nums: tuple[str, ...]
    date: str
    keys: tuple[str, ...]
    dims: tuple[Dim, ...]
    #: computed column: (op, column, other column or numeric literal, new name, phrase)
    compute: tuple[str, str, str | float, str, str]


SPECS: dict[str, DomainSpec] = {
    "retail": DomainSpec(
        fact="orders",
        cats=("status", "channel"),
        nums=("quantity", "unit_price", "shipping_cost"),
        date="order_date",
        keys=("customer_id", "product_id"),
        dims=(
            Dim("products", "product_id", "product_id", ("category", "brand")),
            Dim("customers", "customer_id", "customer_id", ("segment", "country")),
        ),
        compute=("mul", "quantity", "unit_price", "revenue", "revenue (quantity times unit_price)"),
    ),
    "hospital": DomainSpec(
        fact="visits",
        cats=("diagnosis_code",),
        nums=("length_of_stay", "cost"),
        date="visit_date",
        keys=("patient_id", "dept_id"),
        dims=(
            Dim("departments", "dept_id", "dept_id", ("dept_name", "building")),
            Dim("patients", "patient_id", "patient_id", ("sex", "city")),
        ),
        compute=("div", "cost", "length_of_stay", "cost_per_day", "cost per day (cost divided by length_of_stay)"),
    ),
    "hr": DomainSpec(
        fact="employees",
        cats=("title", "gender"),
        nums=("salary", "performance_score", "job_level"),
        date="hire_date",
        keys=("dept_id",),
        dims=(Dim("departments", "dept_id", "dept_id", ("dept_name", "location")),),
        compute=("div", "salary", 12.0, "monthly_salary", "monthly salary (salary divided by 12)"),
    ),
}


@dataclass
class Question:
    """One benchmark question with its gold answer and the oracle's tool-call plan."""

    id: str
    level: str
    template: str
    dataset: str
    prompt: str
    gold: Any
    answer_type: str
    plan: list[dict[str, Any]]
    tol: float = 0.0
    abs_tol: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def gold_spec(self) -> dict[str, Any]:
        """The gold answer with how to compare it (the ``Task.gold`` payload)."""
        return {"value": self.gold, "type": self.answer_type, "tol": self.tol, "abs_tol": self.abs_tol}


# ----- helpers -----


def _call(tool: str, **args: Any) -> dict[str, Any]:
    return {"tool": tool, "args": args}


def ref(step: int, *path: str | int) -> dict[str, Any]:
    """A reference to (a part of) the result of an earlier plan step."""
    return {"$ref": [step, *path]}


def _py(v: Any) -> Any:
    if isinstance(v, np.str_):
        return str(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _threshold(s: pd.Series, rng: np.random.Generator) -> float | int:
    vals = s.dropna().astype(float)
    q = float(np.quantile(vals, rng.uniform(0.25, 0.75)))
    if pd.api.types.is_integer_dtype(s.dtype):
        return int(round(q))
    return round(q, 1) if abs(q) < 1000 else float(round(q, -1))


def _unique_best(series: pd.Series, best: str) -> Any | None:
    s = series.dropna()
    if len(s) < 1:
        return None
    s = s.sort_values(ascending=(best == "min"), kind="mergesort")
    if len(s) > 1 and abs(float(s.iloc[0]) - float(s.iloc[1])) <= 1e-9 * max(1.0, abs(float(s.iloc[0]))):
        return None
    return _py(s.index[0])


def _groups(df: pd.DataFrame, by: str, col: str | None, fn: str) -> pd.Series:
    """Per-group aggregate over groups of at least K rows (the tools' suppression rule)."""
    g = df.groupby(by, dropna=False, sort=True)
    sizes = g.size()
    vals = sizes.astype(float) if fn == "count" else getattr(g[col], fn)()
    if fn == "sum":  # SQL: the sum of only missing values is missing
        vals = vals.where(g[col].count() > 0)
    return vals[sizes >= K]


def _agg(s: pd.Series, fn: str) -> float:
    return float(getattr(s, fn)())


def _compute(df: pd.DataFrame, spec: DomainSpec) -> pd.Series:
    op, a, b, _, _ = spec.compute
    x = df[a].astype(float)
    y = df[b].astype(float) if isinstance(b, str) else pd.Series(float(b), index=df.index)
    if op == "mul":
        return x * y
    return (x / y.where(y != 0)).astype(float)


def _compute_expr(spec: DomainSpec) -> dict[str, Any]:
    op, a, b, _, _ = spec.compute
    other = {"col": b} if isinstance(b, str) else {"lit": b}
    return {"op": op, "args": [{"col": a}, other]}


def _fmt(x: Any) -> str:
    return repr(x) if isinstance(x, str) else str(_py(x))


_FN_WORD = {"mean": "average", "median": "median", "sum": "total", "max": "largest", "min": "smallest"}


# ----- templates: (spec, dataset, rng) -> (prompt, gold, type, plan, tol, abs_tol) | None -----

Built = tuple[str, Any, str, list[dict[str, Any]], float, float]
Template = Callable[[DomainSpec, Dataset, np.random.Generator], "Built | None"]


def t_count_eq(spec: DomainSpec, ds: Dataset, rng: np.random.Generator) -> Built | None:
    df = ds.tables[spec.fact]
    cat = str(rng.choice(spec.cats))
    v = _py(rng.choice(df[cat].dropna().unique()))
    gold = int((df[cat] == v).sum())
    prompt = f"In the {spec.fact} table, how many rows have {cat} equal to {_fmt(v)}?"
    plan = [
        _call("filter", table=spec.fact, where=[{"column": cat, "op": "eq", "value": v}]),
        _call("answer", value=ref(0, "rows")),
    ]
    return prompt, gold, "number", plan, 0.0, 0.0


def t_count_gt(spec: DomainSpec, ds: Dataset, rng: np.random.Generator) -> Built | None:
    df = ds.tables[spec.fact]
    num = str(rng.choice(spec.nums))
    x = _threshold(df[num], rng)
    gold = int((df[num] > x).sum())
    prompt = f"In the {spec.fact} table, how many rows have {num} greater than {x}?"
    plan = [
        _call("filter", table=spec.fact, where=[{"column": num, "op": "gt", "value": x}]),
        _call("answer", value=ref(0, "rows")),
    ]
    return prompt, gold, "number", plan, 0.0, 0.0


def t_agg_all(spec: DomainSpec, ds: Dataset, rng: np.random.Generator) -> Built | None:
    df = ds.tables[spec.fact]
    num = str(rng.choice(spec.nums))
    fn = str(rng.choice(["mean", "median", "sum", "max", "min"]))
    gold = _agg(df[num], fn)
    prompt = f"What is the {_FN_WORD[fn]} ({fn}) {num} over all rows of the {spec.fact} table?"
    plan = [
        _call("aggregate", table=spec.fact, metrics=[{"fn": fn, "column": num, "as": "result"}]),
        _call("answer", value=ref(0, "preview", "rows", 0, 0)),
    ]
    return prompt, gold, "number", plan, 1e-6, 1e-9


def t_n_distinct(spec: DomainSpec, ds: Dataset, rng: np.random.Generator) -> Built | None:
    df = ds.tables[spec.fact]
    col = str(rng.choice([*spec.keys, *spec.cats]))
    gold = int(df[col].nunique(dropna=True))
    prompt = f"How many different (non-missing) values of {col} appear in the {spec.fact} table?"
    plan = [
        _call("aggregate", table=spec.fact, metrics=[{"fn": "count_distinct", "column": col, "as": "n"}]),
        _call("answer", value=ref(0, "preview", "rows", 0, 0)),
    ]
    return prompt, gold, "number", plan, 0.0, 0.0


def t_count_dates(spec: DomainSpec, ds: Dataset, rng: np.random.Generator) -> Built | None:
    df = ds.tables[spec.fact]
    d = pd.Series(sorted(df[spec.date].dropna()))
    i, j = sorted(rng.choice(len(d), size=2, replace=False))
    lo, hi = d.iloc[i], d.iloc[j]
    gold = int(((df[spec.date] >= lo) & (df[spec.date] <= hi)).sum())
    prompt = (
        f"In the {spec.fact} table, how many rows have {spec.date} between {lo.isoformat()} and "
        f"{hi.isoformat()} (both days included)?"
    )
    plan = [
        _call(
            "filter",
            table=spec.fact,
            where=[{"column": spec.date, "op": "between", "value": [lo.isoformat(), hi.isoformat()]}],
        ),
        _call("answer", value=ref(0, "rows")),
    ]
    return prompt, gold, "number", plan, 0.0, 0.0


def t_corr(spec: DomainSpec, ds: Dataset, rng: np.random.Generator) -> Built | None:
    df = ds.tables[spec.fact]
    if len(spec.nums) < 2:
        return None
    a, b = (str(x) for x in rng.choice(spec.nums, size=2, replace=False))
    pair = df[[a, b]].dropna().astype(float)
    if len(pair) < K or pair[a].std() == 0 or pair[b].std() == 0:
        return None
    gold = float(pair[a].corr(pair[b]))
    prompt = f"What is the Pearson correlation between {a} and {b} in the {spec.fact} table?"
    plan = [_call("correlation", table=spec.fact, x=a, y=b), _call("answer", value=ref(0, "correlation"))]
    return prompt, gold, "number", plan, 1e-6, 1e-6


def t_top_group(spec: DomainSpec, ds: Dataset, rng: np.random.Generator) -> Built | None:
    df = ds.tables[spec.fact]
    cat, num = str(rng.choice(spec.cats)), str(rng.choice(spec.nums))
    fn = str(rng.choice(["sum", "mean"]))
    best = str(rng.choice(["max", "min"]))
    winner = _unique_best(_groups(df, cat, num, fn), best)
    if winner is None:
        return None
    word = "highest" if best == "max" else "lowest"
    prompt = (
        f"In the {spec.fact} table, which {cat} has the {word} {_FN_WORD[fn]} {num}? "
        f"Only {cat} values with at least {K} rows count."
    )
    plan = [
        _call("aggregate", table=spec.fact, group_by=[cat], metrics=[{"fn": fn, "column": num, "as": "v"}]),
        _call("sort", table=ref(0, "handle"), by=[{"column": "v", "desc": best == "max"}], limit=1),
        _call("value", table=ref(1, "handle"), column=cat, row=0),
        _call("answer", value=ref(2, "value")),
    ]
    return prompt, winner, "string", plan, 0.0, 0.0


def t_filtered_agg(spec: DomainSpec, ds: Dataset, rng: np.random.Generator) -> Built | None:
    df = ds.tables[spec.fact]
    cat, num = str(rng.choice(spec.cats)), str(rng.choice(spec.nums))
    counts = df[cat].value_counts()
    v = _py(rng.choice(counts[counts >= K].index))
    fn = str(rng.choice(["mean", "median", "max"]))
    sub = df[df[cat] == v]
    gold = _agg(sub[num], fn)
    if np.isnan(gold):
        return None
    prompt = f"Among the rows of {spec.fact} with {cat} equal to {_fmt(v)}, what is the {_FN_WORD[fn]} {num}?"
    plan = [
        _call("filter", table=spec.fact, where=[{"column": cat, "op": "eq", "value": v}]),
        _call("aggregate", table=ref(0, "handle"), metrics=[{"fn": fn, "column": num, "as": "v"}]),
        _call("answer", value=ref(1, "preview", "rows", 0, 0)),
    ]
    return prompt, gold, "number", plan, 1e-6, 1e-9


def t_top3(spec: DomainSpec, ds: Dataset, rng: np.random.Generator) -> Built | None:
    df = ds.tables[spec.fact]
    options = [c for c in (*spec.cats, *spec.keys) if df[c].nunique() >= 4]
    if not options:
        return None
    col = str(rng.choice(options))
    counts = _groups(df, col, None, "count").sort_values(ascending=False, kind="mergesort")
    if len(counts) < 4 or len(set(counts.iloc[:4])) < 4:
        return None
    gold = [_py(x) for x in counts.index[:3]]
    prompt = (
        f"List the 3 values of {col} with the most rows in the {spec.fact} table, most frequent first, as a JSON list."
    )
    plan = [
        _call("aggregate", table=spec.fact, group_by=[col], metrics=[{"fn": "count", "as": "n"}]),
        _call("sort", table=ref(0, "handle"), by=[{"column": "n", "desc": True}], limit=3),
        _call("head", table=ref(1, "handle"), n=3, columns=[col]),
        _call("answer", value={"$column": [2, 0]}),
    ]
    return prompt, gold, "list", plan, 0.0, 0.0


def t_compare(spec: DomainSpec, ds: Dataset, rng: np.random.Generator) -> Built | None:
    df = ds.tables[spec.fact]
    cat, num = str(rng.choice(spec.cats)), str(rng.choice(spec.nums))
    counts = df[cat].value_counts()
    ok = list(counts[counts >= K].index)
    if len(ok) < 2:
        return None
    a, b = (_py(x) for x in rng.choice(ok, size=2, replace=False))
    ma, mb = df.loc[df[cat] == a, num].mean(), df.loc[df[cat] == b, num].mean()
    if np.isnan(ma) or np.isnan(mb) or abs(ma - mb) <= 1e-9 * max(1.0, abs(ma)):
        return None
    gold = a if ma > mb else b
    prompt = (
        f"In the {spec.fact} table, is the average {num} higher for {cat} = {_fmt(a)} or for "
        f"{cat} = {_fmt(b)}? Answer with the {cat} value."
    )
    plan = [
        _call("filter", table=spec.fact, where=[{"column": cat, "op": "eq", "value": a}]),
        _call("aggregate", table=ref(0, "handle"), metrics=[{"fn": "mean", "column": num, "as": "v"}]),
        _call("filter", table=spec.fact, where=[{"column": cat, "op": "eq", "value": b}]),
        _call("aggregate", table=ref(2, "handle"), metrics=[{"fn": "mean", "column": num, "as": "v"}]),
        _call(
            "answer", value={"$argmax": [[a, ref(1, "preview", "rows", 0, 0)], [b, ref(3, "preview", "rows", 0, 0)]]}
        ),
    ]
    return prompt, gold, "string", plan, 0.0, 0.0


def t_distinct_filtered(spec: DomainSpec, ds: Dataset, rng: np.random.Generator) -> Built | None:
    df = ds.tables[spec.fact]
    cat, num, key = str(rng.choice(spec.cats)), str(rng.choice(spec.nums)), str(rng.choice(spec.keys))
    counts = df[cat].value_counts()
    v = _py(rng.choice(counts[counts >= K].index))
    x = _threshold(df[num], rng)
    sub = df[(df[cat] == v) & (df[num] >= x)]
    if len(sub) < K:
        return None
    gold = int(sub[key].nunique())
    prompt = (
        f"In the {spec.fact} table, among rows with {cat} equal to {_fmt(v)} and {num} at least {x}, "
        f"how many different {key} values are there?"
    )
    plan = [
        _call(
            "filter",
            table=spec.fact,
            where=[{"column": cat, "op": "eq", "value": v}, {"column": num, "op": "ge", "value": x}],
            combine="and",
        ),
        _call("aggregate", table=ref(0, "handle"), metrics=[{"fn": "count_distinct", "column": key, "as": "n"}]),
        _call("answer", value=ref(1, "preview", "rows", 0, 0)),
    ]
    return prompt, gold, "number", plan, 0.0, 0.0


def t_join_compute(spec: DomainSpec, ds: Dataset, rng: np.random.Generator) -> Built | None:
    df = ds.tables[spec.fact]
    dim = spec.dims[int(rng.integers(len(spec.dims)))]
    dcat = str(rng.choice(dim.cats))
    _, _, _, name, phrase = spec.compute
    merged = df[df[dim.fact_key].notna()].merge(
        ds.tables[dim.table][[dim.dim_key, dcat]], left_on=dim.fact_key, right_on=dim.dim_key, how="inner"
    )
    merged[name] = _compute(merged, spec)
    fn = str(rng.choice(["sum", "mean"]))
    winner = _unique_best(_groups(merged, dcat, name, fn), "max")
    if winner is None:
        return None
    prompt = (
        f"Join {spec.fact} to {dim.table} on {dim.fact_key}. Which {dcat} has the highest {_FN_WORD[fn]} "
        f"{phrase}? Only {dcat} values with at least {K} rows count."
    )
    plan = [
        _call("join", left=spec.fact, right=dim.table, left_on=dim.fact_key, right_on=dim.dim_key, how="inner"),
        _call("compute", table=ref(0, "handle"), name=name, expr=_compute_expr(spec)),
        _call("aggregate", table=ref(1, "handle"), group_by=[dcat], metrics=[{"fn": fn, "column": name, "as": "v"}]),
        _call("sort", table=ref(2, "handle"), by=[{"column": "v", "desc": True}], limit=1),
        _call("value", table=ref(3, "handle"), column=dcat, row=0),
        _call("answer", value=ref(4, "value")),
    ]
    return prompt, winner, "string", plan, 0.0, 0.0


def t_year_peak(spec: DomainSpec, ds: Dataset, rng: np.random.Generator) -> Built | None:
    df = ds.tables[spec.fact]
    cat = str(rng.choice(spec.cats))
    counts = df[cat].value_counts()
    v = _py(rng.choice(counts[counts >= 3 * K].index))
    sub = df[df[cat] == v].copy()
    sub["yr"] = [d.year if d is not None and not pd.isna(d) else None for d in sub[spec.date]]
    use_count = bool(rng.integers(2))
    num = str(rng.choice(spec.nums))
    vals = _groups(sub, "yr", None if use_count else num, "count" if use_count else "sum")
    winner = _unique_best(vals, "max")
    if winner is None or pd.isna(winner):
        return None
    what = "the most rows" if use_count else f"the highest total {num}"
    prompt = (
        f"Among {spec.fact} rows with {cat} equal to {_fmt(v)}, which calendar year of {spec.date} has "
        f"{what}? Only years with at least {K} such rows count. Answer with the year."
    )
    metric = {"fn": "count", "as": "v"} if use_count else {"fn": "sum", "column": num, "as": "v"}
    plan = [
        _call("filter", table=spec.fact, where=[{"column": cat, "op": "eq", "value": v}]),
        _call("compute", table=ref(0, "handle"), name="yr", expr={"op": "year", "args": [{"col": spec.date}]}),
        _call("aggregate", table=ref(1, "handle"), group_by=["yr"], metrics=[metric]),
        _call("sort", table=ref(2, "handle"), by=[{"column": "v", "desc": True}], limit=1),
        _call("value", table=ref(3, "handle"), column="yr", row=0),
        _call("answer", value=ref(4, "value")),
    ]
    return prompt, int(winner), "number", plan, 0.0, 0.0


def t_two_stage(spec: DomainSpec, ds: Dataset, rng: np.random.Generator) -> Built | None:
    df = ds.tables[spec.fact]
    cat = str(rng.choice(spec.cats))
    num, num2 = str(rng.choice(spec.nums)), str(rng.choice(spec.nums))
    top = _unique_best(_groups(df, cat, None, "count"), "max")
    if top is None:
        return None
    x = _threshold(df[num], rng)
    sub = df[(df[cat] == top) & (df[num] > x)]
    if len(sub) < K or sub[num2].notna().sum() == 0:
        return None
    gold = float(sub[num2].mean())
    prompt = (
        f"In the {spec.fact} table, find the {cat} value with the most rows. Among the rows with that "
        f"{cat} and {num} greater than {x}, what is the average {num2}?"
    )
    plan = [
        _call("aggregate", table=spec.fact, group_by=[cat], metrics=[{"fn": "count", "as": "n"}]),
        _call("sort", table=ref(0, "handle"), by=[{"column": "n", "desc": True}], limit=1),
        _call("value", table=ref(1, "handle"), column=cat, row=0),
        _call(
            "filter",
            table=spec.fact,
            where=[{"column": cat, "op": "eq", "value": ref(2, "value")}, {"column": num, "op": "gt", "value": x}],
        ),
        _call("aggregate", table=ref(3, "handle"), metrics=[{"fn": "mean", "column": num2, "as": "v"}]),
        _call("answer", value=ref(4, "preview", "rows", 0, 0)),
    ]
    return prompt, gold, "number", plan, 1e-6, 1e-9


def t_suppressed_min(spec: DomainSpec, ds: Dataset, rng: np.random.Generator) -> Built | None:
    df = ds.tables[spec.fact]
    dim = spec.dims[int(rng.integers(len(spec.dims)))]
    dcat, cat, num = str(rng.choice(dim.cats)), str(rng.choice(spec.cats)), str(rng.choice(spec.nums))
    counts = df[cat].value_counts()
    v = _py(rng.choice(counts[counts >= K].index))
    sub = df[(df[cat] == v) & df[dim.fact_key].notna()]
    merged = sub.merge(ds.tables[dim.table][[dim.dim_key, dcat]], left_on=dim.fact_key, right_on=dim.dim_key)
    sizes = merged.groupby(dcat, dropna=False).size()
    small = int(((sizes > 0) & (sizes < K)).sum())
    winner = _unique_best(_groups(merged, dcat, num, "mean"), "min")
    if winner is None or (small == 0 and rng.random() < 0.7):
        return None
    prompt = (
        f"Consider the {spec.fact} rows with {cat} equal to {_fmt(v)}, joined to {dim.table} on "
        f"{dim.fact_key}. Which {dcat} has the lowest average {num}? Groups with fewer than {K} rows are "
        "suppressed by the privacy policy and do not count."
    )
    plan = [
        _call("filter", table=spec.fact, where=[{"column": cat, "op": "eq", "value": v}]),
        _call("join", left=ref(0, "handle"), right=dim.table, left_on=dim.fact_key, right_on=dim.dim_key),
        _call("aggregate", table=ref(1, "handle"), group_by=[dcat], metrics=[{"fn": "mean", "column": num, "as": "v"}]),
        _call("sort", table=ref(2, "handle"), by=[{"column": "v"}], limit=1),
        _call("value", table=ref(3, "handle"), column=dcat, row=0),
        _call("answer", value=ref(4, "value")),
    ]
    return prompt, winner, "string", plan, 0.0, 0.0


def t_year_change(spec: DomainSpec, ds: Dataset, rng: np.random.Generator) -> Built | None:
    df = ds.tables[spec.fact]
    cat, num = str(rng.choice(spec.cats)), str(rng.choice(spec.nums))
    counts = df[cat].value_counts()
    v = _py(rng.choice(counts[counts >= 4 * K].index))
    sub = df[df[cat] == v].copy()
    sub["yr"] = [d.year for d in sub[spec.date]]
    years = sorted(y for y, n in sub["yr"].value_counts().items() if n >= K)
    if len(years) < 2:
        return None
    y1, y2 = (int(y) for y in sorted(rng.choice(years, size=2, replace=False)))
    m1, m2 = sub.loc[sub["yr"] == y1, num].mean(), sub.loc[sub["yr"] == y2, num].mean()
    if np.isnan(m1) or np.isnan(m2):
        return None
    gold = float(m2 - m1)
    prompt = (
        f"For {spec.fact} rows with {cat} equal to {_fmt(v)}, by how much did the average {num} change "
        f"from {spec.date} year {y1} to year {y2}? Give average({y2}) minus average({y1})."
    )
    plan = [
        _call("filter", table=spec.fact, where=[{"column": cat, "op": "eq", "value": v}]),
        _call("compute", table=ref(0, "handle"), name="yr", expr={"op": "year", "args": [{"col": spec.date}]}),
        _call("filter", table=ref(1, "handle"), where=[{"column": "yr", "op": "eq", "value": y1}]),
        _call("aggregate", table=ref(2, "handle"), metrics=[{"fn": "mean", "column": num, "as": "v"}]),
        _call("filter", table=ref(1, "handle"), where=[{"column": "yr", "op": "eq", "value": y2}]),
        _call("aggregate", table=ref(4, "handle"), metrics=[{"fn": "mean", "column": num, "as": "v"}]),
        _call("answer", value={"$sub": [ref(5, "preview", "rows", 0, 0), ref(3, "preview", "rows", 0, 0)]}),
    ]
    return prompt, gold, "number", plan, 1e-6, 1e-6


TEMPLATES: dict[str, tuple[str, Template]] = {
    "count_eq": ("easy", t_count_eq),
    "count_gt": ("easy", t_count_gt),
    "agg_all": ("easy", t_agg_all),
    "n_distinct": ("easy", t_n_distinct),
    "count_dates": ("easy", t_count_dates),
    "correlation": ("easy", t_corr),
    "top_group": ("medium", t_top_group),
    "filtered_agg": ("medium", t_filtered_agg),
    "top3": ("medium", t_top3),
    "compare": ("medium", t_compare),
    "distinct_filtered": ("medium", t_distinct_filtered),
    "join_compute": ("hard", t_join_compute),
    "year_peak": ("hard", t_year_peak),
    "two_stage": ("hard", t_two_stage),
    "suppressed_min": ("hard", t_suppressed_min),
    "year_change": ("hard", t_year_change),
}


def generate_questions(
    ds: Dataset, domain: str, per_template: int = 8, seed: int = 0, levels: tuple[str, ...] = LEVELS
) -> list[Question]:
    """Up to ``per_template`` distinct questions of every template (of ``levels``) over ``ds``."""
    spec = SPECS[domain]
    out: list[Question] = []
    for tname, (level, fn) in TEMPLATES.items():
        if level not in levels:
            continue
        rng = np.random.default_rng([seed, int(hashlib.sha256(f"{domain}/{tname}".encode()).hexdigest()[:8], 16)])
        seen: set[str] = set()
        for _ in range(per_template * 6):
            if len(seen) >= per_template:
                break
            built = fn(spec, ds, rng)
            if built is None:
                continue
            prompt, gold, atype, plan, tol, abs_tol = built
            if prompt in seen:
                continue
            seen.add(prompt)
            qid = f"{ds.name.replace(':', '-')}-{tname}-{len(seen)}"
            full = f"Dataset {ds.name}. {prompt}"
            out.append(Question(qid, level, tname, ds.name, full, _py(gold), atype, plan, tol, abs_tol))
    return out
