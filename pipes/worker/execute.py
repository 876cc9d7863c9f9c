"""Running one task's run() in this process, including resuming dynamic dependencies."""

from __future__ import annotations

import logging
import time
import traceback
import types
from dataclasses import dataclass, field
from typing import Any

from pipes.event import Event
from pipes.task import DynamicRequirements, Task, flatten, getpaths, is_external
from pipes.worker.completion import TaskOutputs
from pipes.worker.messages import RunStatus
from pipes.worker.walk import fire_event

logger = logging.getLogger("pipes.worker")


@dataclass(slots=True)
class Attempt:
    """How one attempt at running a task ended (summary.Outcome is the run's verdict on a task)."""

    task: Task
    status: RunStatus
    error: str | None = None  # why it failed (FAILED only)
    new_deps: list[Task] = field(default_factory=list)  # SUSPENDED: what it waits on
    seconds: float = 0.0
    log_tail: str | None = None  # the end of what the task printed, for the status page
    message: str | None = None  # what on_success() returned (DONE only)


@dataclass
class Execution:
    """A task being run, which may be suspended on dynamic dependencies and resumed later."""

    task: Task
    check_outputs: bool = True
    members: list[str] = field(default_factory=list)  # scheduler task ids this run completes
    # False when no other worker can have run it since the walk (the embedded scheduler)
    recheck: bool = True
    outputs: TaskOutputs = field(default_factory=TaskOutputs)  # the run's cached output()
    _generator: types.GeneratorType[Any, Any, Any] | None = None
    _waiting_on: Any = None
    _started: float = 0.0
    _active: float = 0.0  # seconds spent inside run(), not waiting on dynamic dependencies

    def __post_init__(self) -> None:
        if not self.members:
            self.members = [self.task.task_id]

    def step(self) -> Attempt:
        """Run (or resume) the task until it finishes, fails, or yields incomplete tasks."""
        task = self.task
        self._started = time.monotonic()
        try:
            if self._generator is None:
                if self.check_outputs and self.recheck and _done_already(task, self.outputs):
                    # Another worker finished it after our walk: running again would redo it.
                    return Attempt(task, RunStatus.DONE)
                if is_external(task):  # [worker] retry_external_tasks: check it once more
                    return self._external()
                fire_event(task, Event.START)
                result = task.run()
                if not isinstance(result, types.GeneratorType):
                    return self._finished()
                self._generator, send = result, None
            else:
                send = getpaths(self._waiting_on)
            return self._drive(send)
        except (Exception, SystemExit) as err:  # sys.exit() in run() fails the task, not the run
            return self._failed(err)

    def _drive(self, send: Any) -> Attempt:
        assert self._generator is not None
        while True:
            try:
                requested = self._generator.send(send)
            except StopIteration:
                return self._finished()
            wanted = [t for t in flatten(requested) if isinstance(t, Task)]
            if len(wanted) != len(flatten(requested)):
                raise TypeError(f"run() of {self.task} yielded something that is not a Task")
            self._waiting_on = requested
            if not _all_complete(requested, wanted):
                self._active += time.monotonic() - self._started
                return Attempt(self.task, RunStatus.SUSPENDED, new_deps=wanted)
            send = getpaths(requested)

    def _external(self) -> Attempt:
        """DONE if the external task's data has appeared; else FAILED, to be retried."""
        if self.task.complete():
            return Attempt(self.task, RunStatus.DONE)
        missing = [str(t) for t in self.outputs.of(self.task) if not t.exists()]
        error = f"missing external data for {self.task}: {', '.join(missing)}"
        logger.warning("%s (retry_external_tasks: checked again later)", error)
        return Attempt(self.task, RunStatus.FAILED, error=error)

    def _finished(self) -> Attempt:
        task = self.task
        if self.check_outputs and _outputs_missing(task, self.outputs):
            missing = [str(t) for t in self.outputs.of(task) if not t.exists()]
            raise_text = f"run() of {task} returned but its outputs are missing: {missing}"
            return self._failed(RuntimeError(raise_text))
        seconds = self._active + time.monotonic() - self._started
        message = task.on_success()
        fire_event(task, Event.SUCCESS)
        fire_event(task, Event.PROCESSING_TIME, seconds)
        return Attempt(task, RunStatus.DONE, seconds=seconds, message=message)

    def _failed(self, err: BaseException) -> Attempt:
        task = self.task
        logger.error("%s failed", task, exc_info=err)
        text = "".join(traceback.format_exception(err))
        try:
            custom = task.on_failure(err)
        except Exception:
            logger.exception("on_failure of %s raised; ignored", task)
            custom = None
        fire_event(task, Event.FAILURE, err)
        seconds = self._active + time.monotonic() - self._started
        return Attempt(task, RunStatus.FAILED, error=custom or text, seconds=seconds)


def _done_already(task: Task, outputs: TaskOutputs) -> bool:
    """Whether the task has outputs and is complete: run by someone else since the walk."""
    if type(task).complete is Task.complete:
        targets = outputs.of(task)
        return bool(targets) and all(target.exists() for target in targets)
    if outputs.free(task) == []:  # e.g. a WrapperTask: complete() would ask all its deps
        return False
    # complete() first: it usually asks output() itself, so ours is asked only when needed
    return bool(task.complete()) and bool(outputs.of(task))


def _outputs_missing(task: Task, outputs: TaskOutputs) -> bool:
    """Whether run() returned without completing a task that has outputs."""
    if type(task).complete is Task.complete:
        targets = outputs.of(task)
        return bool(targets) and not all(target.exists() for target in targets)
    if outputs.free(task) == []:  # e.g. a WrapperTask: a task without outputs is not checked
        return False
    try:
        done = task.complete()
    except Exception:
        if not outputs.of(task):  # a task without outputs is not checked at all
            return False
        raise
    return not done and bool(outputs.of(task))


def _all_complete(requested: Any, wanted: list[Task]) -> bool:
    """Whether every yielded task is complete, by a DynamicRequirements' own check if given."""
    if isinstance(requested, DynamicRequirements):
        return requested.complete()
    return all(task.complete() for task in wanted)
