"""Durable scheduler state: a SQLite (WAL) journal of task records, settings and history.

The service commits each RPC's changes here before it replies, so a kill -9 loses nothing
that was acknowledged. On start, load() gives back the records for Scheduler.restore().
"""

from __future__ import annotations

import fcntl
import json
import operator
import os
import sqlite3
from typing import Any

from pipes.exceptions import StoreError
from pipes.scheduler.model import Changes, Status, TaskRecord

FORMAT_VERSION = 1
_WAY_OUT = "; refusing to start (move it away, or pass --reset-state to discard it)"
_FIELDS = (
    "family",
    "module",
    "params",
    "status",
    "priority",
    "resources",
    "retry_count",
    "retry_delay",
    "disable_window",
    "failures",
    "retry_at",
    "worker_running",
    "time_running",
    "updated",
    "error",
    "status_message",
    "progress_percentage",
    "tracking_url",
    "max_batch_size",
    "batch_lead",
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (task_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    task_id TEXT NOT NULL, status TEXT NOT NULL, worker TEXT, host TEXT, time REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS history_task ON history (task_id, time);
CREATE INDEX IF NOT EXISTS history_time ON history (time);
CREATE TABLE IF NOT EXISTS logs (task_id TEXT PRIMARY KEY, tail TEXT NOT NULL);
"""


_RECORD_DECODER = json.JSONDecoder(parse_constant=lambda _: None)  # one, not one per record
# One encoder and one getter for every record: a commit writes each task it touched, so at
# hundreds of records per get_work, json.dumps' new encoder per call shows in the profile.
_RECORD_ENCODER = json.JSONEncoder(separators=(",", ":"))
_get_fields = operator.attrgetter(*_FIELDS)


def record_to_json(task: TaskRecord) -> str:
    """The persistent fields of a record (derived ones are rebuilt by restore)."""
    data: dict[str, Any] = dict(zip(_FIELDS, _get_fields(task), strict=True))
    data["deps"] = task.deps
    data["batch_params"] = task.batch_params
    data["workers"] = sorted(task.workers)
    data["stakeholders"] = sorted(task.stakeholders)
    if task.owners:  # most tasks have none: older state files have no key either
        data["owners"] = task.owners
    return _RECORD_ENCODER.encode(data)


def record_from_json(task_id: str, text: str) -> TaskRecord:
    """The inverse of record_to_json; an infinite number an older pipesd let in loads as None."""
    data = _RECORD_DECODER.decode(text)
    task = TaskRecord(task_id, known=True)
    for name in _FIELDS:
        setattr(task, name, data[name])
    task.status = Status(data["status"])
    task.deps = tuple(data["deps"])
    task.batch_params = tuple(data["batch_params"])
    task.workers = frozenset(data["workers"])
    task.stakeholders = frozenset(data["stakeholders"])
    task.failures = tuple(task.failures)
    task.owners = tuple(data.get("owners", ()))
    return task


class SqliteStore:
    """The daemon's journal. open() creates or checks the file; refuses unknown formats."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock: int | None = None

    def open(self, reset: bool = False) -> None:
        """Open (creating if needed) the state file; reset=True discards what it held.

        Only one pipesd may use a state file: a second one gets a StoreError.
        """
        self._take_lock()
        if reset:
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.path + suffix):
                    os.remove(self.path + suffix)
            self._release_lock()
            self._take_lock()  # on the new, empty file
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._check_format()  # before any write, so a refused file is left as it was
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes
            # Checkpoints (an fsync of several ms) run from housekeeping, not inside a reply.
            self._db.execute("PRAGMA wal_autocheckpoint=0")
        except sqlite3.DatabaseError as err:
            self.close()
            raise StoreError(f"state file {self.path} is unreadable ({err}){_WAY_OUT}") from err
        except StoreError:
            self.close()
            raise

    def _take_lock(self) -> None:
        try:  # flock on the file itself: independent of SQLite's own fcntl locks
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise StoreError(f"cannot open state file {self.path}: {err.strerror}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise StoreError(
                f"state file {self.path} is in use by another pipesd; refusing to start"
            ) from None
        self._lock = fd

    def _check_format(self) -> None:
        db = self._conn
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        if "meta" not in tables:
            if tables:
                raise StoreError(f"state file {self.path} is not a pipesd state file{_WAY_OUT}")
            db.executescript(_SCHEMA)
            db.execute("INSERT INTO meta VALUES ('format', ?)", (str(FORMAT_VERSION),))
            return
        row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        version = int(row[0]) if row else -1
        if version != FORMAT_VERSION:
            raise StoreError(
                f"state file {self.path} has format {version}, this pipesd reads format "
                f"{FORMAT_VERSION}{_WAY_OUT}"
            )

    @property
    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    def load(self) -> tuple[list[TaskRecord], dict[str, Any]]:
        """Every stored task record and the settings (resources, paused)."""
        try:
            rows = self._conn.execute("SELECT task_id, data FROM tasks").fetchall()
            records = [record_from_json(task_id, data) for task_id, data in rows]
            settings = {
                key[len("setting:") :]: json.loads(value)
                for key, value in self._conn.execute("SELECT key, value FROM meta")
                if key.startswith("setting:")
            }
        except (sqlite3.DatabaseError, ValueError, KeyError, TypeError) as err:
            raise StoreError(f"state file {self.path} is corrupt ({err}){_WAY_OUT}") from err
        return records, settings

    def commit(self, changes: Changes) -> None:
        """Write one batch of changes in a single transaction."""
        if not changes:
            return
        db = self._conn
        try:
            db.execute("BEGIN")
            db.executemany(
                "INSERT OR REPLACE INTO tasks VALUES (?, ?)",
                [(t.task_id, record_to_json(t)) for t in changes.tasks],
            )
            removed = [(t,) for t in changes.removed]
            db.executemany("DELETE FROM tasks WHERE task_id = ?", removed)
            db.executemany("DELETE FROM logs WHERE task_id = ?", removed)
            db.executemany("INSERT OR REPLACE INTO logs VALUES (?, ?)", changes.logs.items())
            db.executemany(
                "INSERT INTO history VALUES (?, ?, ?, ?, ?)",
                [(e.task_id, str(e.status), e.worker, e.host, e.time) for e in changes.events],
            )
            settings = changes.settings.items()
            db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [(f"setting:{k}", json.dumps(v)) for k, v in settings if v is not None],
            )
            db.executemany(
                "DELETE FROM meta WHERE key = ?",
                [(f"setting:{k}",) for k, v in settings if v is None],
            )
            db.execute("COMMIT")
        except Exception as err:  # any failure, sqlite3's or an unstorable value's
            self._roll_back()
            raise StoreError(f"cannot write state file {self.path}: {err}") from err

    def _roll_back(self) -> None:
        """End a failed transaction, so the next commit starts clean."""
        db = self._conn
        if db.in_transaction:
            try:
                db.execute("ROLLBACK")
            except sqlite3.Error as err:  # the connection is unusable: reopen it
                raise StoreError(f"cannot roll back state file {self.path}: {err}") from err

    def probe(self) -> None:
        """Raise StoreError unless the journal takes a write now (a page-sized one)."""
        db = self._conn
        try:
            db.execute("BEGIN")
            db.execute("INSERT OR REPLACE INTO meta VALUES ('probe', ?)", ("x" * 4096,))
            db.execute("DELETE FROM meta WHERE key = 'probe'")
            db.execute("COMMIT")
        except sqlite3.Error as err:
            self._roll_back()
            raise StoreError(f"cannot write state file {self.path}: {err}") from err

    def history(self, task_id: str) -> list[dict[str, Any]]:
        """Status changes of one task, oldest first."""
        rows = self._conn.execute(
            "SELECT status, worker, host, time FROM history WHERE task_id = ? ORDER BY time",
            (task_id,),
        )
        return [{"status": s, "worker": w, "host": h, "time": t} for s, w, h, t in rows]

    def log(self, task_id: str) -> str | None:
        """The tail of the task's latest log, if a worker sent one."""
        row = self._conn.execute("SELECT tail FROM logs WHERE task_id = ?", (task_id,)).fetchone()
        return row[0] if row else None

    def prune_history(self, before: float) -> None:
        """Forget history entries older than `before`, then fold the WAL into the file."""
        try:
            self._conn.execute("DELETE FROM history WHERE time < ?", (before,))
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as err:
            raise StoreError(f"cannot prune history in state file {self.path}: {err}") from err

    def close(self) -> None:
        """Close the database (a checkpoint folds the WAL back into the file)."""
        if self._db is not None:
            self._db.close()
            self._db = None
        self._release_lock()

    def _release_lock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # releases the flock
            self._lock = None
