"""The InData privacy policy, enforced by the tools (not by the model's good will).

Guarantee: **no tool output is a function of a sensitive value.** Sensitive columns may
be carried along in derived tables (filter, sort, join, compute keep them, hidden) but
they cannot be shown, filtered on, grouped by, sorted by, joined on, aggregated,
correlated or used in a computed column, and ``describe`` withholds their null counts.
So direct reads, joins, small groups and differences of aggregates all reveal nothing
about them. On top of that, every aggregate (``aggregate``, ``correlation``) over fewer
than ``k`` raw records is suppressed and says so, and every output is capped at a few
rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.errors import ToolError
from tether.tools.indata.schema import ColumnInfo, TableInfo


@dataclass(frozen=True)
class PrivacyPolicy:
    """Limits of the InData tools.

    Attributes:
        k: minimum number of raw records behind any aggregate value
        max_rows: most rows ``head`` (and an aggregate preview) may show
        max_distinct: most values ``distinct`` may list
        max_handles: most derived tables one episode may create
    """

    k: int = 5
    max_rows: int = 10
    max_distinct: int = 50
    max_handles: int = 200

    def usable(self, table: TableInfo, name: str, purpose: str) -> ColumnInfo:
        """The column ``name`` of ``table`` if it exists and is not sensitive; else a teaching ``ToolError``."""
        col = table.column(name)
        if col is None:
            names = ", ".join(c.name for c in table.columns) or "(none)"
            raise ToolError(f"unknown column {name!r} in table {table.name!r}. Its columns are: {names}.")
        if col.sensitive:
            allowed = ", ".join(c.name for c in table.visible) or "(none)"
            raise ToolError(
                f"column {name!r} of {table.name!r} is sensitive: it cannot be {purpose}. "
                f"Sensitive columns never appear in results and cannot be filtered, grouped, sorted, joined, "
                f"aggregated or computed on. Usable columns: {allowed}."
            )
        return col

    def suppress(self, table: TableInfo, records: int) -> bool:
        """Whether an aggregate over ``records`` rows of ``table`` must be suppressed."""
        return not table.aggregated and records < self.k
