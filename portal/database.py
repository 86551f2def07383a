"""Database engine settings that SQLAlchemy cannot take from the URL alone.

SQLite (the laptop default) gets a busy timeout, so a writer waits for another instead of failing at
once, and WAL, so readers are not blocked by a writer. (A blanket ``BEGIN IMMEDIATE`` would also stop
two transactions both upgrading to a write lock, but it would hold the write lock for every request,
streamed downloads included; the rare loser of such a race gets a 503 and retries.) PostgreSQL, the
production database, needs none of this.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

SQLITE_BUSY_TIMEOUT_MS = 15_000


def install() -> None:
    """Register the SQLite hook for every engine (idempotent)."""
    if not event.contains(Engine, "connect", _on_connect):
        event.listen(Engine, "connect", _on_connect)


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    if not type(dbapi_connection).__module__.startswith("sqlite3"):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()
