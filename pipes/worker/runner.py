"""Where executions run: inline in the worker, or in long-lived child processes.

Children take task after task (so many small tasks cost no fork each) and are recycled
after max_tasks_per_child tasks or when their memory grows past max_child_rss_mb. A task
past its timeout has its child's whole process group stopped (SIGTERM, then SIGKILL), and
the failure names the processes that had left the group; a child that dies mid-task
fails that task with its exit status. Either way nothing it half-wrote is published.

A family whose recent runs took under FAST_SECONDS has its tasks sent several at a time,
and a child may hold up to DEPTH of them, so it does not wait on the worker between two.
Any other task, and any task with a timeout, goes alone to an idle child. Tasks a child
has not started can be taken back: when it has sent nothing for STEAL_AFTER while another
child idles, and after finish_up() (SIGUSR1), when they come back as PENDING.
"""

from __future__ import annotations

import logging
import os
import select
import shutil
import signal
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipes.event import Event
from pipes.worker import child
from pipes.worker.capture import Tail, TailCapture
from pipes.worker.completion import TaskOutputs
from pipes.worker.execute import Attempt, Execution
from pipes.worker.handle import ChildHandle, ForkOptions
from pipes.worker.messages import FieldSet, RunStatus
from pipes.worker.tasklog import tail_of_file, task_log_path
from pipes.worker.walk import fire_event

logger = logging.getLogger("pipes.worker")
Finished = list[tuple[Execution, Attempt]]
RSS_CHECK_EVERY = 25  # tasks between looks at a child's memory (each look reads /proc)
FAST_SECONDS = 0.01  # a family whose recent runs took less is sent several tasks at a time
DEPTH = 16  # tasks of fast families a child may hold: one running, the others waiting
STEAL_AFTER = 0.1  # seconds a child may hold waiting tasks without news while another idles
REPORT_WITHIN = 0.05  # seconds: a DONE a silent child still holds is reported after this
LIVE_TAIL_EVERY = 5.0  # seconds between log tails of a task still running in a child
_IN = select.POLLIN | select.POLLHUP | select.POLLERR


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


