"""Where executions run: inline in the worker, or in long-lived child processes.

Children take task after task (so many small tasks cost no fork each) and are recycled
after max_tasks_per_child tasks or when their memory grows past max_child_rss_mb. A task
past its timeout has its child's whole process group killed; a child that dies mid-task
fails that task with its exit status. Either way nothing it half-wrote is published.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from pipes.event import Event
from pipes.worker import child
from pipes.worker.execute import Execution, Outcome
from pipes.worker.walk import fire_event

logger = logging.getLogger("pipes.worker")
Finished = list[tuple[Execution, Outcome]]
RSS_CHECK_EVERY = 25  # tasks between looks at a child's memory (each look reads /proc)


@dataclass(frozen=True)
class RunnerOptions:
    """How tasks are isolated; built from [worker] config."""

    workers: int = 1
    force_multiprocessing: bool = False
    timeout: float | None = None  # default per-task timeout in seconds
    max_tasks_per_child: int = 1000
    max_child_rss_mb: float = 2048.0
    log_dir: str | None = None  # per-task stdout/stderr files; None keeps the worker's
    check_outputs: bool = True


@dataclass
class _Child:
    process: Any
    conn: Connection
    execution: Execution | None = None
    deadline: float | None = None
    tasks_run: int = 0


class Runner:
    """Runs up to `workers` executions at once and reports each one's outcome."""

    def __init__(self, options: RunnerOptions, on_field: Callable[[str, str, Any], None]) -> None:
        self.options = options
        self.on_field = on_field  # (task id, field, value) from run() in a child
        self._children: list[_Child] = []
        self._finished: Finished = []
        self._inline: Execution | None = None  # running in this process right now
        self._context = multiprocessing.get_context("fork")

    def timeout_of(self, execution: Execution) -> float | None:
        """The task's own worker_timeout, else the configured default."""
        return execution.task.worker_timeout or self.options.timeout

    def has_room(self) -> bool:
        """Whether another execution can start now."""
        return len(self.busy()) < self.options.workers

    def busy(self) -> list[Execution]:
        """Executions running in children now."""
        return [c.execution for c in self._children if c.execution is not None]

    def submit(self, execution: Execution) -> None:
        """Start an execution: inline (finished on return) or in a free child."""
        isolate = self.options.workers > 1 or self.options.force_multiprocessing
        if not isolate and self.timeout_of(execution) is None:
            self._inline = execution
            outcome = execution.step()
            self._inline = None
            self._finished.append((execution, outcome))
            return
        slot = next((c for c in self._children if c.execution is None), None) or self._spawn()
        timeout = self.timeout_of(execution)
        slot.execution = execution
        slot.deadline = time.monotonic() + timeout if timeout else None
        slot.conn.send(("run", child.TaskRef.of(execution.task), self._log_path(execution)))

    def _log_path(self, execution: Execution) -> str | None:
        if self.options.log_dir is None:
            return None
        Path(self.options.log_dir).mkdir(parents=True, exist_ok=True)
        return os.path.join(self.options.log_dir, f"{execution.members[0]}.log")

    def _spawn(self) -> _Child:
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(
            target=child.child_main, args=(child_end, self.options.check_outputs), daemon=True
        )
        with warnings.catch_warnings():
            # The keep-alive thread runs while we fork. The child never touches the locks
            # that thread uses (scheduler client, HTTP connection), and logging re-creates
            # its locks at fork, so the deadlock this warns about cannot happen here.
            warnings.filterwarnings(
                "ignore", "This process .* is multi-threaded", DeprecationWarning
            )
            process.start()
        child_end.close()
        slot = _Child(process, parent_end)
        self._children.append(slot)
        return slot

    def take_finished(self) -> Finished:
        """Outcomes already known (inline runs), without waiting for any child."""
        finished, self._finished = self._finished, []
        return finished

    def wait(self, timeout: float | None = None) -> Finished:
        """Outcomes that are ready, waiting up to `timeout` (or the next task deadline)."""
        if not self._finished:
            self._poll(timeout)
        finished, self._finished = self._finished, []
        return finished

    def _poll(self, timeout: float | None) -> None:
        running = [c for c in self._children if c.execution is not None]
        if not running:
            return
        deadlines = [c.deadline for c in running if c.deadline is not None]
        if deadlines:
            until = max(0.0, min(deadlines) - time.monotonic())
            timeout = until if timeout is None else min(timeout, until)
        ready = set(
            wait([c.conn for c in running] + [c.process.sentinel for c in running], timeout)
        )
        for slot in running:
            if slot.conn in ready:
                self._read(slot)
            elif slot.process.sentinel in ready:
                self._died(slot)
            elif slot.deadline is not None and time.monotonic() >= slot.deadline:
                self._timed_out(slot)

    def _read(self, slot: _Child) -> None:
        try:
            message = slot.conn.recv()
        except (EOFError, OSError):
            self._died(slot)
            return
        execution = slot.execution
        assert execution is not None
        if message[0] == "field":
            self.on_field(execution.members[0], message[1], message[2])
            return
        result = message[1]
        new_deps = [ref.load() for ref in result["new_deps"]]
        outcome = Outcome(
            execution.task, result["status"], result["error"], new_deps, result.get("seconds", 0.0)
        )
        self._release(slot, outcome)
        slot.tasks_run += 1
        memory_check_due = slot.tasks_run % RSS_CHECK_EVERY == 0
        if slot.tasks_run >= self.options.max_tasks_per_child or (
            memory_check_due and self._too_big(slot)
        ):
            self._retire(slot)

    def _release(self, slot: _Child, outcome: Outcome) -> None:
        assert slot.execution is not None
        self._finished.append((slot.execution, outcome))
        slot.execution, slot.deadline = None, None

    def _died(self, slot: _Child) -> None:
        slot.process.join(1.0)
        code = slot.process.exitcode
        how = f"signal {signal.Signals(-code).name}" if code and code < 0 else f"exit code {code}"
        message = f"the worker's child process died running this task ({how})"
        self._fail(slot, Event.PROCESS_FAILURE, message)

    def _timed_out(self, slot: _Child) -> None:
        assert slot.execution is not None
        timeout = self.timeout_of(slot.execution)
        self._kill(slot)
        self._fail(slot, Event.TIMEOUT, f"timed out after {timeout:g}s; its processes were killed")

    def _fail(self, slot: _Child, event: str, message: str) -> None:
        execution = slot.execution
        assert execution is not None
        logger.error("%s: %s", execution.task, message)
        fire_event(execution.task, event, message)
        self._release(slot, Outcome(execution.task, "FAILED", message))
        self._children.remove(slot)
        slot.conn.close()

    def _kill(self, slot: _Child, sig: int = signal.SIGKILL, grace: float = 5.0) -> None:
        """Signal the child's whole process group; SIGKILL it if it outlives `grace`."""
        for current in (sig, signal.SIGKILL):
            try:
                os.killpg(slot.process.pid, current)
            except (ProcessLookupError, PermissionError):
                slot.process.kill()
            slot.process.join(grace)
            if slot.process.exitcode is not None:
                return

    def _too_big(self, slot: _Child) -> bool:
        try:
            pages = int(Path(f"/proc/{slot.process.pid}/statm").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            return False
        return pages * os.sysconf("SC_PAGE_SIZE") > self.options.max_child_rss_mb * 2**20

    def _retire(self, slot: _Child) -> None:
        self._children.remove(slot)
        try:
            slot.conn.send(("stop",))
        except OSError:
            pass
        slot.conn.close()
        slot.process.join(5.0)

    def stop(self, sig: int | None = None) -> Finished:
        """Stop every child; with `sig`, interrupt running tasks (they fail) first."""
        finished: Finished = []
        if self._inline is not None and sig is not None:  # interrupted inside run()
            message = f"stopped by {signal.Signals(sig).name} while running"
            finished.append((self._inline, Outcome(self._inline.task, "FAILED", message)))
            self._inline = None
        for slot in list(self._children):
            if slot.execution is not None and sig is not None:
                self._kill(slot, signal.SIGTERM)  # children ignore SIGINT: the worker decides
                message = f"stopped by {signal.Signals(sig).name} while running"
                finished.append((slot.execution, Outcome(slot.execution.task, "FAILED", message)))
                self._children.remove(slot)
            elif slot.execution is None:
                self._retire(slot)
        return finished
