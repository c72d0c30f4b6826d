"""Database URLs accepted by ``open_store``, normalised to the async drivers tether uses."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from tether.errors import StoreError

Backend = Literal["memory", "sqlite", "postgresql"]

_HELP = "use memory://, sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
_SQLITE = {"sqlite", "sqlite+aiosqlite"}
_POSTGRES = {"postgresql", "postgres", "postgresql+asyncpg"}


def display_url(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def normalize_url(url: str) -> tuple[Backend, str]:
    """``(backend, url)`` with the driver made explicit; ``StoreError`` for anything else.

    ``sqlite:///x.db`` becomes ``sqlite+aiosqlite:///x.db``; ``postgres://`` and
    ``postgresql://`` become ``postgresql+asyncpg://``; ``memory://`` stays as is.
    """
    text = url.strip()
    if text in ("memory://", "memory:", "memory"):
        return "memory", "memory://"
    try:
        parsed: URL = make_url(text)
    except ArgumentError:
        raise StoreError(f"Unsupported database URL {text!r}: {_HELP}.") from None
    driver = parsed.drivername
    if driver in _SQLITE:
        db = parsed.database or ""
        if db in ("", ":memory:") or db.startswith("file:"):
            raise StoreError(
                f"The SQLite URL {text!r} names no file: use sqlite:///PATH (or memory:// for a throwaway store)."
            )
        parent = Path(db).expanduser().resolve().parent
        if not parent.is_dir():
            raise StoreError(f"Cannot open the database at {text}: the directory {parent} does not exist.")
        parsed = parsed.set(drivername="sqlite+aiosqlite", database=str(Path(db).expanduser()))
        return "sqlite", parsed.render_as_string(hide_password=False)
    if driver in _POSTGRES:
        if not parsed.database:
            raise StoreError(f"The PostgreSQL URL {display_url(text)!r} names no database: {_HELP}.")
        return "postgresql", parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise StoreError(f"Unsupported database URL {display_url(text)!r}: {_HELP}.")


def psycopg_url(url: str) -> str:
    """A libpq/psycopg connection string for a (normalised) PostgreSQL URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def sqlite_path(url: str) -> Path:
    """The file of a (normalised) SQLite URL."""
    return Path(make_url(url).database or "")
