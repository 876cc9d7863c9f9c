"""The worker's child processes: each runs the tasks the worker sends it, one after another.

A child lives in its own process group (so a timeout can kill it with everything it
started), is a subreaper (so processes its task double-forks stay its descendants), turns
SIGTERM into an exception that unwinds the running task (so its atomic writes drop their
temporary files), and writes each task's stdout/stderr to a log file (tasklog.py). The
worker may send several tasks at once; before starting each, the child claims it
(claims.py), so the worker can take back tasks not yet started. Everything a child needs
comes in its ChildSetup, the tasks the worker knows included; a task it does not know
comes as a TaskRef. Outcomes go back as TaskEnded messages, a few at a time: a DONE is
held up to FLUSH_COUNT outcomes or FLUSH_AFTER seconds, anything else (a failure, a
field set by run()) is sent at once.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import os
import signal
import sys
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pipes.task import Task
from pipes.worker.channel import FrameReader, frame, write_all
from pipes.worker.claims import Claims
from pipes.worker.completion import TaskOutputs
from pipes.worker.execute import Execution
from pipes.worker.messages import FieldSet, RunStatus, TaskEnded, TaskRef, TaskSent
from pipes.worker.tasklog import Capture

FLUSH_COUNT = 4  # DONE outcomes a child holds before sending them in one write
FLUSH_AFTER = 0.005  # seconds: a held outcome is sent at least this soon after its task ends


PR_SET_PDEATHSIG = 1  # prctl option: the signal this process gets when its parent dies
PR_SET_CHILD_SUBREAPER = 36  # prctl option: orphaned descendants are re-parented to us


@dataclass(frozen=True)
class ChildOptions:
    """How a child runs tasks: the same for every child of one runner, but for private_log."""

    check_outputs: bool
    log_dir: str | None
    private_log: str | None  # the child's own log file when there is no log_dir
    known: Mapping[str, Task]  # the worker's tasks, as they are at the fork: found by id
    recheck: bool  # check completeness just before a task runs
    outputs: TaskOutputs  # each task's output(), as the worker had cached it at the fork


@dataclass(frozen=True)
class ChildSetup:
    """What a child is forked with."""

    task_fd: int  # tasks in
    result_fd: int  # outcomes out
    claims: Claims
    close_fds: tuple[int, ...]  # the worker's ends of its pipes to other children
    options: ChildOptions
    worker_pid: int  # the worker: when it dies, so does the child


class TaskStopped(BaseException):
    """SIGTERM reached the child: unwinds the running task, so its open atomic writes discard.

    A BaseException, so that a task's `except Exception` does not swallow it.
    """


def run_child(setup: ChildSetup) -> int:
    """The whole life of a forked child; returns its exit code."""
    code = 1
    try:
        child_main(setup)
        code = 0
    except TaskStopped:  # the task's `with target.open("w")` blocks have dropped their temp files
        code = 128 + signal.SIGTERM
    except BaseException:  # the child's last words, in its log
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    if code == 128 + signal.SIGTERM:  # die by the signal, so the worker sees how it ended
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
    return code


def child_main(setup: ChildSetup) -> None:
    """Run the tasks sent until the worker says stop or goes away."""
    os.setpgid(0, 0)
    null = os.open(os.devnull, os.O_RDONLY)  # the terminal's input is the worker's
    os.dup2(null, 0)
    os.close(null)
    gc.freeze()  # inherited objects: the child's collector never walks them (no copy-on-write)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides what a Ctrl-C stops
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _make_stopper(os.getpid()))  # not the worker's handler
    _die_with_the_worker(setup.worker_pid)
    for fd in setup.close_fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    capture = Capture(setup.options.log_dir, setup.options.private_log)
    capture.start()
    _close_in_forks([setup.task_fd, setup.result_fd, *capture.worker_fds()])
    _Server(setup, capture).serve()


def _close_in_forks(fds: list[int]) -> None:
    """Processes a task forks (os.fork, multiprocessing) drop this child's links to the worker.

    Else a process that outlives the task (a daemon) would hold the worker's stderr and
    pipes open; exec'd programs never get them (Python's descriptors are close-on-exec).
    """

    def close() -> None:
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    os.register_at_fork(after_in_child=close)


def _die_with_the_worker(worker_pid: int) -> None:
    """If the worker dies, even by SIGKILL, stop this child and what its task started."""
    import ctypes  # here, in the child: a run that forks no child never loads it

    signal.signal(signal.SIGHUP, _stop_group)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGHUP) != 0:
        return  # not Linux: children end when their pipe to the worker closes
    # A process the task double-forks stays our descendant, so a timeout can name it
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1)
    if os.getppid() != worker_pid:  # the worker died before prctl took effect
        _stop_group(signal.SIGHUP, None)


def _make_stopper(child_pid: int) -> Any:
    """A SIGTERM handler that unwinds this child; processes it forks just die of the signal."""

    def stop(signum: int, frame: Any) -> None:
        if os.getpid() != child_pid:  # a fork of the task that kept our handler
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # unwind once, even if more come
        raise TaskStopped("SIGTERM")

    return stop


def _reap_exited() -> None:
    """Reap descendants that have exited: as a subreaper, orphans that end become ours."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:  # no children at all
            return
        if pid == 0:
            return


