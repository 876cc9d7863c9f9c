"""The worker's handle on one child process: forking it, writing it tasks, reading its replies.

The runner decides what a child runs; a handle only knows the child's pipes, its shared
counters (channel.py), and which executions it holds under which sequence number.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipes.worker import child
from pipes.worker.channel import FrameReader, Shared, frame
from pipes.worker.completion import TaskOutputs
from pipes.worker.execute import Execution
from pipes.worker.messages import FieldSet, TaskEnded, TaskRef, TaskSent

TERM_GRACE = 1.0  # seconds a timed-out task has to unwind after SIGTERM, before SIGKILL


@dataclass(frozen=True)
class ForkOptions:
    """What a child is started with."""

    check_outputs: bool
    log_dir: str | None
    private_log: str | None  # its own log file when there is no log_dir
    known: frozenset[str]  # ids of the tasks in child.known_tasks as it forks
    recheck: bool  # check completeness just before a task runs
    outputs: TaskOutputs  # each task's output() as cached so far (the child's copy grows)


@dataclass(eq=False)
class ChildHandle:
    """One child process and the executions it holds (sent, no outcome read yet)."""

    process: Any
    send_fd: int  # non-blocking
    reader: FrameReader  # non-blocking
    shared: Shared
    known: frozenset[str]  # task ids in the child's fork snapshot: sent as an id only
    log_path: str | None  # its private log file (no log_dir)
    inflight: dict[int, Execution] = field(default_factory=dict)  # by sequence number
    next_seq: int = 1
    outbuf: bytearray = field(default_factory=bytearray)  # frames the pipe has not taken yet
    deadline: float | None = None  # when its one task times out
    alone: bool = False  # its task may not have others waiting behind it
    sent: int = 0  # tasks sent over its life (max_tasks_per_child)
    done: int = 0  # outcomes read
    rss_check_at: int = 0  # look at its memory once `done` reaches this
    retiring: bool = False  # send it nothing more; stop it once it holds nothing
    heard: float = 0.0  # when it last sent something, or was sent work while idle
    looked: float = -1.0  # the `heard` at which the worker last looked for outcomes it holds
    early: dict[int, str] = field(default_factory=dict)  # seq -> task id reported before sent
    polling_out: bool = False  # the runner waits for room in its pipe
    tail_at: float = 0.0  # when to send its running task's log tail next
    last_tail: str | None = None  # the one sent last

    @classmethod
    def fork(cls, options: ForkOptions, others: list[ChildHandle]) -> ChildHandle:
        """Fork a child that serves tasks (child.child_main)."""
        task_read, task_write = os.pipe()
        result_read, result_write = os.pipe()
        inherited = [fd for other in others for fd in (other.send_fd, other.reader.fd)]
        inherited += [other.process.sentinel for other in others]
        shared = Shared()
        setup = child.ChildSetup(
            task_read,
            result_write,
            shared,
            (task_write, result_read, *inherited),
            options.check_outputs,
            options.log_dir,
            options.private_log,
            os.getpid(),
            options.recheck,
            options.outputs,
        )
        process = ChildProcess.start(setup)
        os.close(task_read)
        os.close(result_write)
        os.set_blocking(task_write, False)
        os.set_blocking(result_read, False)
        reader = FrameReader(result_read, blocking=False)
        return cls(process, task_write, reader, shared, options.known, options.private_log)

    def idle(self) -> bool:
        """Holding nothing, and open for work."""
        return not self.inflight and not self.outbuf and not self.retiring

    def send(self, executions: list[Execution]) -> None:
        """Queue executions for the child, in order, and write what the pipe takes."""
        if not self.inflight:
            self.heard = time.monotonic()  # the stall clock starts when an idle child gets work
        entries = []
        for execution in executions:
            key = execution.members[0]
            known = execution.task.task_id == key and key in self.known
            ref = None if known else TaskRef.of(execution.task)
            entries.append(TaskSent(self.next_seq, key, ref))
            self.inflight[self.next_seq] = execution
            self.next_seq += 1
        self.sent += len(executions)
        self.outbuf += frame(entries)
        self.flush()

    def flush(self) -> bool:
        """Write what the pipe takes now; True if some is left for later."""
        try:
            written = os.write(self.send_fd, self.outbuf)
        except BlockingIOError:
            written = 0
        except BrokenPipeError:  # the child is gone; its sentinel says how
            written = len(self.outbuf)
        del self.outbuf[:written]
        return bool(self.outbuf)

    def messages(self) -> list[TaskEnded | FieldSet]:
        """Every message the child has sent since the last call."""
        items = [item for batch in self.reader.read() for item in batch]
        if items:
            self.heard = time.monotonic()
        return items

    def take_back(self) -> list[Execution]:
        """The executions sent that the child has not started, which it now never will."""
        started = self.shared.revoke(self.next_seq)
        if started is None:  # its lock is stuck: it died inside claim(); its death settles it
            return []
        unstarted = [seq for seq in self.inflight if seq > started]
        self.sent -= len(unstarted)
        return [self.inflight.pop(seq) for seq in unstarted]

    def kill(self, sig: int = signal.SIGKILL, grace: float = 5.0) -> None:
        """Signal the child's whole process group; SIGKILL it if it outlives `grace`."""
        for current in (sig, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, current)
            except (ProcessLookupError, PermissionError):
                self.process.signal(signal.SIGKILL)
            self.process.join(grace)
            if self.process.exitcode is not None:
                return

    def kill_tree(self) -> KilledTree:
        """SIGTERM, then SIGKILL, the child's process group; says which descendants were outside it.

        A descendant that called setsid() (a daemon, a double fork) left the group and lives
        on; the child is a subreaper (child.py), so even orphaned ones are found under it.
        """
        table = _process_table()
        group = sorted(pid for pid, (_, pgid) in table.items() if pgid == self.process.pid)
        strays = [pid for pid in _descendants(table, self.process.pid) if pid not in group]
        self.kill(signal.SIGTERM, TERM_GRACE)  # the task unwinds: its atomic writes drop temps
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # what ignored SIGTERM
        return KilledTree(self.process.pid, group or [self.process.pid], strays)

    def too_big(self, limit_mb: float) -> bool:
        """Whether its resident memory is past limit_mb (Linux: /proc)."""
        try:
            fd = os.open(f"/proc/{self.process.pid}/statm", os.O_RDONLY)
            try:
                pages = int(os.read(fd, 256).split()[1])
            finally:
                os.close(fd)
        except (OSError, ValueError, IndexError):
            return False
        return pages * _PAGE_SIZE > limit_mb * 2**20

    def ask_to_stop(self) -> None:
        """Tell an idle child to exit, and wait a little for it."""
        try:
            os.set_blocking(self.send_fd, True)
            os.write(self.send_fd, bytes(self.outbuf) + frame(None))
        except OSError:
            pass
        self.process.join(5.0)

    def close(self) -> None:
        """Release the worker's ends of its pipes and memory, and its private log file."""
        os.close(self.reader.fd)
        os.close(self.send_fd)
        self.process.close()
        self.shared.close()
        if self.log_path is not None:
            Path(self.log_path).unlink(missing_ok=True)


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


class ChildProcess:
    """A forked child: its pid, an fd that polls readable once it exits, its exit code."""

    def __init__(self, pid: int, sentinel: int) -> None:
        self.pid = pid
        self.sentinel = sentinel
        self.exitcode: int | None = None  # negative: killed by that signal

    @classmethod
    def start(cls, setup: child.ChildSetup) -> ChildProcess:
        """Fork, and run child.child_main in the new process."""
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

    def signal(self, sig: int) -> None:
        """Send sig to the child alone."""
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def close(self) -> None:
        """Reap the child if it has exited, and close the sentinel."""
        self.poll()
        os.close(self.sentinel)


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