class Runner:
    """Runs up to `workers` executions at once and reports each one's outcome."""

    def __init__(
        self,
        options: RunnerOptions,
        on_field: Callable[[str, str, Any], None],
        outputs: TaskOutputs | None = None,
        recheck: bool = True,
    ) -> None:
        self.options = options
        self.on_field = on_field  # (task id, field, value) from run() in a child
        self.outputs = outputs or TaskOutputs()  # children fork with what is cached so far
        self.recheck = recheck  # check completeness just before a task runs (in children)
        self._children: list[ChildHandle] = []
        self._by_fd: dict[int, ChildHandle] = {}
        self._poller = select.poll()
        self._outbox: deque[tuple[Execution, bool]] = deque()  # (execution, fast), not sent yet
        self._slow_waiting = 0  # executions in the outbox that must run alone
        self._finished: Finished = []
        self._held: dict[int, Execution] = {}  # by id: handed over, outcome not returned yet
        self._inline: Execution | None = None  # running in this process right now
        self._inline_tail: Tail | None = None  # its output so far
        self._isolate = options.workers > 1 or options.force_multiprocessing
        self._family_seconds: dict[type, float] = {}  # decaying max of recent run times
        self._expect_fast = False  # the last execution submitted could wait behind others
        self._finishing = False
        self._private_dir: str | None = None  # children's own log files, without log_dir
        self._forks = 0
        self._known: tuple[int, frozenset[str]] = (-1, frozenset())
        self._capture = TailCapture()  # inline runs' output tail, one handler for all

    def timeout_of(self, execution: Execution) -> float | None:
        """The task's own worker_timeout, else the configured default."""
        return execution.task.worker_timeout or self.options.timeout

    def has_room(self) -> bool:
        """Whether the worker should hand over another execution now."""
        if not self._isolate:
            return not self._outbox and not any(c.inflight for c in self._children)
        if self._expect_fast and not self._slow_waiting and len(self._outbox) < self._fast_room():
            return True
        return len(self._outbox) < self._idle_slots()

    def inline_tail(self) -> tuple[str, str] | None:
        """(task id, output so far) of the task running in this process, if any.

        Read from the keep-alive thread: joining the tail's chunks is atomic under the GIL."""
        execution, tail = self._inline, self._inline_tail
        text = tail.text() if tail is not None else None
        return (execution.members[0], text) if execution is not None and text else None

    def busy(self) -> list[Execution]:
        """Executions handed over and not finished: running, or waiting for a child."""
        return list(self._held.values())

    def submit(self, execution: Execution) -> None:
        """Start an execution: inline (finished on return), or queue it for a child."""
        if not self._isolate and self.timeout_of(execution) is None:
            self._inline = execution
            with self._capture as tail:
                self._inline_tail = tail
                try:
                    outcome = execution.step()
                finally:
                    self._inline_tail = None
            outcome.log_tail = tail.text()
            self._inline = None
            self._finished.append((execution, outcome))
            return
        fast = self._fast(execution)
        self._expect_fast = fast
        self._slow_waiting += not fast
        self._outbox.append((execution, fast))
        self._held[id(execution)] = execution

    def take_finished(self) -> Finished:
        """Outcomes already known (inline runs), without waiting for any child."""
        return self._hand_over()

    def _hand_over(self) -> Finished:
        finished, self._finished = self._finished, []
        for execution, _ in finished:
            self._held.pop(id(execution), None)
        return finished

    def wait(self, timeout: float | None = None) -> Finished:
        """Outcomes that are ready, waiting up to `timeout` (or the next task deadline)."""
        if self._finishing:
            self._give_back_unstarted()
        elif self._outbox:
            self._dispatch()
        if not self._finished:
            self._poll(timeout)
        return self._hand_over()

    def finish_up(self) -> None:
        """Start no more tasks; those not started come back as PENDING. Signal-handler safe."""
        self._finishing = True
        for slot in self._children:
            slot.shared.stop()

    def _fast(self, execution: Execution) -> bool:
        seconds = self._family_seconds.get(type(execution.task))
        return seconds is not None and seconds < FAST_SECONDS and not self.timeout_of(execution)

    def _idle_slots(self) -> int:
        idle = sum(1 for c in self._children if c.idle())
        return idle + self.options.workers - len(self._children)

    def _fast_room(self) -> int:
        """How many more fast tasks the children (and those not forked yet) may take."""
        room = DEPTH * (self.options.workers - len(self._children))
        for slot in self._children:
            if not slot.alone and not slot.retiring:
                room += DEPTH - len(slot.inflight)
        return room

    # --- sending work ---------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Send queued executions to children: fast ones several to a child, others alone."""
        room = {slot: self._room_in(slot) for slot in self._children}
        batches: dict[ChildHandle, list[Execution]] = {}
        while self._outbox:
            execution, fast = self._outbox[0]
            slot = self._fast_slot(room) if fast else self._idle_slot(room, batches)
            if slot is None:
                break
            self._outbox.popleft()
            batches.setdefault(slot, []).append(execution)
            if fast:
                room[slot] -= 1
            else:
                self._slow_waiting -= 1
                slot.alone, room[slot] = True, 0
        for slot, executions in batches.items():
            self._send(slot, executions)

    def _room_in(self, slot: ChildHandle) -> int:
        if slot.alone or slot.retiring:
            return 0
        return min(DEPTH - len(slot.inflight), self.options.max_tasks_per_child - slot.sent)

    def _fast_slot(self, room: dict[ChildHandle, int]) -> ChildHandle | None:
        """The child with the most room for fast tasks; a new one while it would not be idle."""
        best = max(room, key=room.__getitem__, default=None)
        if len(self._children) < self.options.workers and (best is None or room[best] < DEPTH):
            best = self._fork()
            room[best] = min(DEPTH, self.options.max_tasks_per_child)
        return best if best is not None and room[best] > 0 else None

    def _idle_slot(
        self, room: dict[ChildHandle, int], batches: dict[ChildHandle, list[Execution]]
    ) -> ChildHandle | None:
        """An idle child for a task that runs alone, forked if need be."""
        for slot in self._children:
            if slot.idle() and slot not in batches and room[slot] > 0:
                return slot
        if len(self._children) < self.options.workers:
            slot = self._fork()
            room[slot] = 1
            return slot
        return None

    def _send(self, slot: ChildHandle, executions: list[Execution]) -> None:
        if slot.alone and len(executions) == 1 and not slot.inflight:
            timeout = self.timeout_of(executions[0])
            slot.deadline = time.monotonic() + timeout if timeout else None
        slot.send(executions)
        self._watch_out(slot)

    def _watch_out(self, slot: ChildHandle) -> None:
        """Ask poll to say when the child's pipe has room, while it has frames to take."""
        if slot.outbuf and not slot.polling_out:
            self._poller.register(slot.send_fd, select.POLLOUT)
        elif not slot.outbuf and slot.polling_out:
            self._poller.unregister(slot.send_fd)
        slot.polling_out = bool(slot.outbuf)

    def _fork(self) -> ChildHandle:
        slot = ChildHandle.fork(self._fork_options(), self._children)
        self._children.append(slot)
        if self._finishing:  # SIGUSR1 came while we forked
            slot.shared.stop()
        slot.rss_check_at = RSS_CHECK_EVERY
        for fd in (slot.reader.fd, slot.send_fd, slot.process.sentinel):
            self._by_fd[fd] = slot
        self._poller.register(slot.reader.fd, _IN)
        self._poller.register(slot.process.sentinel, _IN)
        return slot

    def _fork_options(self) -> ForkOptions:
        size = len(child.known_tasks)
        if size != self._known[0]:  # worker.graph.tasks only grows
            self._known = (size, frozenset(child.known_tasks))
        private_log = None
        if self.options.log_dir is not None:
            Path(self.options.log_dir).mkdir(parents=True, exist_ok=True)
        else:
            if self._private_dir is None:
                self._private_dir = tempfile.mkdtemp(prefix="pipes-logs-")
            self._forks += 1
            private_log = os.path.join(self._private_dir, f"child-{self._forks}.log")
        options = self.options
        return ForkOptions(
            options.check_outputs,
            options.log_dir,
            private_log,
            self._known[1],
            self.recheck,
            self.outputs,
        )

    # --- waiting for outcomes -------------------------------------------------------------

    def _poll(self, timeout: float | None) -> None:
        if not any(c.inflight for c in self._children):
            return
        wake = [c.deadline for c in self._children if c.deadline is not None]
        wake += [c.heard + STEAL_AFTER for c in self._stalled()]
        wake += [c.heard + REPORT_WITHIN for c in self._children if c.looked != c.heard]
        wake += [c.tail_at for c in self._children if c.inflight]
        if wake:
            until = max(0.0, min(wake) - time.monotonic())
            timeout = until if timeout is None else min(timeout, until)
        for fd, _ in self._poller.poll(None if timeout is None else timeout * 1000):
            slot = self._by_fd.get(fd)
            if slot is None:
                continue  # gone while an earlier event was handled
            if fd == slot.send_fd:
                slot.flush()
                self._watch_out(slot)
            elif fd == slot.reader.fd:
                self._read(slot)
            elif slot.process.poll() is not None:
                self._died(slot)
        self._check_clocks()

    def _check_clocks(self) -> None:
        now = time.monotonic()
        for slot in [c for c in self._children if c.deadline is not None and now >= c.deadline]:
            self._timed_out(slot)
        for slot in list(self._children):
            if slot.looked != slot.heard and now >= slot.heard + REPORT_WITHIN:
                self._report_held(slot)
        for slot in self._stalled():
            if now >= slot.heard + STEAL_AFTER:
                self._outbox.extendleft((e, True) for e in reversed(slot.take_back()))
                slot.alone = True  # nothing more waits behind its long task
        for slot in self._children:
            if slot.inflight and now >= slot.tail_at:
                self._send_live_tail(slot, now)

    def _send_live_tail(self, slot: ChildHandle, now: float) -> None:
        """Every LIVE_TAIL_EVERY seconds, a running task's output so far (for the status page)."""
        first = not slot.tail_at
        slot.tail_at = now + LIVE_TAIL_EVERY
        started, finished, log_start = slot.shared.after_death()
        execution = slot.inflight.get(started)
        if first or execution is None or started <= finished:
            return  # nothing has run long enough to need it
        tail = self._tail_of(slot, execution, log_start)
        if tail is not None and tail != slot.last_tail:
            slot.last_tail = tail
            self.on_field(execution.members[0], "log_tail", tail)

    def _read(self, slot: ChildHandle) -> None:
        self._take_in(slot)
        if slot.reader.closed:
            return  # its sentinel fires next
        if slot.done >= slot.rss_check_at:
            slot.rss_check_at = slot.done + RSS_CHECK_EVERY
            slot.retiring = slot.retiring or slot.too_big(self.options.max_child_rss_mb)
        if slot.sent >= self.options.max_tasks_per_child:
            slot.retiring = True
        if slot.retiring and not slot.inflight:
            self._retire(slot)

    def _take_in(self, slot: ChildHandle) -> None:
        """Handle every message the child has sent."""
        seconds_of, finished = self._family_seconds, self._finished
        for item in slot.messages():
            if isinstance(item, FieldSet):
                if item.seq in slot.inflight:
                    self.on_field(slot.inflight[item.seq].members[0], item.name, item.value)
                continue
            execution = slot.inflight.pop(item.seq, None)
            if execution is None:  # reported DONE already (_report_held): only the message
                if item.message:  # what on_success() returned
                    self.on_field(slot.early.pop(item.seq), "status_message", item.message)
                continue
            task, seconds = execution.task, item.seconds
            decayed = 0.75 * seconds_of.get(type(task), 0.0)
            seconds_of[type(task)] = seconds if seconds > decayed else decayed
            deps = [ref.load(child.known_tasks) for ref in item.new_deps]
            attempt = Attempt(
                task, item.status, item.error, deps, seconds, item.log_tail, item.message
            )
            finished.append((execution, attempt))
            slot.done += 1
        if not slot.inflight:
            slot.alone, slot.deadline = False, None
        if slot.reader.closed and self._by_fd.pop(slot.reader.fd, None) is not None:
            self._poller.unregister(slot.reader.fd)

    def _report_held(self, slot: ChildHandle) -> None:
        """Report DONE the tasks a silent child finished but holds the outcomes of.

        A child holds a few DONE outcomes to send them together; if the task after them
        runs long, it would hold them as long. Any other outcome it sends before it marks
        the task finished, so a task it marked finished whose outcome has not come is DONE.
        Their log tails are lost; a message on_success() returned still comes, later.
        """
        slot.looked = slot.heard
        finished = slot.shared.finished_so_far()  # before reading: see the docstring
        self._take_in(slot)
        for seq in [seq for seq in slot.inflight if seq <= finished]:
            execution = slot.inflight.pop(seq)
            slot.early[seq] = execution.members[0]
            self._finished.append((execution, Attempt(execution.task, RunStatus.DONE)))
            slot.done += 1
        if not slot.inflight:
            slot.alone, slot.deadline = False, None

    def _stalled(self) -> list[ChildHandle]:
        """Children holding tasks they have not started, while another child could run them."""
        if self._outbox or self._finishing or not self._idle_slots():
            return []
        return [c for c in self._children if len(c.inflight) > 1 and not c.alone]

    def _give_back_unstarted(self) -> None:
        """After finish_up: what no child started goes back to the worker as PENDING."""
        executions = [e for e, _ in self._outbox]
        self._outbox.clear()
        self._slow_waiting = 0
        for slot in self._children:
            if slot.inflight:
                executions += slot.take_back()
        self._finished += [(e, Attempt(e.task, RunStatus.PENDING)) for e in executions]

    # --- children that end ----------------------------------------------------------------

    def _died(self, slot: ChildHandle) -> None:
        slot.process.join(1.0)
        code = slot.process.exitcode
        how = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
        message = f"the worker's child process died running this task ({how})"
        self._redo(self._settle(slot, Event.PROCESS_FAILURE, message))

    def _timed_out(self, slot: ChildHandle) -> None:
        timeout = self.timeout_of(next(iter(slot.inflight.values())))
        message = f"timed out after {timeout:g}s; {slot.kill_tree().describe()}"
        self._redo(self._settle(slot, Event.TIMEOUT, message))

    def _redo(self, unstarted: list[Execution]) -> None:
        """Tasks a lost child never started: another child runs them."""
        self._outbox.extendleft((e, False) for e in reversed(unstarted))
        self._slow_waiting += len(unstarted)

    def _settle(self, slot: ChildHandle, event: str | None, message: str) -> list[Execution]:
        """A gone child's tasks: the one it was running fails; returns those never started.

        Outcomes it sent are read first. A task it finished whose outcome it still held was
        DONE: the child sends any other outcome before it marks the task finished.
        """
        self._take_in(slot)
        self._remove(slot)
        started, finished, log_start = slot.shared.after_death()
        if slot.inflight and started < min(slot.inflight):
            started = min(slot.inflight)  # it died before its first task: blame that one
        unstarted = []
        for seq, execution in slot.inflight.items():
            if seq <= finished:
                self._finished.append((execution, Attempt(execution.task, RunStatus.DONE)))
            elif seq == started:
                if event is not None:
                    logger.error("%s: %s", execution.task, message)
                    fire_event(execution.task, event, message)
                tail = self._tail_of(slot, execution, log_start)
                outcome = Attempt(execution.task, RunStatus.FAILED, message, log_tail=tail)
                self._finished.append((execution, outcome))
                self._family_seconds[type(execution.task)] = STEAL_AFTER
            else:
                unstarted.append(execution)
        slot.inflight.clear()
        slot.close()
        return unstarted

    def _tail_of(self, slot: ChildHandle, execution: Execution, start: int) -> str | None:
        if self.options.log_dir is not None:
            return tail_of_file(task_log_path(self.options.log_dir, execution.members[0]), start)
        return tail_of_file(slot.log_path) if slot.log_path is not None else None

    def _remove(self, slot: ChildHandle) -> None:
        self._children.remove(slot)
        for fd in (slot.reader.fd, slot.send_fd, slot.process.sentinel):
            if self._by_fd.pop(fd, None) is not None and (fd != slot.send_fd or slot.polling_out):
                self._poller.unregister(fd)

    def _retire(self, slot: ChildHandle) -> None:
        self._remove(slot)
        slot.ask_to_stop()
        slot.close()

    def stop(self, sig: int | None = None) -> Finished:
        """Stop every child; with `sig`, interrupt running tasks (they fail) first.

        With `sig`, executions handed over but never started come back as PENDING.
        """
        if sig is not None:
            message = f"stopped by {signal.Signals(sig).name} while running"
            if self._inline is not None:  # interrupted inside run()
                stopped = Attempt(self._inline.task, RunStatus.FAILED, message)
                self._finished.append((self._inline, stopped))
                self._inline = None
            unstarted = [e for e, _ in self._outbox]
            self._outbox.clear()
            for slot in [c for c in self._children if c.inflight]:
                slot.kill(signal.SIGTERM)  # children ignore SIGINT: the worker decides
                unstarted += self._settle(slot, None, message)
            self._finished += [(e, Attempt(e.task, RunStatus.PENDING)) for e in unstarted]
        for slot in [c for c in self._children if not c.inflight]:
            self._retire(slot)
        if not self._children and self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None
        return self._hand_over()
