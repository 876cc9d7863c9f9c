"""Deciding which tasks are complete, in bulk: one listing per directory, checks in parallel.

Tasks that keep the default complete() ("all outputs exist") have their outputs checked
together through FileSystem.exists_many, so 5,000 targets in one directory cost one listing.
Tasks with their own complete() are checked on daemon threads (they often wait on a network),
each given `timeout` seconds: a check that hangs is abandoned (its thread never blocks the
exit) and answers CompletionTimeout, a scheduling error for that task.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from pipes.exceptions import CompletionTimeout
from pipes.target import Target, targets_exist
from pipes.task import Task, WrapperTask, flatten

logger = logging.getLogger("pipes.worker")


def _default_complete(task: Task) -> bool:
    return type(task).complete is Task.complete


def _bulk_checked(task: Task) -> bool:
    # __func__: the classmethod's function, to tell an override from the inherited one
    return type(task).bulk_complete.__func__ is not Task.bulk_complete.__func__  # type: ignore[attr-defined]


def _parameter_tuple(task: Task) -> object:
    """What bulk_complete receives for a task: its one value, or a tuple of them in order."""
    values = tuple(task.param_kwargs[name] for name, _ in task.get_params())
    return values[0] if len(values) == 1 else values


def _wrapper_complete(task: Task) -> bool:
    return isinstance(task, WrapperTask) and type(task).complete is WrapperTask.complete


class TaskOutputs:
    """Each task's flattened output(), asked once per task for a whole run.

    output() of a task instance is deterministic within a run (Luigi's model too), and it
    may be slow (a remote listing): the walk, the checks around run() and the summary share
    one answer. complete() is never cached here: it is what changes when a task runs.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, list[Target]] = {}

    def of(self, task: Task) -> list[Target]:
        """flatten(task.output()), from the first time it was asked this run; may raise."""
        found = self._by_id.get(task.task_id)
        if found is None:
            found = self._by_id[task.task_id] = flatten(task.output())
        return found

    def free(self, task: Task) -> list[Target] | None:
        """The task's outputs when knowing them calls no user code (cached, or the default
        output()); else None."""
        found = self._by_id.get(task.task_id)
        if found is None and type(task).output is Task.output:
            found = self.of(task)
        return found


class CompletionChecker:
    """Answers task.complete() for a run, prefetching many answers at once.

    Only positive answers outlive a walk: a task found incomplete may be run meanwhile.
    `timeout` (seconds, None for none) bounds each custom complete() call.
    """

    def __init__(
        self,
        concurrency: int = 4,
        timeout: float | None = 600.0,
        outputs: TaskOutputs | None = None,
    ) -> None:
        self.concurrency = concurrency
        self.timeout = timeout
        self.outputs = outputs or TaskOutputs()
        self._known: dict[str, bool | BaseException] = {}
        self._deps: dict[str, list[Task]] = {}
        self._hung: dict[str, CompletionTimeout] = {}  # never asked again: the check still runs
        self._pool: _CheckPool | None = None  # threads start with the first check

    def deps(self, task: Task) -> list[Task]:
        """task.deps(), asked once per task per walk (requires() may be costly)."""
        found = self._deps.get(task.task_id)
        if found is None:
            found = self._deps[task.task_id] = task.deps()
        return found

    def complete(self, task: Task) -> bool:
        """task.complete(), from the prefetched answers when there is one; may raise."""
        answer = self._known.get(task.task_id)
        if answer is None:
            answer = self._compute(task)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def _compute(self, task: Task) -> bool | BaseException:
        if _default_complete(task):  # outputs' existence: checked here, as in _prefetch_outputs
            self._known[task.task_id] = answer = self._outputs_exist(task)
            return answer
        if not _wrapper_complete(task):
            self._check_all([task])
            return self._known[task.task_id]
        try:
            deps = self.deps(task)
        except Exception as err:
            self._known[task.task_id] = err
            return err
        # A requirement whose check failed makes the wrapper incomplete, not broken: the walk
        # then visits that requirement, which reports its own error, and runs the others.
        answer = all(self._compute_known(dep) is True for dep in deps)
        self._known[task.task_id] = answer
        return answer

    def _compute_known(self, task: Task) -> bool | BaseException:
        answer = self._known.get(task.task_id)
        return self._compute(task) if answer is None else answer

    def prefetch(self, tasks: Iterable[Task]) -> None:
        """Work out completeness of many tasks together (errors are kept per task)."""
        todo = {t.task_id: t for t in tasks if t.task_id not in self._known}
        if not todo:
            return
        wrappers = [t for t in todo.values() if _wrapper_complete(t)]
        for wrapper in wrappers:  # a wrapper is complete when its requirements are
            try:
                self.prefetch(self.deps(wrapper))
            except Exception:  # complete() will meet the same error and keep it
                continue
        bulk = [t for t in todo.values() if _bulk_checked(t)]
        special = {t.task_id for t in wrappers + bulk}  # a set: no quadratic scan of wide DAGs
        plain = [t for t in todo.values() if _default_complete(t) and t.task_id not in special]
        custom = [t for t in todo.values() if not _default_complete(t) and t.task_id not in special]
        self._prefetch_bulk(bulk)
        self._prefetch_outputs(plain)
        self._prefetch_custom(custom)

    def _prefetch_bulk(self, tasks: list[Task]) -> None:
        """One bulk_complete call per class that defines it, for all its tasks at once."""
        by_class: dict[type[Task], list[Task]] = {}
        for task in tasks:
            by_class.setdefault(type(task), []).append(task)
        for cls, group in by_class.items():
            keys = [_parameter_tuple(task) for task in group]
            try:
                done = set(cls.bulk_complete(keys))
            except Exception as err:
                logger.debug("%s.bulk_complete failed (%s); asking each task", cls.__name__, err)
                continue
            for task, key in zip(group, keys, strict=True):
                self._known[task.task_id] = key in done

    def _prefetch_outputs(self, tasks: list[Task]) -> None:
        outputs: dict[str, list[Target]] = {}
        for task in tasks:
            try:
                outputs[task.task_id] = self.outputs.of(task)
            except Exception as err:
                self._known[task.task_id] = err
        try:
            exists = targets_exist(t for targets in outputs.values() for t in targets)
        except Exception as err:  # answer task by task instead, so errors land on one task
            logger.debug("bulk existence check failed (%s); checking one by one", err)
            return
        for task_id, targets in outputs.items():
            self._known[task_id] = bool(targets) and all(exists[t] for t in targets)

    def _prefetch_custom(self, tasks: list[Task]) -> None:
        if tasks:
            self._check_all(tasks)

    def _check_all(self, tasks: list[Task]) -> None:
        """Answer each task's complete() on daemon threads, at most `concurrency` at once."""
        hung = [task for task in tasks if task.task_id in self._hung]
        for task in hung:
            self._known[task.task_id] = self._hung[task.task_id]
        if self._pool is None:
            self._pool = _CheckPool(self.concurrency, self.timeout)
        asked = [task for task in tasks if task.task_id not in self._hung]
        for task_id, answer in self._pool.answer(asked).items():
            self._known[task_id] = answer
            if isinstance(answer, CompletionTimeout):
                self._hung[task_id] = answer

    def _outputs_exist(self, task: Task) -> bool | BaseException:
        """What the default complete() answers, from the run's cached output()."""
        try:
            targets = self.outputs.of(task)
            return bool(targets) and all(target.exists() for target in targets)
        except Exception as err:
            return err

    def forget_negatives(self) -> None:
        """Drop 'incomplete' answers (and errors): they may change once tasks run."""
        self._known = {k: v for k, v in self._known.items() if v is True}
        self._deps = {}


