"""Argument shapes of the InData tools (pydantic, so the JSON schema the model sees is exact)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

FilterOp = Literal[
    "eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "between", "contains", "startswith", "is_null", "not_null"
]
AggFn = Literal["count", "count_distinct", "sum", "mean", "median", "min", "max", "std"]
ExprOp = Literal["add", "sub", "mul", "div", "abs", "round", "year", "month", "day"]


def _drop_titles(schema: dict[str, Any]) -> None:
    """Keep the schemas the model reads short: no generated titles."""
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, json_schema_extra=_drop_titles)


class Condition(_Strict):
    """One filter condition: column op value (no value for is_null/not_null; [low, high] for between)."""

    column: str = Field(description="column name")
    op: FilterOp = Field(description="comparison operator")
    value: Any = Field(default=None, description="value (list for in/not_in, [low, high] for between)")


class Metric(_Strict):
    """One aggregate: fn over column (count without a column counts rows), named as."""

    fn: AggFn = Field(description="aggregate function")
    column: str | None = Field(default=None, description="column to aggregate (omit for count of rows)")
    as_: str | None = Field(default=None, alias="as", description="name of the result column")


class SortKey(_Strict):
    """One sort key."""

    column: str = Field(description="column name")
    desc: bool = Field(default=False, description="sort descending")


class Col(_Strict):
    """A column reference in an expression."""

    col: str


class Lit(_Strict):
    """A numeric literal in an expression."""

    lit: StrictInt | StrictFloat


class Expr(_Strict):
    """An expression node: op applied to args (columns, literals or expressions)."""

    op: ExprOp
    args: list[Col | Lit | Expr]


Expr.model_rebuild()
