"""Where executions run: inline in the worker, or in long-lived child processes.

With one worker and no timeout a task runs in this process. Otherwise the dispatcher
(dispatcher.py) decides which child runs what and the pool (pool.py) runs the children;
the runner joins the two and turns what children say, or how they end, into outcomes.

A task past its timeout has its child's whole process group stopped (SIGTERM, then
SIGKILL), and the failure names the processes that had left the group; a child that dies
mid-task fails that task with its exit status. Either way nothing it half-wrote is
published. Tasks a child holds but has not started are taken back (claims.py): when it
has sent nothing for STEAL_AFTER while another child idles, and after finish_up()
(SIGUSR1), when they come back as PENDING.
"""

from __future__ import annotations

import functools
import logging
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipes.event import Event
from pipes.task import Task
from pipes.worker.capture import Tail, TailCapture
from pipes.worker.completion import TaskOutputs
from pipes.worker.dispatcher import Dispatcher
from pipes.worker.execute import Attempt, Execution
from pipes.worker.messages import FieldSet, RunStatus, TaskEnded
from pipes.worker.walk import fire_event

if TYPE_CHECKING:
    from pipes.worker.pool import Pool

logger = logging.getLogger("pipes.worker")
Finished = list[tuple[Execution, Attempt]]
STEAL_AFTER = 0.1  # seconds a child may hold waiting tasks without news while another idles


@dataclass(frozen=True)
class RunnerOptions:
    """How tasks are isolated; built from [worker] config."""

    workers: int = 1
    force_multiprocessing: bool = False
    timeout: float | None = None  # default per-task timeout in seconds
    max_tasks_per_child: int = 1000
    max_child_rss_mb: float = 2048.0
    log_dir: str | None = None  # keep each task's stdout/stderr in <log_dir>/<task id>.log
    check_outputs: bool = True


class Inline:
    """The execution running in this process, if any, and its output so far."""

    def __init__(self) -> None:
        self.execution: Execution | None = None
        self._tail: Tail | None = None
        self._capture = TailCapture()  # installed at the first inline run, until close()

    def run(self, execution: Execution) -> Attempt:
        """Run one step of execution here, keeping the end of what it prints."""
        self.execution = execution
        tail = self._tail = self._capture.start()
        try:
            outcome = execution.step()
        finally:
            self._capture.stop()
            self._tail = None
        outcome.log_tail = tail.text()
        self.execution = None
        return outcome

    def close(self) -> None:
        """Put back the streams and logging handler the inline runs used."""
        self._capture.uninstall()

    def interrupted(self) -> Execution | None:
        """The execution a signal stopped inside run(), if any: it is no longer running."""
        execution, self.execution = self.execution, None
        return execution

    def tail(self) -> tuple[str, str] | None:
        """(task id, output so far) of the running task: atomic under the GIL, for any thread."""
        execution, tail = self.execution, self._tail
        text = tail.text() if tail is not None else None
        return (execution.members[0], text) if execution is not None and text else None


