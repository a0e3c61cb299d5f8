"""Opening the store: engine set-up per dialect, migrations, and the schema check."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, inspect, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from tighten.config import Settings
from tighten.errors import StoreError

__all__ = ["Store", "open_store"]

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK_KEY = 0x7167_6874  # any fixed number; "tght"


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS).decode()


def _one_line(error: object) -> str:
    return " ".join(str(error).split()).rstrip(".")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA cache_size=-65536")  # 64 MiB
    cursor.execute("PRAGMA wal_autocheckpoint=16384")  # pages: fewer, larger checkpoints
    cursor.close()


def _make_engine(url: str) -> Engine:
    kwargs: dict[str, Any] = {"json_serializer": _dumps, "json_deserializer": orjson.loads}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs["poolclass"] = NullPool
    elif url.startswith("postgresql"):
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        hint = (
            " Install it with `pip install 'tighten[postgres]'`." if "psycopg" in str(exc) else ""
        )
        raise StoreError(f"Cannot use database URL {url!r}: {exc}.{hint}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Store:
    """A handle on the database. Cheap to pass around; open one per process."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction: committed when the block ends, rolled back on any error."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreError(
                f"Database error: {_one_line(exc.orig)}. Check the database URL."
            ) from None

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for reading."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise StoreError(
                f"Database error: {_one_line(exc.orig)}. Check the database URL."
            ) from None

    def close(self) -> None:
        self.engine.dispose()

    # -- migrations -------------------------------------------------------------------

    def _alembic_config(self, conn: Connection) -> Any:
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        return cfg

    def head_revision(self) -> str:
        from alembic.script import ScriptDirectory

        cfg = self._alembic_config(None)  # type: ignore[arg-type]
        head = ScriptDirectory.from_config(cfg).get_current_head()
        assert head is not None
        return head

    def current_revision(self) -> str | None:
        from alembic.runtime.migration import MigrationContext

        with self.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def upgrade(self, revision: str = "head") -> tuple[str | None, str]:
        """Run migrations up to ``revision``. Returns (before, after) revisions."""
        from alembic import command

        before = self.current_revision()
        with self.begin() as conn:
            command.upgrade(self._alembic_config(conn), revision)
        return before, self.current_revision() or ""

    def ensure_schema(self) -> None:
        """Create the schema in an empty database; refuse an out-of-date one. Processes
        that start together on a new database take turns (a migration lock), so one
        creates the schema and the others find it done."""
        if self.current_revision() == self.head_revision():
            return
        with self._migration_lock():
            current = self.current_revision()
            if current == self.head_revision():
                return
            if current is not None:
                raise StoreError(
                    f"The database schema is at revision {current}, this tighten needs "
                    f"{self.head_revision()}. Run `tighten db upgrade`."
                )
            with self.connect() as conn:
                tables = set(inspect(conn).get_table_names())
            if tables - {"alembic_version"}:
                raise StoreError(
                    "The database has tables but no tighten schema version; "
                    "point TIGHTEN_DATABASE_URL at an empty or tighten database."
                )
            self.upgrade()

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        """An exclusive lock across processes: a lock file beside a SQLite database, an
        advisory lock on PostgreSQL."""
        if self.dialect == "postgresql":
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                try:
                    yield
                finally:
                    conn.execute(
                        text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                    conn.commit()
            return
        path = self.engine.url.database
        if self.dialect != "sqlite" or not path or path == ":memory:":
            yield
            return
        import fcntl

        with open(f"{path}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def open_store(settings: Settings | None = None, *, migrate: bool = True) -> Store:
    """Open the store named by ``settings`` (default: ``Settings.load()``).

    With ``migrate`` (the default) an empty database gets the schema; an older one is
    refused with a message that says to run ``tighten db upgrade``.
    """
    settings = settings or Settings.load()
    store = Store(_make_engine(settings.resolved_database_url()))
    if migrate:
        try:
            store.ensure_schema()
        except OperationalError as exc:
            raise StoreError(f"Cannot open the database: {_one_line(exc.orig)}.") from None
    return store
