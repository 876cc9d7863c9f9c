"""One forked child process, from its fork to its reaping or killing.

A child leads its own process group (child.py), so a timeout stops the whole group; it
is also a subreaper, so a descendant that left the group (setsid: a daemon, a double
fork) is still found under it and named in the failure.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import warnings
from dataclasses import dataclass

from pipes.worker import child

TERM_GRACE = 1.0  # seconds a timed-out task has to unwind after SIGTERM, before SIGKILL


class ChildProcess:
    """A forked child: its pid, an fd that polls readable once it exits, its exit code."""

    def __init__(self, pid: int, sentinel: int) -> None:
        self.pid = pid
        self.sentinel = sentinel
        self.exitcode: int | None = None  # negative: killed by that signal

    @classmethod
    def start(cls, setup: child.ChildSetup) -> ChildProcess:
        """Fork, and run child.run_child in the new process."""
        with warnings.catch_warnings():
            # The keep-alive thread runs while we fork. The child never touches the locks
            # that thread uses (scheduler client, HTTP connection), and logging re-creates
            # its locks at fork, so the deadlock this warns about cannot happen here.
            warnings.filterwarnings(
                "ignore", "This process .* is multi-threaded", DeprecationWarning
            )
            # Without pidfds (Linux < 5.3) the sentinel is a pipe the child holds open.
            alive_read, alive_write = os.pipe()
            pid = os.fork()
        if pid == 0:  # pragma: no cover -- the child never returns from here
            os.close(alive_read)
            os.register_at_fork(after_in_child=lambda: os.close(alive_write))  # not for its forks
            os._exit(child.run_child(setup))
        os.close(alive_write)
        try:
            sentinel = os.pidfd_open(pid)
        except (AttributeError, OSError):
            return cls(pid, alive_read)
        os.close(alive_read)
        return cls(pid, sentinel)

    def poll(self) -> int | None:
        """The exit code, reaping the child if it has exited; None while it runs."""
        if self.exitcode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return self.exitcode
            if pid:
                self.exitcode = os.waitstatus_to_exitcode(status)
        return self.exitcode

    def join(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the child to exit."""
        if self.poll() is None:
            select.select([self.sentinel], [], [], timeout)
            self.poll()

    def send_signal(self, sig: int) -> None:
        """Send sig to the child alone."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def kill(self, sig: int = signal.SIGKILL, grace: float = 5.0) -> None:
        """Signal the child's whole process group; SIGKILL it if it outlives `grace`."""
        for current in (sig, signal.SIGKILL):
            try:
                os.killpg(self.pid, current)
            except (ProcessLookupError, PermissionError):
                self.send_signal(signal.SIGKILL)
            self.join(grace)
            if self.exitcode is not None:
                return

    def kill_tree(self) -> KilledTree:
        """SIGTERM, then SIGKILL, the child's process group; says which descendants were outside it.

        A descendant that called setsid() (a daemon, a double fork) left the group and lives
        on; the child is a subreaper (child.py), so even orphaned ones are found under it.
        """
        table = _process_table()
        group = sorted(pid for pid, (_, pgid) in table.items() if pgid == self.pid)
        strays = [pid for pid in _descendants(table, self.pid) if pid not in group]
        self.kill(signal.SIGTERM, TERM_GRACE)  # the task unwinds: its atomic writes drop temps
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # what ignored SIGTERM
        return KilledTree(self.pid, group or [self.pid], strays)

    def too_big(self, limit_mb: float) -> bool:
        """Whether its resident memory is past limit_mb (Linux: /proc)."""
        try:
            fd = os.open(f"/proc/{self.pid}/statm", os.O_RDONLY)
            try:
                pages = int(os.read(fd, 256).split()[1])
            finally:
                os.close(fd)
        except (OSError, ValueError, IndexError):
            return False
        return pages * _PAGE_SIZE > limit_mb * 2**20

    def close(self) -> None:
        """Reap the child if it has exited, and close the sentinel."""
        self.poll()
        os.close(self.sentinel)


@dataclass(frozen=True)
class KilledTree:
    """What a timeout killed: the child's process group, and the descendants outside it."""

    pgid: int
    killed: list[int]
    strays: list[int]  # left the group (setsid): not killed

    def describe(self) -> str:
        """E.g. 'killed process group 12 (3 processes); 1 process left the group ...: pid 40'."""
        text = f"killed process group {self.pgid} ({_processes(len(self.killed))})"
        if self.strays:
            count = len(self.strays)
            verb = "was" if count == 1 else "were"
            pids = ("pid " if count == 1 else "pids ") + ", ".join(map(str, self.strays))
            text += f"; {_processes(count)} left the group (setsid) and {verb} not killed: {pids}"
        return text


def _processes(count: int) -> str:
    return f"{count} process" if count == 1 else f"{count} processes"


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every live process, from /proc (Linux; else {})."""
    table: dict[int, tuple[int, int]] = {}
    try:
        entries = [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    except OSError:
        return table
    for name in entries:
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()
        except OSError:  # it exited while we looked
            continue
        if fields and fields[0] not in (b"Z", b"X"):  # a zombie is dead already
            table[int(name)] = (int(fields[1]), int(fields[2]))
    return table


def _descendants(table: dict[int, tuple[int, int]], root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return sorted(found)


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
