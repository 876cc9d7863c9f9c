"""The run lock: at most `size` runs of the same tasks at once on this host.

Each of the `size` slots is a pid file `<pid_dir>/<Family>-<key>.<slot>.pid` held with a
POSIX record lock (fcntl). The kernel drops the lock when its process ends, however it ends,
so a file left by a dead process, or one naming a pid now reused by something else, never
blocks. The pid and start time written in the file are only shown and used by --take-lock.
Differs from luigi: pid files are removed when the run ends, are 0644 (luigi: 0777) and live
in a per-user 0700 directory; two runs started together can never both win.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from pipes.exceptions import AlreadyRunning, UsageError

if TYPE_CHECKING:
    from pipes.task import Task

logger = logging.getLogger("pipes.lock")

POLL_SECONDS = 0.1  # how often --take-lock looks whether the old run has ended
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.]+")


@dataclass(frozen=True)
class LockOptions:
    """How a run locks: where pid files live, how many runs may share the lock, take it over."""

    pid_dir: str
    size: int = 1
    take: bool = False


@dataclass(frozen=True)
class Holder:
    """What a pid file says about the run holding it."""

    pid: int
    since: float  # wall-clock time the run took the lock
    start_ticks: str  # field 22 of /proc/<pid>/stat: tells a reused pid from the holder
    command: str

    def describe(self) -> str:
        """'pid 1234 since 2026-11-30 05:31:02'."""
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.since))
        return f"pid {self.pid} since {when}"


def default_pid_dir() -> str:
    """/tmp/pipes-<uid>: per user, and the same for a run from cron and one from a shell.

    Not $XDG_RUNTIME_DIR or $TMPDIR: cron sets neither, so a login shell would lock elsewhere.
    """
    return f"/tmp/pipes-{os.geteuid()}"


def lock_name(roots: list[Task]) -> str:
    """The file name stem for these tasks: the first family and a hash of module files and ids.

    Same module file, same tasks, same significant parameters: same name, however the
    command line spelled them.
    """
    parts = sorted(f"{_module_file(type(task))}\0{task.task_id}" for task in roots)
    digest = hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()
    family = _NAME_UNSAFE.sub("_", roots[0].get_task_family())[:60] if roots else "run"
    return f"{family}-{digest[:16]}"


def _module_file(cls: type) -> str:
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    return os.path.realpath(path) if path else cls.__module__


def process_start(pid: int) -> str | None:
    """The start time (clock ticks since boot) of a live process, or None if there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else None


class RunLock:
    """Hold one slot of the run lock while in the `with` block; AlreadyRunning when none is free."""

    def __init__(self, name: str, options: LockOptions, what: str) -> None:
        self.name = name
        self.options = options
        self.what = what  # how messages name the run, e.g. 'Ingest(date=2024-01-01)'
        self.path: Path | None = None
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def slot_paths(self) -> list[Path]:
        """The pid file of each slot."""
        directory = Path(self.options.pid_dir)
        return [directory / f"{self.name}.{slot}.pid" for slot in range(self.options.size)]

    def acquire(self) -> None:
        """Take a free slot, with --take-lock after asking the running holders to finish."""
        if self.options.size < 1:
            raise UsageError(f"--lock-size must be at least 1, got {self.options.size}")
        private_dir(Path(self.options.pid_dir))
        if self._take_free_slot():
            return
        holders = self.holders()
        if not self.options.take:
            raise AlreadyRunning(self._busy_message(holders))
        self._hand_over(holders)

    def _take_free_slot(self) -> bool:
        for path in self.slot_paths():
            fd = _lock_file(path)
            if fd is not None:
                self._fd, self.path = fd, path
                _write_holder(fd)
                sweep_stale(path.parent, keep=path)
                return True
        return False

    def holders(self) -> list[Holder]:
        """What each held slot's pid file says (a file being written may be skipped)."""
        found = []
        for path in self.slot_paths():
            holder = read_holder(path)
            if holder is not None:
                found.append(holder)
        return found

    def _busy_message(self, holders: list[Holder]) -> str:
        running = ", ".join(h.describe() for h in holders) or "another process"
        times = f" {self.options.size} times" if self.options.size > 1 else ""
        return (
            f"{self.what} is already running{times} ({running});"
            " --take-lock takes over when its running tasks finish, --no-lock runs anyway"
        )

    def _hand_over(self, holders: list[Holder]) -> None:
        """SIGUSR1 each verified holder (it finishes its running tasks, then exits), then wait."""
        asked = []
        for holder in holders:
            if process_start(holder.pid) != holder.start_ticks:
                continue  # it ended meanwhile, or the file is being rewritten: nothing to ask
            os.kill(holder.pid, signal.SIGUSR1)
            asked.append(holder)
            logger.warning(
                "--take-lock: asked %s to finish its running tasks and exit; waiting for it",
                holder.describe(),
            )
        while any(process_start(h.pid) == h.start_ticks for h in asked):
            time.sleep(POLL_SECONDS)
        if not self._take_free_slot():  # another run took it first
            raise AlreadyRunning(self._busy_message(self.holders()))

    def release(self) -> None:
        """Remove the pid file, then drop the lock (in that order: see _lock_file)."""
        if self._fd is None or self.path is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            logger.warning("run lock file %s was removed by someone else", self.path)
        os.close(self._fd)
        self._fd = None


