"""Table metadata for InData: column types as the model sees them, sensitivity, handles."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

ColumnType = Literal["integer", "number", "string", "date", "timestamp", "boolean", "other"]

#: identifiers the tools accept for new columns and aliases
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
#: derived-table handles
HANDLE = re.compile(r"^t[0-9]+$")

NUMERIC: frozenset[str] = frozenset({"integer", "number"})
ORDERED: frozenset[str] = frozenset({"integer", "number", "string", "date", "timestamp", "boolean"})


def column_type(duckdb_type: str) -> ColumnType:
    """Map a DuckDB type name to the small set of types the model sees."""
    t = duckdb_type.upper()
    if t in {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT"}:
        return "integer"
    if t in {"FLOAT", "DOUBLE", "REAL"} or t.startswith("DECIMAL"):
        return "number"
    if t == "VARCHAR":
        return "string"
    if t == "DATE":
        return "date"
    if t.startswith("TIMESTAMP"):
        return "timestamp"
    if t == "BOOLEAN":
        return "boolean"
    return "other"


def quote(name: str) -> str:
    """Quote a (schema-checked) identifier for DuckDB."""
    return '"' + name.replace('"', '""') + '"'


@dataclass
class ColumnInfo:
    """One column: name, model-facing type and whether it is sensitive."""

    name: str
    type: ColumnType
    sensitive: bool = False


@dataclass
class TableInfo:
    """A table the model can name: a base table of the dataset or a derived handle (``t1``...).

    ``aggregated`` tables come out of ``aggregate``: every row already summarises at
    least k records, so aggregating them again is not suppressed.
    """

    name: str
    columns: list[ColumnInfo]
    rows: int
    kind: Literal["base", "derived"] = "base"
    aggregated: bool = False
    origin: str = ""
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def column(self, name: str) -> ColumnInfo | None:
        """The column called ``name`` (exact match) or None."""
        for c in self.columns:
            if c.name == name:
                return c
        return None

    @property
    def visible(self) -> list[ColumnInfo]:
        """The non-sensitive columns."""
        return [c for c in self.columns if not c.sensitive]

    def to_dict(self) -> dict[str, Any]:
        """JSON form (for session files)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableInfo:
        """Inverse of ``to_dict``."""
        cols = [ColumnInfo(**c) for c in data["columns"]]
        return cls(**{**data, "columns": cols})
