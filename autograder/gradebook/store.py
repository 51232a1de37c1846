"""Opening a gradebook: its URL, its engine, its schema brought up to date, and write transactions.

SQLite (a file path) is the embedded default; ``postgresql://`` URLs run on
psycopg 3. Either way the schema is the alembic migrations' head: opening a
gradebook migrates it first, whoever made it.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, create_engine, event, inspect, make_url
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).parent / "migrations"
FIRST_REVISION = "0001"  # the schema gradebooks had before migrations: recognised and stamped
_MIGRATION_LOCK = 0x6772616465  # a PostgreSQL advisory lock key of our own ("grade")


class GradebookError(Exception):
    """A gradebook request that cannot be honoured; the message says what to change."""


def database_url(path_or_url: str | Path) -> str:
    """A SQLAlchemy URL: a path becomes a SQLite file; ``postgresql://`` gets the psycopg 3 driver."""
    text = str(path_or_url)
    if "://" not in text:
        return f"sqlite:///{Path(text).resolve()}"
    for scheme in ("postgresql://", "postgres://"):
        if text.startswith(scheme):  # SQLAlchemy would pick psycopg2, which we do not install
            return "postgresql+psycopg://" + text[len(scheme):]
    return text


def open_gradebook(path_or_url: str | Path) -> Engine:
    """An engine on the gradebook at ``path_or_url``, created or migrated to the current schema."""
    url = database_url(path_or_url)
    backend = make_url(url).get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise GradebookError(
            f"the gradebook runs on SQLite (a file path) or PostgreSQL (postgresql://...), not {backend}: "
            f"--db {make_url(url).render_as_string(hide_password=True)}"
        )
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        if engine.url.database and engine.url.database != ":memory:":  # a new gradebook's folder may not exist yet
            Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)
        event.listen(engine, "connect", _sqlite_pragmas)
    migrate(engine)
    return engine


_BUSY_TIMEOUT_S = 30


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_S * 1000}")  # first: writers queue instead of failing
    cur.execute("PRAGMA foreign_keys=ON")
    _switch_to_wal(cur)
    cur.close()


def _switch_to_wal(cur) -> None:
    """WAL mode, so that readers never wait for the writer. It is a property of the file, set once by
    whichever connection comes first. The switch needs the file to itself, and SQLite reports a busy file
    at once here rather than through the busy timeout, so processes that open a new gradebook together
    retry for as long as a write would have waited."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    while True:
        try:
            if cur.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            busy = "locked" in str(error) or "busy" in str(error)
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.01 + random.random() * 0.04)  # jittered, so racing openers do not collide again


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, in code: no alembic.ini to ship or find."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision, once, even when several processes open a new gradebook at once."""
    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        if current == head:
            return
        if current is not None and current not in {s.revision for s in scripts.walk_revisions()}:
            raise GradebookError(
                f"{engine.url.render_as_string(hide_password=True)} is at schema revision {current!r}, "
                f"which this autograder does not know (its newest is {head!r}): upgrade autograder"
            )
        conn.rollback()
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # SQLite changes a constraint by copying the table and dropping the old one; with foreign keys
            # on, that drop would cascade to every exercise and test row. The pragma only acts outside a
            # transaction, so it is set here, before the migration's transaction begins.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                _lock_for_migration(conn)
                # Re-read under the lock: another process may have migrated while we waited.
                current = MigrationContext.configure(conn).get_current_revision()
                cfg = alembic_config(conn)
                if current is None and inspect(conn).has_table("submissions"):
                    command.stamp(cfg, FIRST_REVISION)  # made before migrations: its tables are revision 0001
                command.upgrade(cfg, "head")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def _lock_for_migration(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # the database's write lock, held to the end of the migration
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that writes, committed at the end or rolled back on error.

    On SQLite it takes the write lock up front (``BEGIN IMMEDIATE``): a
    transaction that read first and wrote later could otherwise fail at once
    with "database is locked" when another process wrote in between, instead
    of waiting its turn.
    """
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield conn


def require_aware(value: datetime | None, what: str) -> None:
    if value is not None and value.tzinfo is None:
        raise GradebookError(
            f"{what} must be timezone-aware, got {value.isoformat()} with no offset: "
            "attach its zone, e.g. value.replace(tzinfo=zoneinfo.ZoneInfo('Europe/London'))"
        )