def _stop_group(signum: int, frame: Any) -> None:
    os.killpg(0, signal.SIGTERM)  # this child included


class _Server:
    def __init__(self, setup: ChildSetup, capture: Capture) -> None:
        self.setup = setup
        self.capture = capture
        self.reader = FrameReader(setup.task_fd, blocking=True)
        self.queue: collections.deque[TaskSent] = collections.deque()
        self.held: list[TaskEnded] = []  # messages not sent yet
        self.held_since = 0.0

    def serve(self) -> None:
        while True:
            if not self.queue:
                self.send()
                if not self.receive():
                    return
                continue
            sent = self.queue.popleft()
            if self.setup.claims.claim(sent.seq):
                self.run(sent)

    def receive(self) -> bool:
        """Wait for tasks; False when told to stop or the worker is gone."""
        for message in self.reader.read_some():
            if message is None:
                return False
            self.queue.extend(message)
        return not self.reader.closed

    def run(self, sent: TaskSent) -> None:
        claims, seq, ref, options = self.setup.claims, sent.seq, sent.ref, self.setup.options
        log_start = self.capture.begin(sent.key)
        if self.capture.log_dir is not None:  # else always 0: the private file starts empty
            claims.log_start(log_start)
        try:
            task = options.known[sent.key] if ref is None else ref.load(options.known)
        except Exception as err:
            family = ref.family if ref is not None else sent.key
            error = f"cannot load {family} in the child: {err}"
            ended = TaskEnded(seq, RunStatus.FAILED, error, None, 0.0, (), self.capture.end())
        else:
            task._status_reporter = lambda name, value: self.field(seq, name, value)
            execution = Execution(task, options.check_outputs, [], options.recheck, options.outputs)
            attempt = execution.step()
            new_deps = tuple(TaskRef.of(dep) for dep in attempt.new_deps)
            ended = TaskEnded(
                seq,
                attempt.status,
                attempt.error,
                attempt.message,
                attempt.seconds,
                new_deps,
                self.capture.end(),
            )
        self.hold(ended)
        _reap_exited()
        if ended.status != RunStatus.DONE:  # sent before it counts as finished: see Runner._settle
            self.send()
            claims.finished(seq)
            return
        claims.finished(seq)
        if len(self.held) >= FLUSH_COUNT or time.monotonic() - self.held_since >= FLUSH_AFTER:
            self.send()

    def field(self, seq: int, name: str, value: Any) -> None:
        data = frame([FieldSet(seq, name, value)])  # an unpicklable value fails run(), not us
        self.send()
        write_all(self.setup.result_fd, data)

    def hold(self, message: TaskEnded) -> None:
        if not self.held:
            self.held_since = time.monotonic()
        self.held.append(message)

    def send(self) -> None:
        if self.held:
            data = frame(self.held)
            self.held = []
            write_all(self.setup.result_fd, data)
            # The worker, woken by that write, may wait for this CPU: let it have it now
            # rather than at the end of our time slice (it sends us our next tasks).
            os.sched_yield()
