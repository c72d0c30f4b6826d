"""The InData privacy policy: sensitive values never reach any output; small groups are suppressed;
injection strings are just bad arguments; every call is audited."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tether.tools.indata.engine import Workspace
from tether.tools.indata.policy import PrivacyPolicy
from tether.tools.indata.suite import build_workspace
from tether.tools.indata.tools import InDataToolSet
from tether.types import ToolCall

COLUMNS = ["id", "dept", "pay", "ssn", "secret_score", "hired"]
SENSITIVE = {"ssn", "secret_score"}


def people(secrets: list[tuple[str | None, float | None]]) -> pa.Table:
    n = len(secrets)
    return pa.table(
        {
            "id": list(range(n)),
            "dept": [["a", "b", "c"][i % 3] if i % 7 else None for i in range(n)],
            "pay": [float(1000 + 37 * (i % 11)) for i in range(n)],
            "ssn": pa.array([s for s, _ in secrets], pa.string()),
            "secret_score": pa.array([v for _, v in secrets], pa.float64()),
            "hired": pa.array([None if i % 5 == 0 else 20200101 + i for i in range(n)], pa.int64()),
        }
    )


def toolset(table: pa.Table, k: int = 5) -> InDataToolSet:
    ws = Workspace(
        duckdb.connect(":memory:", config={"enable_external_access": False, "threads": 1}), policy=PrivacyPolicy(k=k)
    )
    ws.add_base_table("staff", table, SENSITIVE)
    ws.add_base_table(
        "depts", pa.table({"dept": ["a", "b", "c"], "ssn": ["x", "y", "z"], "budget": [1.0, 2.0, 3.0]}), {"ssn"}
    )
    return InDataToolSet(ws)


async def call(ts: InDataToolSet, tool: str, /, **args: Any) -> Any:
    res = await ts.call(ToolCall(name=tool, arguments=args))
    return res


# ----- a random analyst cannot tell two datasets apart that differ only in sensitive values -----

ANY_COL = st.sampled_from(COLUMNS)
TABLE = st.sampled_from(["staff", "depts", "t1", "t2", "t3"])


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    tool = draw(
        st.sampled_from(
            [
                "filter",
                "aggregate",
                "sort",
                "join",
                "compute",
                "head",
                "distinct",
                "value",
                "describe",
                "correlation",
                "count",
            ]
        )
    )
    t, c, c2 = draw(TABLE), draw(ANY_COL), draw(ANY_COL)
    val = draw(st.sampled_from(["a", "123-45-6789", 1000.0, 0.5, None]))
    op = draw(st.sampled_from(["eq", "gt", "lt", "is_null", "not_null", "startswith"]))
    fn = draw(st.sampled_from(["count", "count_distinct", "sum", "mean", "min", "max", "std"]))
    return tool, {
        "filter": {"table": t, "where": [{"column": c, "op": op, "value": val}]},
        "aggregate": {
            "table": t,
            "group_by": draw(st.lists(ANY_COL, max_size=1)),
            "metrics": [{"fn": fn, "column": c2}],
        },
        "sort": {"table": t, "by": [{"column": c, "desc": draw(st.booleans())}], "limit": 3},
        "join": {
            "left": t,
            "right": draw(TABLE),
            "left_on": c,
            "right_on": draw(st.sampled_from(["dept", "ssn", "id"])),
        },
        "compute": {"table": t, "name": "z", "expr": {"op": "add", "args": [{"col": c}, {"col": c2}]}},
        "head": {"table": t, "n": 10} if draw(st.booleans()) else {"table": t, "n": 10, "columns": [c]},
        "distinct": {"table": t, "column": c},
        "value": {"table": t, "column": c, "row": draw(st.integers(0, 3))},
        "describe": {"table": t},
        "correlation": {"table": t, "x": c, "y": c2},
        "count": {"table": t},
    }[tool]


SECRETS = st.lists(
    st.tuples(st.one_of(st.none(), st.text(min_size=1, max_size=9)), st.one_of(st.none(), st.floats(-1e9, 1e9))),
    min_size=12,
    max_size=12,
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SECRETS, SECRETS, st.lists(calls(), min_size=1, max_size=8))
async def test_outputs_do_not_depend_on_sensitive_values(a: list[Any], b: list[Any], plan: list[Any]) -> None:
    ts_a, ts_b = toolset(people(a)), toolset(people(b))
    try:
        for name, args in plan:
            ra, rb = await call(ts_a, name, **args), await call(ts_b, name, **args)
            assert ra.content == rb.content, (name, args)
    finally:
        await ts_a.close()
        await ts_b.close()


# ----- direct attempts -----

SECRET_TABLE = people([(f"900-00-{i:04d}", float(i * 1000)) for i in range(30)])


@pytest.mark.parametrize(
    ("name", "args", "needle"),
    [
        ("head", {"table": "staff", "columns": ["ssn"]}, "sensitive"),
        ("value", {"table": "staff", "column": "ssn"}, "sensitive"),
        ("distinct", {"table": "staff", "column": "secret_score"}, "sensitive"),
        ("filter", {"table": "staff", "where": [{"column": "ssn", "op": "startswith", "value": "900"}]}, "sensitive"),
        ("filter", {"table": "staff", "where": [{"column": "secret_score", "op": "is_null"}]}, "sensitive"),
        ("aggregate", {"table": "staff", "group_by": ["ssn"], "metrics": [{"fn": "count"}]}, "sensitive"),
        ("aggregate", {"table": "staff", "metrics": [{"fn": "sum", "column": "secret_score"}]}, "sensitive"),
        ("aggregate", {"table": "staff", "metrics": [{"fn": "count_distinct", "column": "ssn"}]}, "sensitive"),
        ("sort", {"table": "staff", "by": [{"column": "secret_score"}]}, "sensitive"),
        ("join", {"left": "staff", "right": "depts", "left_on": "ssn", "right_on": "ssn"}, "sensitive"),
        (
            "compute",
            {"table": "staff", "name": "z", "expr": {"op": "abs", "args": [{"col": "secret_score"}]}},
            "sensitive",
        ),
        ("correlation", {"table": "staff", "x": "pay", "y": "secret_score"}, "sensitive"),
    ],
)
async def test_direct_reads_of_sensitive_columns_are_refused(name: str, args: dict[str, Any], needle: str) -> None:
    ts = toolset(SECRET_TABLE)
    try:
        res = await call(ts, name, **args)
        assert res.is_error and needle in res.content
        assert "900-00" not in res.content
    finally:
        await ts.close()


async def test_sensitive_columns_stay_hidden_through_joins_and_renames() -> None:
    ts = toolset(SECRET_TABLE)
    try:
        joined = await call(ts, "join", left="staff", right="depts", left_on="dept", right_on="dept")
        handle = json.loads(joined.content)["handle"]
        assert "ssn" not in joined.content and "ssn_right" not in joined.content
        described = json.loads((await call(ts, "describe", table=handle)).content)
        hidden = {c["name"] for c in described["columns"] if c["sensitive"]}
        assert hidden == {"ssn", "secret_score", "ssn_right"}
        assert all(c["nulls"] is None for c in described["columns"] if c["sensitive"])
        for col in ("ssn_right", "ssn"):
            assert (await call(ts, "head", table=handle, columns=[col])).is_error
        shown = (await call(ts, "head", table=handle, n=10)).content
        assert "900-00" not in shown and "'x'" not in shown and '"x"' not in shown
        # a computed or aliased column cannot take over a sensitive name
        assert (
            await call(ts, "compute", table=handle, name="ssn", expr={"op": "abs", "args": [{"col": "pay"}]})
        ).is_error
    finally:
        await ts.close()


async def test_small_groups_and_small_tables_are_suppressed() -> None:
    ts = toolset(SECRET_TABLE, k=5)
    try:
        one = json.loads(
            (await call(ts, "filter", table="staff", where=[{"column": "id", "op": "eq", "value": 3}])).content
        )
        agg = json.loads(
            (await call(ts, "aggregate", table=one["handle"], metrics=[{"fn": "mean", "column": "pay"}])).content
        )
        assert agg["suppressed"] is True and "handle" not in agg and "1037" not in json.dumps(agg)
        corr = json.loads((await call(ts, "correlation", table=one["handle"], x="pay", y="id")).content)
        assert corr["suppressed"] is True and "correlation" not in corr
        groups = json.loads(
            (
                await call(ts, "aggregate", table="staff", group_by=["id"], metrics=[{"fn": "max", "column": "pay"}])
            ).content
        )
        assert groups["rows"] == 0 and groups["suppressed_groups"] == 30
        assert ts.audit[-1]["suppressed"] is True
        # aggregating an aggregate is allowed: each row already covers >= k records
        big = json.loads(
            (
                await call(ts, "aggregate", table="staff", group_by=["dept"], metrics=[{"fn": "count", "as": "n"}])
            ).content
        )
        again = json.loads(
            (await call(ts, "aggregate", table=big["handle"], metrics=[{"fn": "sum", "column": "n"}])).content
        )
        assert again["preview"]["rows"][0][0] == sum(r[1] for r in big["preview"]["rows"])
    finally:
        await ts.close()


async def test_differencing_a_sensitive_column_is_impossible() -> None:
    ts = toolset(SECRET_TABLE)
    try:
        rest = json.loads(
            (await call(ts, "filter", table="staff", where=[{"column": "id", "op": "ne", "value": 4}])).content
        )
        for table in ("staff", rest["handle"]):
            res = await call(ts, "aggregate", table=table, metrics=[{"fn": "sum", "column": "secret_score"}])
            assert res.is_error and "sensitive" in res.content
    finally:
        await ts.close()


# ----- injection strings are bad arguments, never SQL -----

PAYLOADS = [
    "orders; DROP TABLE orders; --",
    '" OR 1=1 --',
    "x') UNION SELECT name FROM customers --",
    "read_csv('/etc/passwd')",
    'name"; SELECT * FROM customers; --',
    "t1 UNION ALL SELECT * FROM customers",
]


def _string_slots(args: dict[str, Any], path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    items = args.items() if isinstance(args, dict) else enumerate(args)
    for k, v in items:
        if isinstance(v, str):
            out.append((*path, k))
        elif isinstance(v, dict | list):
            out.extend(_string_slots(v, (*path, k)))  # type: ignore[arg-type]
    return out


def _replace(obj: Any, path: tuple[Any, ...], value: Any) -> Any:
    obj = json.loads(json.dumps(obj))
    target = obj
    for k in path[:-1]:
        target = target[k]
    target[path[-1]] = value
    return obj


VALID_CALLS = [
    ("describe", {"table": "orders"}),
    ("filter", {"table": "orders", "where": [{"column": "status", "op": "eq", "value": "returned"}], "combine": "and"}),
    (
        "aggregate",
        {"table": "orders", "group_by": ["channel"], "metrics": [{"fn": "sum", "column": "quantity", "as": "q"}]},
    ),
    ("sort", {"table": "orders", "by": [{"column": "unit_price", "desc": True}], "limit": 2}),
    (
        "join",
        {"left": "orders", "right": "customers", "left_on": "customer_id", "right_on": "customer_id", "how": "inner"},
    ),
    (
        "compute",
        {"table": "orders", "name": "rev", "expr": {"op": "mul", "args": [{"col": "quantity"}, {"col": "unit_price"}]}},
    ),
    ("head", {"table": "customers", "n": 3, "columns": ["segment"]}),
    ("distinct", {"table": "customers", "column": "country"}),
    ("value", {"table": "orders", "column": "status"}),
    ("count", {"table": "orders"}),
    ("correlation", {"table": "orders", "x": "quantity", "y": "unit_price"}),
]


async def test_injection_strings_in_every_argument() -> None:
    ts = InDataToolSet(build_workspace("retail:0"))
    try:
        before = (await call(ts, "list_tables")).content
        tried = 0
        for name, args in VALID_CALLS:
            assert not (await call(ts, name, **args)).is_error, name
            for slot in _string_slots(args):
                for payload in PAYLOADS:
                    res = await call(ts, name, **_replace(args, slot, payload))
                    tried += 1
                    if slot[-1] == "value":  # a value is bound as a parameter: it simply matches nothing
                        assert not res.is_error and json.loads(res.content)["rows"] == 0
                    else:
                        assert res.is_error, (name, slot, payload)
                    assert "@mail.example" not in res.content
        assert tried > 100
        after = json.loads((await call(ts, "list_tables")).content)["tables"]
        base = [t for t in after if t["kind"] == "base"]
        assert base == [t for t in json.loads(before)["tables"] if t["kind"] == "base"]
        assert (await call(ts, "count", table="orders")).content == json.dumps({"table": "orders", "rows": 4000})
    finally:
        await ts.close()


async def test_every_call_is_audited_and_stored_with_the_result() -> None:
    seen: list[dict[str, Any]] = []
    ts = InDataToolSet(build_workspace("retail:0"), audit_sink=seen.append)
    try:
        ok = await call(ts, "filter", table="orders", where=[{"column": "status", "op": "eq", "value": "pending"}])
        bad = await call(ts, "head", table="customers", columns=["email"])
        assert [e["tool"] for e in ts.audit] == ["filter", "head"] and seen == ts.audit
        assert ok.data["audit"]["rows_in"] == 4000 and ok.data["audit"]["rows_out"] == json.loads(ok.content)["rows"]
        assert ok.data["result"] == json.loads(ok.content)
        assert bad.data["audit"]["ok"] is False and "sensitive" in bad.data["audit"]["error"]
        assert "audit" not in ok.content  # the model sees only the result
    finally:
        await ts.close()


def test_every_tool_argument_is_described_in_the_schema() -> None:
    schemas = {s["name"]: s for s in InDataToolSet.tool_schemas()}
    assert set(schemas) == {
        "list_tables",
        "describe",
        "filter",
        "aggregate",
        "sort",
        "join",
        "compute",
        "head",
        "distinct",
        "value",
        "count",
        "correlation",
        "answer",
    }
    for name, schema in schemas.items():
        assert schema["description"], name
        for arg, prop in schema["parameters"].get("properties", {}).items():
            assert prop.get("description"), (name, arg)
    ops = schemas["filter"]["parameters"]["$defs"]["Condition"]["properties"]["op"]["enum"]
    assert ops == [
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "in",
        "not_in",
        "between",
        "contains",
        "startswith",
        "is_null",
        "not_null",
    ]
