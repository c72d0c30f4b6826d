"""Run the packaged Alembic migrations (``tether/store/migrations``) programmatically.

``upgrade_sync(conn)`` brings a database to ``head`` inside the caller's transaction.
Concurrent opens are serialised: PostgreSQL takes a transaction-level advisory lock, and
the SQLite executor opens the transaction with ``BEGIN IMMEDIATE`` (the write lock).
Running it on an up-to-date database is a no-op.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
HEAD = "0002"
_PG_LOCK_KEY = 0x7E7E_0001  # arbitrary, constant for tether's schema


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations (no ini file needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def upgrade_sync(connection: Connection) -> None:
    """Upgrade the database of ``connection`` to head, inside its open transaction."""
    from alembic import command

    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")
