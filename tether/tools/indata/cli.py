"""Calling InData tools directly, for scripting and debugging (``tether tools call indata ...``).

``await call_tool(tool, args, dataset=..., session=...)`` runs one tool call and returns
``{"tool", "content", "is_error", "data"}``: ``content`` is the text the model would see,
``data`` is ``{"result": ..., "audit": ...}``. Without a session every call starts
from the bare dataset. With ``session=NAME`` the session's DuckDB file, handle map and
audit log live in ``cache_dir()/indata/sessions/NAME/`` (``db.duckdb``, ``state.json``,
``audit.jsonl``), so handles made by one process can be used by the next.

A person's mistakes (unknown tool, bad session name, unknown dataset, a session bound to
another dataset) raise ``UserError``; a bad tool call is an ``is_error`` result whose
``content`` is the message the model would see.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import duckdb

from tether.config import cache_dir
from tether.errors import UserError
from tether.tools.indata.datasets import DOMAINS, resolve
from tether.tools.indata.engine import Workspace
from tether.tools.indata.policy import PrivacyPolicy
from tether.tools.indata.schema import TableInfo
from tether.tools.indata.suite import build_workspace
from tether.tools.indata.tools import InDataToolSet
from tether.types import ToolCall

DEFAULT_DATASET = "retail:0"
_SESSION = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def sessions_dir() -> Path:
    """Where CLI sessions live."""
    return cache_dir() / "indata" / "sessions"


def _dataset_key(dataset: str) -> str:
    name = dataset.split(":")[0]
    if name in DOMAINS:
        return dataset if ":" in dataset else f"{dataset}:0"
    path = Path(dataset).expanduser()
    if not path.exists():
        raise UserError(
            f"Unknown InData dataset {dataset!r}: use one of {', '.join(DOMAINS)} (optionally :SEED) or a folder."
        )
    return str(path.resolve())


def _session_folder(session: str) -> Path:
    if not _SESSION.match(session) or session in (".", ".."):
        raise UserError(f"Bad session name {session!r}: use 1-64 letters, digits, '.', '_' or '-'.")
    return sessions_dir() / session


def _open_session(folder: Path, dataset: str | None, policy: PrivacyPolicy) -> tuple[Workspace, dict[str, Any]]:
    state_path = folder / "state.json"
    if state_path.is_file():
        state = json.loads(state_path.read_text(encoding="utf-8"))
        if dataset is not None and _dataset_key(dataset) != state["dataset"]:
            raise UserError(
                f"Session {folder.name!r} uses dataset {state['dataset']!r}, not {dataset!r}; "
                "start a new session or reset this one."
            )
    else:
        key = _dataset_key(dataset or DEFAULT_DATASET)
        ds = resolve(key)
        folder.mkdir(parents=True, exist_ok=True)
        db = folder / "db.duckdb"
        if db.exists():
            db.unlink()
        loader = Workspace(_connect(db), policy=policy)
        try:
            from tether.tools.indata.datasets import arrow_tables

            for name, table in arrow_tables(key).items():
                loader.add_base_table(name, table, ds.sensitive.get(name, set()), ds.descriptions.get(name, ""))
        finally:
            loader.conn.close()
        state = {"dataset": key, "counter": 0, "tables": {n: t.to_dict() for n, t in loader.tables.items()}}
        _write_state(folder, state)
    tables = {n: TableInfo.from_dict(t) for n, t in state["tables"].items()}
    ws = Workspace(_connect(folder / "db.duckdb"), tables, policy=policy, counter=int(state["counter"]))
    return ws, state


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), config={"enable_external_access": False})
    except duckdb.IOException:
        raise UserError(f"Session folder {path.parent} is busy (another tether process is using it).") from None


def _write_state(folder: Path, state: dict[str, Any]) -> None:
    tmp = folder / f"state.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
    tmp.replace(folder / "state.json")


def reset_session(session: str) -> bool:
    """Delete a session's folder; returns whether it existed."""
    folder = _session_folder(session)
    existed = folder.exists()
    shutil.rmtree(folder, ignore_errors=True)
    return existed


async def call_tool(
    tool: str, args: dict[str, Any], dataset: str | None = None, session: str | None = None, k: int = 5
) -> dict[str, Any]:
    """Run one InData tool call (see module docs) and return its result record."""
    if not isinstance(args, dict):
        raise UserError('--args must be a JSON object, e.g. \'{"table": "orders"}\'.')
    policy = PrivacyPolicy(k=k)
    state: dict[str, Any] | None = None
    folder: Path | None = None
    if session is None:
        ws = build_workspace(_dataset_key(dataset or DEFAULT_DATASET), policy)
        sink = None
    else:
        folder = _session_folder(session)
        ws, state = _open_session(folder, dataset, policy)
        audit_path = folder / "audit.jsonl"

        def sink(entry: dict[str, Any]) -> None:
            with audit_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")

    tools = InDataToolSet(ws, audit_sink=sink, first_seq=int(state.get("audit_seq", 1)) if state else 1)
    try:
        if tool not in {t.name for t in tools.tools()}:
            names = ", ".join(t.name for t in tools.tools())
            raise UserError(f"Unknown InData tool {tool!r}; the tools are: {names}.")
        result = await tools.call(ToolCall(name=tool, arguments=args))
        if folder is not None and state is not None:
            state["counter"] = ws.counter
            state["audit_seq"] = tools.first_seq + len(tools.audit)
            state["tables"] = {n: t.to_dict() for n, t in ws.tables.items()}
            _write_state(folder, state)
    finally:
        await tools.close()
    return {"tool": tool, "content": result.content, "is_error": result.is_error, "data": result.data}
