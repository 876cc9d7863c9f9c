"""The worker's child processes, watched over one poll.

Children take task after task (so many small tasks cost no fork each) and are recycled
after max_tasks_per_child tasks (dispatcher.py) or when their memory grows past
max_child_rss_mb. The pool says which children have sent something, which have died,
which are past their task's deadline and which have been silent a while; what that
means for their tasks is the runner's business.
"""

from __future__ import annotations

import os
import select
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from pipes.worker.child import ChildOptions
from pipes.worker.claims import Claims
from pipes.worker.execute import Execution
from pipes.worker.handle import ChildHandle
from pipes.worker.messages import FieldSet, TaskEnded
from pipes.worker.process import KilledTree
from pipes.worker.tasklog import tail_of_file, task_log_path

RSS_CHECK_EVERY = 25  # tasks between looks at a child's memory (each look reads /proc)
REPORT_WITHIN = 0.05  # seconds a child may be silent before the runner looks at what it holds
LIVE_TAIL_EVERY = 5.0  # seconds between log tails of a task still running in a child
_IN = select.POLLIN | select.POLLHUP | select.POLLERR


@dataclass(eq=False)
class Child:
    """One child, as the pool watches it."""

    handle: ChildHandle
    heard: float = 0.0  # when it last sent something, or was sent work while idle
    looked: float = -1.0  # the `heard` at which the runner last looked at what it holds
    deadline: float | None = None  # when its one task times out
    tail_at: float = 0.0  # when its running task's log tail is due next (0: not yet timed)
    last_tail: str | None = None  # the tail sent last
    done: int = 0  # outcomes read
    rss_check_at: int = RSS_CHECK_EVERY  # look at its memory once `done` reaches this
    polling_out: bool = False  # waiting for room in its pipe


