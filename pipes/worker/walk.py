"""The DAG walk: from the requested tasks, find what is complete, missing or to be run.

Complete tasks are not expanded (their requirements are not needed), so a re-run of a
finished pipeline checks only the requested tasks' outputs.
"""

from __future__ import annotations

import logging
import math
import traceback
from dataclasses import dataclass, field
from typing import Any

from pipes.config import get_config
from pipes.event import Event
from pipes.exceptions import CompletionTimeout, PipesError
from pipes.scheduler.model import Status
from pipes.task import Task, is_external
from pipes.worker.capture import valid_text
from pipes.worker.completion import CompletionChecker

logger = logging.getLogger("pipes.worker")


@dataclass
class WalkResult:
    """What a walk found, keyed by task id, plus the task dicts to send to the scheduler."""

    tasks: dict[str, Task] = field(default_factory=dict)
    deps: dict[str, list[str]] = field(default_factory=dict)
    complete: set[str] = field(default_factory=set)
    missing_external: set[str] = field(default_factory=set)
    broken: dict[str, str] = field(default_factory=dict)  # task id -> error text
    disabled: set[str] = field(default_factory=set)  # Task.disabled: added, never run
    specs: list[dict[str, Any]] = field(default_factory=list)

    def merge(self, other: WalkResult) -> None:
        """Fold a later walk (e.g. of dynamic dependencies) into this one."""
        self.tasks.update(other.tasks)
        self.deps.update(other.deps)
        self.complete |= other.complete
        self.missing_external |= other.missing_external
        self.broken.update(other.broken)
        self.disabled |= other.disabled


def task_spec(task: Task, status: Status, deps: list[str] | None = None) -> dict[str, Any]:
    """The JSON-shaped description of a task that add_tasks takes."""
    spec: dict[str, Any] = {
        "task_id": task.task_id,
        "family": task.task_family,
        "module": type(task).__module__,
        "params": task.to_str_params(only_public=True),
        "status": str(status),
        "runnable": not is_external(task),
        "priority": task.priority,
        "resources": task.process_resources(),
    }
    if deps is not None:
        spec["deps"] = deps
    batch_params = [name for name, param in task.get_params() if param.batch_method is not None]
    if batch_params:
        spec["batch_params"] = batch_params
        if math.isfinite(task.max_batch_size):
            spec["max_batch_size"] = int(task.max_batch_size)
    for name in ("retry_count", "retry_delay", "disable_window"):
        value = getattr(task, name)
        if value is not None:
            spec[name] = value
    owners = task.owner_addresses()
    if owners:
        spec["owners"] = list(owners)
    return spec


def fire_event(task: Task, event: str, *args: Any) -> None:
    try:
        task.trigger_event(event, task, *args)
    except Exception:
        logger.exception("event handler for %s on %s raised; ignored", event, task)


def walk(
    roots: list[Task],
    known: set[str] | frozenset[str] = frozenset(),
    checker: CompletionChecker | None = None,
) -> WalkResult:
    """Check and expand every task reachable from roots, skipping ids in `known`.

    Each task's requirements are checked for completeness together, before any is visited.
    """
    checker = checker or CompletionChecker()
    result = WalkResult()
    stack = list(reversed(roots))
    seen = set(known)
    checker.prefetch(roots)
    while stack:
        task = stack.pop()
        if task.task_id in seen:
            continue
        seen.add(task.task_id)
        result.tasks[task.task_id] = task
        deps = [dep for dep in _visit(task, result, checker) if dep.task_id not in seen]
        checker.prefetch(deps)
        stack.extend(reversed(deps))
    checker.forget_negatives()
    return result


def _visit(task: Task, result: WalkResult, checker: CompletionChecker) -> list[Task]:
    """Classify one task; returns the requirements still to walk."""
    try:
        if checker.complete(task):
            result.complete.add(task.task_id)
            result.specs.append(task_spec(task, Status.DONE))
            fire_event(task, Event.DEPENDENCY_PRESENT)
            return []
        if is_external(task):
            missing = [str(t) for t in checker.outputs.of(task) if not t.exists()]
            logger.warning("missing external data for %s: %s", task, ", ".join(missing))
            result.missing_external.add(task.task_id)
            spec = task_spec(task, Status.PENDING, [])
            # Luigi's [worker] retry_external_tasks: the worker checks it again when it "runs"
            spec["runnable"] = get_config().getboolean("worker", "retry_external_tasks", False)
            result.specs.append(spec)
            fire_event(task, Event.DEPENDENCY_MISSING)
            return []
        if getattr(task, "disabled", False):  # Luigi's Task.disabled: never run, nor its deps
            logger.warning("%s is disabled (Task.disabled): not run", task)
            result.disabled.add(task.task_id)
            spec = task_spec(task, Status.PENDING, [])
            spec["runnable"] = False
            result.specs.append(spec)
            return []
        deps = _checked_deps(task, checker)
    except Exception as err:
        logger.error("cannot schedule %s: %s", task, err, exc_info=not isinstance(err, PipesError))
        # A timeout has no useful traceback (the check still hangs elsewhere): its one line says it
        timed_out = isinstance(err, CompletionTimeout)
        text = str(err) if timed_out else traceback.format_exc()
        result.broken[task.task_id] = valid_text(text)
        spec = task_spec(task, Status.UNKNOWN, [])
        spec["error"] = result.broken[task.task_id]
        result.specs.append(spec)
        fire_event(task, Event.BROKEN_TASK, err)
        return []
    result.deps[task.task_id] = [dep.task_id for dep in deps]
    result.specs.append(task_spec(task, Status.PENDING, result.deps[task.task_id]))
    for dep in deps:
        fire_event(task, Event.DEPENDENCY_DISCOVERED, dep)
    return deps


def _checked_deps(task: Task, checker: CompletionChecker) -> list[Task]:
    deps = checker.deps(task)
    for dep in deps:
        if not isinstance(dep, Task):
            raise TypeError(f"requires() of {task} returned {dep!r}, which is not a Task")
    return deps
