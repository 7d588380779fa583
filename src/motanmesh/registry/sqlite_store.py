"""The SQLite side of the embedded registry: synchronous, used from one worker thread only.

Every method opens and closes its own short transaction; writes take the write lock up front
(``BEGIN IMMEDIATE``) so concurrent processes queue on the busy timeout instead of failing
half-way. Each ``sqlite3.Error`` becomes a ``RegistryError`` naming the file.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from motanmesh.registry.base import NODE_SERVER, RegistryError

__all__ = ["SCHEMA_VERSION", "Batch", "Row", "Snapshot", "SqliteStore"]

SCHEMA_VERSION = 1
TOMBSTONE_SECONDS = 600.0
"""How long an explicit unregister is remembered for the keep-last-known-good rule."""

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS nodes (path TEXT PRIMARY KEY, data TEXT NOT NULL,"
    " owner TEXT NOT NULL DEFAULT '', ephemeral INTEGER NOT NULL DEFAULT 0,"
    " expires REAL NOT NULL DEFAULT 0) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS nodes_owner ON nodes (owner)",
    "CREATE TABLE IF NOT EXISTS changes (id INTEGER PRIMARY KEY CHECK (id = 0),"
    " counter INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO changes (id, counter) VALUES (0, 0)",
    "CREATE TABLE IF NOT EXISTS tombstones (path TEXT PRIMARY KEY, at REAL NOT NULL) WITHOUT ROWID",
)
_LIVE = "(ephemeral = 0 OR expires > ?)"
_CHILDREN = f"SELECT path, data FROM nodes WHERE path >= ? AND path < ? AND {_LIVE} ORDER BY path"
_GET = f"SELECT data FROM nodes WHERE path = ? AND {_LIVE}"
_PUT = "INSERT OR REPLACE INTO nodes (path, data, owner, ephemeral, expires) VALUES (?,?,?,?,?)"
_BUMP = "UPDATE changes SET counter = counter + 1 WHERE id = 0"
_COUNTER = "SELECT counter FROM changes WHERE id = 0"

Row = tuple[str, str]
"""``(child name, data)`` of one node under a directory."""


@dataclass
class Batch:
    """Node changes written in one transaction."""

    ephemeral: dict[str, str] = field(default_factory=dict)
    persistent: dict[str, str] = field(default_factory=dict)
    delete: list[str] = field(default_factory=list)
    tombstone: list[str] = field(default_factory=list)
    untomb: list[str] = field(default_factory=list)


@dataclass
class Snapshot:
    """What a poll read: the change counter and the watched nodes at that moment.

    ``services`` maps a service directory to its live ``server`` children and, when there are
    none, to the subset of the previously notified server nodes that have a tombstone.
    ``commands`` maps a command path to its data (``None`` when absent).
    """

    counter: int
    services: dict[str, tuple[list[Row], frozenset[str]]]
    commands: dict[str, str | None]


class SqliteStore:
    """The node table of one registry file, seen by one owner (a registry instance)."""

    def __init__(
        self, file: str, owner: str, ttl: float, busy_timeout: float, clock: Callable[[], float]
    ) -> None:
        self.file = file
        self.clock = clock
        self.owner = owner
        self.ttl = ttl
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None

    def _error(self, what: str, err: BaseException) -> RegistryError:
        return RegistryError(f"embedded registry {self.file}: {what}: {err}")

    @contextmanager
    def _transaction(self, what: str, mode: str = "DEFERRED") -> Iterator[sqlite3.Connection]:
        conn = self._conn
        if conn is None:
            raise RegistryError(f"embedded registry {self.file} is closed")
        try:
            conn.execute(f"BEGIN {mode}")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as err:
            raise self._error(what, err) from err

    def open(self) -> None:
        """Open (or create, with its directory) the file and its tables; ``RegistryError``
        if it is unusable.

        Processes opening a new file together race to switch it to WAL mode and to create the
        tables; SQLite answers some of these steps "database is locked" at once, without
        waiting on the busy timeout, so a locked open is tried again until ``busy_timeout``
        has passed.
        """
        deadline = time.monotonic() + self.busy_timeout
        pause = 0.01
        while True:
            try:
                self._open()
                return
            except RegistryError as err:
                if not isinstance(err.__cause__, sqlite3.OperationalError):
                    raise
                if not _locked(err.__cause__) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.2)

    def _open(self) -> None:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.file)), exist_ok=True)
            conn = sqlite3.connect(self.file, timeout=self.busy_timeout, isolation_level=None)
        except OSError as err:
            raise RegistryError(
                f"embedded registry {self.file}: cannot create its directory: {err}"
            ) from err
        except sqlite3.Error as err:
            raise self._error("cannot open the database", err) from err
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._conn = conn
            with self._transaction("cannot create the tables", "IMMEDIATE"):
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise RegistryError(
                        f"embedded registry {self.file}: schema version {version} is newer "
                        f"than this motanmesh understands ({SCHEMA_VERSION})"
                    )
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute(_COUNTER).fetchone()
        except (sqlite3.Error, RegistryError) as err:
            self._conn = None
            conn.close()
            if isinstance(err, RegistryError):
                raise
            raise self._error("not a usable registry database", err) from err

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ------------------------------------------------------------------ writes

    def write(self, batch: Batch) -> None:
        """Apply a batch and bump the change counter."""
        with self._transaction("write", "IMMEDIATE") as conn:
            now = self.clock()  # after the lock wait, so leases start fresh
            owner, expires = self.owner, now + self.ttl
            conn.executemany("DELETE FROM nodes WHERE path = ?", [(p,) for p in batch.delete])
            conn.executemany(_PUT, [(p, d, owner, 1, expires) for p, d in batch.ephemeral.items()])
            conn.executemany(_PUT, [(p, d, "", 0, 0.0) for p, d in batch.persistent.items()])
            conn.executemany(
                "INSERT OR REPLACE INTO tombstones (path, at) VALUES (?, ?)",
                [(p, now) for p in batch.tombstone],
            )
            conn.executemany("DELETE FROM tombstones WHERE path = ?", [(p,) for p in batch.untomb])
            conn.execute(_BUMP)

    def renew(self, nodes: dict[str, str], resync: bool) -> bool:
        """Extend this owner's leases, delete expired nodes; True if anything visible changed.

        When the owner's live rows do not match ``nodes`` (they expired, were taken over, or a
        write failed) or ``resync`` is set, the owner's rows are rewritten from ``nodes``.
        """
        with self._transaction("lease renewal", "IMMEDIATE") as conn:
            now = self.clock()
            owner, expires = self.owner, now + self.ttl
            renewed = conn.execute(
                "UPDATE nodes SET expires = ? WHERE owner = ? AND ephemeral = 1 AND expires > ?",
                (expires, owner, now),
            ).rowcount
            changed = resync or renewed != len(nodes)
            if changed:
                conn.execute("DELETE FROM nodes WHERE owner = ? AND ephemeral = 1", (owner,))
                conn.executemany(_PUT, [(p, d, owner, 1, expires) for p, d in nodes.items()])
            expired = conn.execute(
                "DELETE FROM nodes WHERE ephemeral = 1 AND expires <= ?", (now,)
            ).rowcount
            conn.execute("DELETE FROM tombstones WHERE at < ?", (now - TOMBSTONE_SECONDS,))
            if changed or expired:
                conn.execute(_BUMP)
        return changed or expired > 0

    def drop_owned(self) -> None:
        """Delete every ephemeral node of this owner (a clean shutdown)."""
        with self._transaction("removing own nodes", "IMMEDIATE") as conn:
            gone = conn.execute(
                "DELETE FROM nodes WHERE owner = ? AND ephemeral = 1", (self.owner,)
            ).rowcount
            if gone:
                conn.execute(_BUMP)

    # ------------------------------------------------------------------ reads

    @staticmethod
    def _children(conn: sqlite3.Connection, directory: str, now: float) -> list[Row]:
        prefix = f"{directory}/{NODE_SERVER}/"
        upper = prefix[:-1] + "0"  # the first string after every "<prefix>..."
        rows = conn.execute(_CHILDREN, (prefix, upper, now)).fetchall()
        return [(path[len(prefix) :], data) for path, data in rows]

    def children(self, directory: str) -> list[Row]:
        """The live ``server`` children of a service directory."""
        with self._transaction("read") as conn:
            return self._children(conn, directory, self.clock())

    def descendants(self, prefix: str) -> list[Row]:
        """``(path, data)`` of every live node whose path starts with ``prefix``."""
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        with self._transaction("read") as conn:
            rows = conn.execute(_CHILDREN, (prefix, upper, self.clock())).fetchall()
        return [(str(path), str(data)) for path, data in rows]

    def get(self, path: str) -> str | None:
        """The data of a live node, or ``None``."""
        with self._transaction("read") as conn:
            row = conn.execute(_GET, (path, self.clock())).fetchone()
        return None if row is None else str(row[0])

    def counter(self) -> int:
        with self._transaction("read") as conn:
            return int(conn.execute(_COUNTER).fetchone()[0])

    def read(
        self,
        since: int | None,
        services: dict[str, tuple[str, ...]],
        commands: list[str],
    ) -> Snapshot | None:
        """Everything watched, read in one snapshot; ``None`` if the counter is still ``since``.

        ``services`` maps each watched service directory to its last notified server nodes.
        """
        now = self.clock()
        with self._transaction("watch") as conn:
            counter = int(conn.execute(_COUNTER).fetchone()[0])
            if counter == since:
                return None
            found: dict[str, tuple[list[Row], frozenset[str]]] = {}
            for directory, notified in services.items():
                rows = self._children(conn, directory, now)
                withdrawn: frozenset[str] = frozenset()
                if not rows and notified:
                    marks = ",".join("?" * len(notified))
                    withdrawn = frozenset(
                        path
                        for (path,) in conn.execute(
                            f"SELECT path FROM tombstones WHERE path IN ({marks})", notified
                        )
                    )
                found[directory] = (rows, withdrawn)
            values: dict[str, str | None] = {}
            for path in commands:
                row = conn.execute(_GET, (path, now)).fetchone()
                values[path] = None if row is None else str(row[0])
        return Snapshot(counter, found, values)


def _locked(err: sqlite3.OperationalError) -> bool:
    """True for SQLITE_BUSY / SQLITE_LOCKED: another process holds the file for a moment."""
    code = getattr(err, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    text = str(err)
    return "locked" in text or "busy" in text