class Runner:
    """Runs up to `workers` executions at once and reports each one's outcome."""

    def __init__(
        self,
        options: RunnerOptions,
        on_field: Callable[[str, str, Any], None],
        outputs: TaskOutputs | None = None,
        recheck: bool = True,
        known: Mapping[str, Task] | None = None,
    ) -> None:
        """`known`: the worker's tasks (it adds more as it runs); children look tasks up there."""
        self.options = options
        self.on_field = on_field  # (task id, field, value) from run() in a child
        self._known: Mapping[str, Task] = known if known is not None else {}
        self._recheck = recheck  # check completeness just before a task runs (in children)
        self._outputs = outputs or TaskOutputs()  # children fork with what is cached so far
        self._dispatcher = Dispatcher(options.workers, options.max_tasks_per_child)
        self._isolate = options.workers > 1 or options.force_multiprocessing
        self._inline = Inline()
        self._finished: Finished = []
        self._reported: dict[tuple[int, int], str] = {}  # (child, seq) -> task id, DONE early
        self._finishing = False

    @functools.cached_property
    def _pool(self) -> Pool:
        """The child processes; made, and the fork machinery loaded, when the first is needed."""
        from pipes.worker.child import ChildOptions
        from pipes.worker.pool import Pool

        options = self.options
        child = ChildOptions(
            options.check_outputs, options.log_dir, None, self._known, self._recheck, self._outputs
        )
        return Pool(child, options.max_child_rss_mb)

    def _has_pool(self) -> bool:
        return "_pool" in self.__dict__  # where cached_property keeps it

    def timeout_of(self, execution: Execution) -> float | None:
        """The task's own worker_timeout, else the configured default."""
        return execution.task.worker_timeout or self.options.timeout

    def has_room(self) -> bool:
        """Whether the worker should hand over another execution now."""
        if not self._isolate:
            return not self._dispatcher.busy()
        return self._dispatcher.has_room()

    def inline_tail(self) -> tuple[str, str] | None:
        """(task id, output so far) of the task running in this process, if any."""
        return self._inline.tail()

    def busy(self) -> list[Execution]:
        """Executions handed over and not handed back: running, or waiting for a child."""
        return self._dispatcher.busy() + [e for e, _ in self._finished]

    def running(self) -> list[Execution]:
        """Executions a child has started and not finished (as far as its claims tell)."""
        found = []
        for key in self._dispatcher.holding():
            started, finished, _ = self._pool.claims(key).snapshot()
            execution = self._dispatcher.loads[key].held.get(started)
            if execution is not None and started > finished:
                found.append(execution)
        return found

    def submit(self, execution: Execution) -> None:
        """Start an execution: inline (finished on return), or queue it for a child."""
        timeout = self.timeout_of(execution)
        if not self._isolate and timeout is None:
            self._finished.append((execution, self._inline.run(execution)))
            return
        self._dispatcher.queue(execution, self._dispatcher.is_fast(execution.task, timeout))

    def take_finished(self) -> Finished:
        """Outcomes already known (inline runs), without waiting for any child."""
        finished, self._finished = self._finished, []
        return finished

    def wait(self, timeout: float | None = None) -> Finished:
        """Outcomes that are ready, waiting up to `timeout` (or the next task deadline)."""
        if self._finishing:
            self._give_back_unstarted()
        elif self._dispatcher.queued():
            self._dispatch()
        if not self._finished:
            self._poll(timeout)
        return self.take_finished()

    def finish_up(self) -> None:
        """Start no more tasks; those not started come back as PENDING. Signal-handler safe."""
        self._finishing = True
        if self._has_pool():
            self._pool.finish_up()

    def stop(self, sig: int | None = None) -> Finished:
        """Stop every child; with `sig`, interrupt running tasks (they fail) first.

        With `sig`, executions handed over but never started come back as PENDING.
        """
        self._inline.close()  # first: sys.stdout is the user's again whatever happens next
        if sig is not None:
            message = f"stopped by {signal.Signals(sig).name} while running"
            inline = self._inline.interrupted()
            if inline is not None:
                self._finished.append((inline, Attempt(inline.task, RunStatus.FAILED, message)))
            unstarted = self._dispatcher.unqueue()
            for key in self._dispatcher.holding():
                self._pool.kill(key, signal.SIGTERM)  # children ignore SIGINT: the worker decides
                unstarted += self._settle(key, None, message)
            self._finished += [(e, Attempt(e.task, RunStatus.PENDING)) for e in unstarted]
        for key in [k for k, load in self._dispatcher.loads.items() if not load.held]:
            self._retire(key)
        if self._has_pool():
            self._pool.close()
        return self.take_finished()

    # --- sending work ---------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Send queued executions to the children the dispatcher picks, forking new ones."""
        for sending in self._dispatcher.assign():
            if sending.new:
                try:
                    self._pool.fork(sending.child)
                except BaseException:  # no child: its tasks wait in the queue again
                    held = self._dispatcher.remove(sending.child)
                    self._dispatcher.requeue(list(held.values()), fast=not sending.alone)
                    raise
            timeout = self.timeout_of(sending.numbered[0][1]) if sending.alone else None
            self._pool.send(sending.child, sending.numbered, sending.was_idle, timeout)

    def _give_back_unstarted(self) -> None:
        """After finish_up: what no child started goes back to the worker as PENDING."""
        executions = self._dispatcher.unqueue()
        for key in self._dispatcher.holding():
            executions += self._take_back(key)
        self._finished += [(e, Attempt(e.task, RunStatus.PENDING)) for e in executions]

    def _take_back(self, key: int) -> list[Execution]:
        """The tasks child `key` holds and has not started, which it now never will."""
        started = self._pool.claims(key).revoke(self._dispatcher.loads[key].next_seq)
        return self._dispatcher.take_back(key, started)  # None: it died in claim(); death settles

    def _retire(self, key: int) -> None:
        self._pool.retire(key)
        self._forget(key)

    def _forget(self, key: int) -> dict[int, Execution]:
        """Drop a child that is gone from the books; returns what it held."""
        for reported in [r for r in self._reported if r[0] == key]:
            del self._reported[reported]  # reported DONE early: their messages never come now
        return self._dispatcher.remove(key)

    # --- waiting for outcomes -------------------------------------------------------------

    def _poll(self, timeout: float | None) -> None:
        holding = self._dispatcher.holding()
        if not holding:
            return
        wake = self._pool.wake_times(holding)
        wake += [self._pool.heard(key) + STEAL_AFTER for key in self._stalled()]
        if wake:
            until = max(0.0, min(wake) - time.monotonic())
            timeout = until if timeout is None else min(timeout, until)
        readable, ended = self._pool.wait(timeout)
        for key in readable:
            self._read(key)
        for key in ended:
            if key in self._dispatcher.loads:  # not retired while its messages were read
                self._died(key)
        self._check_clocks()

    def _check_clocks(self) -> None:
        now = time.monotonic()
        for key in self._pool.timed_out(now):
            self._timed_out(key)
        for key in self._pool.silent(now):
            self._report_held(key)
        for key in self._stalled():
            if now >= self._pool.heard(key) + STEAL_AFTER:
                self._dispatcher.requeue(self._take_back(key), fast=True)
        for key in self._pool.tails_due(now, self._dispatcher.holding()):
            self._send_live_tail(key)

    def _stalled(self) -> list[int]:
        return [] if self._finishing else self._dispatcher.stalled()

    def _send_live_tail(self, key: int) -> None:
        """A running task's output so far (for the status page)."""
        started, finished, log_start = self._pool.claims(key).snapshot()
        execution = self._dispatcher.loads[key].held.get(started)
        if execution is None or started <= finished:
            return  # nothing has run long enough to need it
        task_key = execution.members[0]
        tail = self._pool.log_tail(self._pool.handle(key), task_key, log_start)
        if tail is not None and self._pool.new_tail(key, tail):
            self.on_field(task_key, "log_tail", tail)

    def _read(self, key: int) -> None:
        self._take_in(key)
        if self._pool.closed(key):
            return  # its sentinel fires next
        if self._pool.too_big(key):
            self._dispatcher.retire(key)
        load = self._dispatcher.loads[key]
        if load.retiring and not load.held:
            self._retire(key)

    def _take_in(self, key: int) -> None:
        """Handle every message child `key` has sent."""
        for item in self._pool.messages(key):
            if isinstance(item, FieldSet):
                execution = self._dispatcher.loads[key].held.get(item.seq)
                if execution is not None:
                    self.on_field(execution.members[0], item.name, item.value)
            else:
                self._ended(key, item)
        if not self._dispatcher.loads[key].held:
            self._pool.holds_nothing(key)

    def _ended(self, key: int, ended: TaskEnded) -> None:
        execution = self._dispatcher.settle(key, ended.seq)
        if execution is None:  # reported DONE already (_report_held): only the message
            task_key = self._reported.pop((key, ended.seq))
            if ended.message:  # what on_success() returned
                self.on_field(task_key, "status_message", ended.message)
            return
        task = execution.task
        self._dispatcher.learn(task, ended.seconds)
        deps = [ref.load(self._known) for ref in ended.new_deps]
        attempt = Attempt(
            task, ended.status, ended.error, deps, ended.seconds, ended.log_tail, ended.message
        )
        self._finished.append((execution, attempt))

    def _report_held(self, key: int) -> None:
        """Report DONE the tasks a silent child finished but holds the outcomes of.

        A child holds a few DONE outcomes to send them together; if the task after them
        runs long, it would hold them as long. Any other outcome it sends before it marks
        the task finished, so a task it marked finished whose outcome has not come is DONE.
        Their log tails are lost; a message on_success() returned still comes, later.
        """
        finished = self._pool.claims(key).finished_so_far()  # before reading: see above
        self._take_in(key)
        for seq, execution in self._dispatcher.settled_up_to(key, finished):
            self._reported[key, seq] = execution.members[0]
            self._finished.append((execution, Attempt(execution.task, RunStatus.DONE)))
        if not self._dispatcher.loads[key].held:
            self._pool.holds_nothing(key)

    # --- children that end ----------------------------------------------------------------

    def _died(self, key: int) -> None:
        code = self._pool.exit_status(key)
        how = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
        message = f"the worker's child process died running this task ({how})"
        self._dispatcher.requeue(self._settle(key, Event.PROCESS_FAILURE, message), fast=False)

    def _timed_out(self, key: int) -> None:
        timeout = self.timeout_of(next(iter(self._dispatcher.loads[key].held.values())))
        message = f"timed out after {timeout:g}s; {self._pool.kill_tree(key).describe()}"
        self._dispatcher.requeue(self._settle(key, Event.TIMEOUT, message), fast=False)

    def _settle(self, key: int, event: str | None, message: str) -> list[Execution]:
        """A gone child's tasks: the one it was running fails; returns those never started.

        Outcomes it sent are read first. A task it finished whose outcome it still held was
        DONE: the child sends any other outcome before it marks the task finished.
        """
        self._take_in(key)
        handle = self._pool.remove(key)
        held = self._forget(key)
        started, finished, log_start = handle.claims.snapshot()
        if held and started < min(held):
            started = min(held)  # it died before its first task: blame that one
        unstarted = []
        for seq, execution in held.items():
            if seq <= finished:
                self._finished.append((execution, Attempt(execution.task, RunStatus.DONE)))
            elif seq == started:
                if event is not None:
                    logger.error("%s: %s", execution.task, message)
                    fire_event(execution.task, event, message)
                tail = self._pool.log_tail(handle, execution.members[0], log_start)
                outcome = Attempt(execution.task, RunStatus.FAILED, message, log_tail=tail)
                self._finished.append((execution, outcome))
                self._dispatcher.lost(execution.task)
            else:
                unstarted.append(execution)
        handle.close()
        return unstarted