class Pool:
    """Children by the dispatcher's key, and one poll over all their pipes."""

    def __init__(self, options: ChildOptions, max_child_rss_mb: float) -> None:
        self.options = options  # private_log is set per child
        self.max_child_rss_mb = max_child_rss_mb
        self._children: dict[int, Child] = {}
        self._by_fd: dict[int, int] = {}  # fd -> key
        self._poller = select.poll()
        self._private_dir: str | None = None  # children's own log files, without log_dir
        self._forks = 0
        self._known: tuple[int, frozenset[str]] = (-1, frozenset())
        self._stopping = False

    # --- starting and stopping ------------------------------------------------------------

    def fork(self, key: int) -> None:
        """Start the child the dispatcher calls `key`."""
        others = [c.handle for c in self._children.values()]
        handle = ChildHandle.fork(self._child_options(), self._known_ids(), others)
        if self._stopping:  # SIGUSR1 came while we forked
            handle.claims.stop()
        self._children[key] = Child(handle)
        for fd in (handle.reader.fd, handle.send_fd, handle.process.sentinel):
            self._by_fd[fd] = key
        self._poller.register(handle.reader.fd, _IN)
        self._poller.register(handle.process.sentinel, _IN)

    def _known_ids(self) -> frozenset[str]:
        known = self.options.known
        if len(known) != self._known[0]:  # the worker's tasks only grow
            self._known = (len(known), frozenset(known))
        return self._known[1]

    def _child_options(self) -> ChildOptions:
        if self.options.log_dir is not None:
            Path(self.options.log_dir).mkdir(parents=True, exist_ok=True)
            return self.options
        if self._private_dir is None:
            self._private_dir = tempfile.mkdtemp(prefix="pipes-logs-")
        self._forks += 1
        private_log = os.path.join(self._private_dir, f"child-{self._forks}.log")
        return replace(self.options, private_log=private_log)

    def finish_up(self) -> None:
        """Children start no more tasks. Signal-handler safe."""
        self._stopping = True
        for child in list(self._children.values()):
            child.handle.claims.stop()

    def remove(self, key: int) -> ChildHandle:
        """Stop watching child `key`; the caller closes the handle."""
        child = self._children.pop(key)
        handle = child.handle
        for fd in (handle.reader.fd, handle.send_fd, handle.process.sentinel):
            if self._by_fd.pop(fd, None) is not None and (
                fd != handle.send_fd or child.polling_out
            ):
                self._poller.unregister(fd)
        return handle

    def retire(self, key: int) -> None:
        """Stop an idle child and release it."""
        handle = self.remove(key)
        handle.ask_to_stop()
        handle.close()

    def kill(self, key: int, sig: int) -> None:
        """Signal child `key`'s process group (SIGKILL if it lingers)."""
        self._children[key].handle.process.kill(sig)

    def kill_tree(self, key: int) -> KilledTree:
        """Stop child `key` and its process group: a timeout."""
        return self._children[key].handle.process.kill_tree()

    def exit_status(self, key: int) -> int | None:
        """How child `key` ended (negative: by that signal), once its sentinel fired."""
        process = self._children[key].handle.process
        process.join(1.0)
        return process.exitcode

    def close(self) -> None:
        """Remove the children's private log directory, once no child is left."""
        if not self._children and self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None

    # --- talking --------------------------------------------------------------------------

    def send(
        self, key: int, numbered: list[tuple[int, Execution]], was_idle: bool, timeout: float | None
    ) -> None:
        """Write tasks to child `key`; `timeout` (seconds) applies to a task sent alone."""
        child = self._children[key]
        now = time.monotonic()
        if was_idle:
            child.heard = now  # the silence clock starts when an idle child gets work
        if timeout:
            child.deadline = now + timeout
        child.handle.send(numbered)
        self._watch_out(key, child)

    def _watch_out(self, key: int, child: Child) -> None:
        """Ask poll to say when the child's pipe has room, while it has frames to take."""
        handle = child.handle
        if handle.outbuf and not child.polling_out:
            self._poller.register(handle.send_fd, select.POLLOUT)
        elif not handle.outbuf and child.polling_out:
            self._poller.unregister(handle.send_fd)
        child.polling_out = bool(handle.outbuf)

    def messages(self, key: int) -> list[TaskEnded | FieldSet]:
        """What child `key` sent since the last call."""
        child = self._children[key]
        items = child.handle.messages()
        if items:
            child.heard = time.monotonic()
            child.done += sum(isinstance(item, TaskEnded) for item in items)
        reader = child.handle.reader
        if reader.closed and self._by_fd.pop(reader.fd, None) is not None:
            self._poller.unregister(reader.fd)
        return items

    def closed(self, key: int) -> bool:
        """Whether child `key` closed its pipe: it is gone, and its sentinel fires next."""
        return self._children[key].handle.reader.closed

    def claims(self, key: int) -> Claims:
        """What child `key` has started and finished."""
        return self._children[key].handle.claims

    def holds_nothing(self, key: int) -> None:
        """Child `key` holds no task: no deadline runs for it."""
        self._children[key].deadline = None

    def too_big(self, key: int) -> bool:
        """Whether child `key` has grown past max_child_rss_mb (looked at every few tasks)."""
        child = self._children[key]
        if child.done < child.rss_check_at:
            return False
        child.rss_check_at = child.done + RSS_CHECK_EVERY
        return child.handle.process.too_big(self.max_child_rss_mb)

    # --- waiting --------------------------------------------------------------------------

    def wait(self, timeout: float | None) -> tuple[list[int], list[int]]:
        """Wait up to `timeout` seconds; (children that sent something, children that ended)."""
        readable: list[int] = []
        ended: list[int] = []
        for fd, _ in self._poller.poll(None if timeout is None else timeout * 1000):
            key = self._by_fd.get(fd)
            if key is None:
                continue
            handle = self._children[key].handle
            if fd == handle.send_fd:
                handle.flush()
                self._watch_out(key, self._children[key])
            elif fd == handle.reader.fd:
                readable.append(key)
            elif handle.process.poll() is not None:
                ended.append(key)
        return readable, ended

    def wake_times(self, holding: list[int]) -> list[float]:
        """When a clock of one of the `holding` children runs out (see the methods below)."""
        wake = []
        for key in holding:
            child = self._children[key]
            if child.deadline is not None:
                wake.append(child.deadline)
            if child.looked != child.heard:
                wake.append(child.heard + REPORT_WITHIN)
            wake.append(child.tail_at)
        return wake

    def heard(self, key: int) -> float:
        """When child `key` last sent something, or was sent work while idle."""
        return self._children[key].heard

    def timed_out(self, now: float) -> list[int]:
        """Children whose task is past its deadline."""
        return [
            k for k, c in self._children.items() if c.deadline is not None and now >= c.deadline
        ]

    def silent(self, now: float) -> list[int]:
        """Children silent for REPORT_WITHIN since they last sent: each once per silence."""
        found = []
        for key, child in self._children.items():
            if child.looked != child.heard and now >= child.heard + REPORT_WITHIN:
                child.looked = child.heard
                found.append(key)
        return found

    def tails_due(self, now: float, holding: list[int]) -> list[int]:
        """Holding children whose running task's log tail is due (every LIVE_TAIL_EVERY seconds)."""
        due = []
        for key in holding:
            child = self._children[key]
            if now >= child.tail_at:
                if child.tail_at:  # the first time only starts the clock
                    due.append(key)
                child.tail_at = now + LIVE_TAIL_EVERY
        return due

    def new_tail(self, key: int, tail: str) -> bool:
        """Whether `tail` differs from the one last sent for child `key` (it is now that one)."""
        child = self._children[key]
        changed, child.last_tail = tail != child.last_tail, tail
        return changed

    def log_tail(self, handle: ChildHandle, task_key: str, start: int) -> str | None:
        """The end of what the task printed, from `start` in its log file."""
        if self.options.log_dir is not None:
            return tail_of_file(task_log_path(self.options.log_dir, task_key), start)
        return tail_of_file(handle.log_path) if handle.log_path is not None else None

    def handle(self, key: int) -> ChildHandle:
        """Child `key`'s handle."""
        return self._children[key].handle