def _answer(task: Task) -> bool | BaseException:
    try:
        return bool(task.complete())
    except Exception as err:
        return err


IDLE_EXIT = 5.0  # seconds an idle check thread waits for more work before it ends


@dataclass(eq=False)
class _Batch:
    """One prefetch group: the answers come in here, by task id."""

    size: int
    answers: dict[str, bool | BaseException] = field(default_factory=dict)


class _CheckPool:
    """Up to `size` daemon threads that call complete(); a call past `timeout` is abandoned.

    Daemon threads, not a ThreadPoolExecutor: its threads are joined at exit, so a hung
    complete() would keep Ctrl-C and SIGTERM from ending the process. A stuck thread is
    replaced; idle ones end after IDLE_EXIT seconds, so a finished run leaves none behind.
    """

    def __init__(self, size: int, timeout: float | None) -> None:
        self.size = max(1, size)
        self.timeout = timeout if timeout and timeout > 0 else None
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # threads wait here for tasks
        self._done = threading.Condition(self._lock)  # the caller waits here for answers
        self._todo: collections.deque[tuple[Task, _Batch]] = collections.deque()
        self._running: dict[str, tuple[float, Task, _Batch]] = {}  # task id -> its job
        self._threads = 0  # threads serving, idle ones included, abandoned ones not

    def answer(self, tasks: list[Task]) -> dict[str, bool | BaseException]:
        """Every task's complete() (or the error it raised, or CompletionTimeout)."""
        batch = _Batch(len(tasks))
        with self._lock:
            self._todo.extend((task, batch) for task in tasks)
            for _ in range(min(self.size, len(self._todo)) - self._threads):
                self._start_thread()
            self._work.notify(len(tasks))
            try:
                while len(batch.answers) < batch.size:
                    self._done.wait(self._expire_overdue())
            finally:  # also on Ctrl-C: what was not started is not started later
                self._todo.clear()
        return batch.answers

    def _start_thread(self) -> None:
        self._threads += 1
        threading.Thread(target=self._serve, name="pipes-complete", daemon=True).start()

    def _expire_overdue(self) -> float:
        """Give up on checks past the timeout; seconds until the next one is due."""
        if self.timeout is None:
            return 1.0  # wake now and then all the same
        now, wait = time.monotonic(), 1.0
        for task_id, (started, task, batch) in list(self._running.items()):
            left = started + self.timeout - now
            if left > 0:
                wait = min(wait, left)
                continue
            del self._running[task_id]
            batch.answers[task_id] = CompletionTimeout(
                f"complete() of {task} did not return within {self.timeout:g}s"
                " ([worker] check_complete_timeout)"
            )
            self._threads -= 1  # that thread is stuck: another takes the remaining tasks
            if self._todo and self._threads < self.size:
                self._start_thread()
        return wait

    def _serve(self) -> None:
        while True:
            with self._lock:
                while not self._todo:
                    if not self._work.wait(IDLE_EXIT) and not self._todo:
                        self._threads -= 1
                        return
                task, batch = self._todo.popleft()
                job = (time.monotonic(), task, batch)
                self._running[task.task_id] = job
            answer = _answer(task)
            with self._lock:
                if self._running.get(task.task_id) is not job:
                    return  # timed out meanwhile: abandoned, and already replaced
                del self._running[task.task_id]
                batch.answers[task.task_id] = answer
                self._done.notify()