def private_dir(path: Path) -> None:
    """Create the pid directory 0700; refuse one that another user owns or anyone may write."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
    except OSError as err:
        raise UsageError(f"cannot create lock directory {path}: {err.strerror or err}") from err
    if not path.is_dir() or path.is_symlink():
        raise UsageError(f"lock directory {path} is not a directory (use --lock-pid-dir DIR)")
    if info.st_uid != os.geteuid():
        raise UsageError(
            f"lock directory {path} belongs to uid {info.st_uid}, not to you"
            " (use --lock-pid-dir DIR)"
        )
    if info.st_mode & 0o022:
        raise UsageError(
            f"lock directory {path} is writable by others (mode {info.st_mode & 0o777:o});"
            f" chmod go-w {path}"
        )


def _lock_file(path: Path) -> int | None:
    """An fd holding the lock on path, or None when another process holds it.

    A holder unlinks its file before it lets go. So after locking, the path must still name
    the inode we locked; if not, we locked a removed file and try again on the new one.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    while True:
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as err:
            raise UsageError(f"cannot open lock file {path}: {err.strerror or err}") from err
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES):
                return None
            raise UsageError(f"cannot lock {path}: {err.strerror or err}") from err
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def sweep_stale(directory: Path, keep: Path) -> int:
    """Remove the pid files no process holds (left by killed runs); returns how many.

    Same protocol as _lock_file: lock, check the path still names that inode, unlink, close.
    """
    removed = 0
    for path in directory.glob("*.pid"):
        if path == keep:  # closing any fd of our own file would drop our lock
            continue
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:  # gone meanwhile, or not ours to open
            continue
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                path.unlink()
                removed += 1
        except OSError:  # held by a live run, or removed meanwhile: leave it
            continue
        finally:
            os.close(fd)
    if removed:
        logger.debug("removed %d stale pid files from %s", removed, directory)
    return removed


def _write_holder(fd: int) -> None:
    """Replace the file's content with this process's pid, start time and command line."""
    holder = {
        "pid": os.getpid(),
        "since": time.time(),
        "start_ticks": process_start(os.getpid()) or "",
        "command": " ".join(sys.argv),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(holder) + "\n").encode("utf-8", "surrogateescape"), 0)
    os.fchmod(fd, 0o644)


def read_holder(path: Path) -> Holder | None:
    """The holder a pid file names, or None if it is missing, empty or not ours."""
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
        return Holder(
            int(data["pid"]), float(data["since"]), str(data["start_ticks"]), str(data["command"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
