"""Task class helpers: Luigi's pipes.util decorators and functions (inherits, requires, ...)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipes.date_interval import DateInterval
from pipes.exceptions import TaskDefinitionError
from pipes.task import Task, flatten


def _copy_params(target: type[Task], sources: list[type[Task]]) -> None:
    own = {name for name, _ in target.get_params()}
    for source in sources:
        for name, param in source.get_params():
            if name not in own:
                setattr(target, name, param)
                own.add(name)
    target._params_cache = None


class inherits:  # luigi's decorator name, lowercase
    """Class decorator: give the class every parameter of the named task classes.

    Also adds clone_parent() (the first parent, with this task's parameters) and clone_parents().
    """

    def __init__(self, *tasks: type[Task], **named_tasks: type[Task]) -> None:
        self.tasks = [*tasks, *named_tasks.values()]
        if not self.tasks:
            raise TaskDefinitionError("@inherits needs at least one task class")

    def __call__(self, cls: type[Task]) -> type[Task]:
        parents = self.tasks
        _copy_params(cls, parents)

        def clone_parent(task: Task, **kwargs: Any) -> Task:
            return task.clone(cls=parents[0], **kwargs)

        def clone_parents(task: Task, **kwargs: Any) -> list[Task]:
            return [task.clone(cls=parent, **kwargs) for parent in parents]

        cls.clone_parent = clone_parent  # type: ignore[attr-defined]
        cls.clone_parents = clone_parents  # type: ignore[attr-defined]
        return cls


class requires:  # luigi's decorator name, lowercase
    """Class decorator: @inherits the tasks, and require them with this task's parameters."""

    def __init__(self, *tasks: type[Task], **named_tasks: type[Task]) -> None:
        self.inherit = inherits(*tasks, **named_tasks)

    def __call__(self, cls: type[Task]) -> type[Task]:
        cls = self.inherit(cls)
        single = len(self.inherit.tasks) == 1

        def requires_(task: Task) -> Any:
            return task.clone_parent() if single else task.clone_parents()  # type: ignore[attr-defined]

        cls.requires = requires_  # type: ignore[method-assign, assignment]
        return cls


def common_params(task_instance: Task, task_cls: type[Task]) -> dict[str, Any]:
    """The values of task_instance's parameters that task_cls also has, by name."""
    names = {name for name, _ in task_cls.get_params()}
    return {k: v for k, v in task_instance.param_kwargs.items() if k in names}


def copies(task_cls: type[Task]) -> Callable[[type[Task]], type[Task]]:
    """Class decorator: require task_cls (as @requires) and run() copies its output to ours.

    The copy goes line by line through the targets' open(), so formats apply on both sides.
    """

    def wrap(cls: type[Task]) -> type[Task]:
        cls = requires(task_cls)(cls)

        def run(task: Task) -> None:
            source, sink = task.input(), task.output()
            with source.open("r") as reader, sink.open("w") as writer:
                for line in reader:
                    writer.write(line)

        cls.run = run  # type: ignore[method-assign, assignment]
        return cls

    return wrap


def delegates(task_that_delegates: type[Task]) -> type[Task]:
    """Class decorator: the tasks from subtasks() run inside this task's run(), first.

    Their requirements become this task's; they are never scheduled on their own.
    """
    if not hasattr(task_that_delegates, "subtasks"):
        raise TaskDefinitionError(
            f"@delegates: {task_that_delegates.__name__} has no subtasks() method"
        )
    own_run = task_that_delegates.run

    def deps(task: Task) -> list[Task]:
        subtasks = flatten(task.subtasks())  # type: ignore[attr-defined]
        return flatten(task.requires()) + [d for sub in subtasks for d in sub.deps()]

    def run(task: Task) -> Any:
        for sub in flatten(task.subtasks()):  # type: ignore[attr-defined]
            sub.run()
        return own_run(task)

    task_that_delegates.deps = deps  # type: ignore[method-assign, assignment]
    task_that_delegates.run = run  # type: ignore[method-assign, assignment]
    return task_that_delegates


def _step_back(param: Any, value: Any) -> Any:
    if isinstance(value, DateInterval):
        return value.prev()
    step: Callable[[Any], Any] | None = getattr(param, "prev_in_enumeration", None)
    return step(value) if step is not None else None


def previous(task: Task) -> Task:
    """The same task one step earlier on its only date-like parameter."""
    moved = {}
    for name, param in task.get_params():
        earlier = _step_back(param, task.param_kwargs[name])
        if earlier is not None:
            moved[name] = earlier
    if len(moved) != 1:
        kind = "no" if not moved else "more than one"
        raise TaskDefinitionError(
            f"cannot find the previous {task.task_family}: it has {kind} date-like parameter"
        )
    return task.clone(**moved)


def get_previous_completed(task: Task, max_steps: int = 10) -> Task | None:
    """The closest earlier task (up to max_steps back) that is complete, or None."""
    current = task
    for _ in range(max_steps):
        current = previous(current)
        if current.complete():
            return current
    return None
