"""Looking at a DAG without running it: the dependency tree with statuses, and a dry run."""

from __future__ import annotations

from pipes.config import get_config
from pipes.summary import Outcome, classify
from pipes.task import Task, is_external
from pipes.worker.completion import CompletionChecker
from pipes.worker.walk import walk


def _checker() -> CompletionChecker:
    """A checker whose custom complete() calls time out as a run's do, so a hung one can't
    hang `pipes deps` or `--dry-run` either."""
    timeout = get_config().getfloat("worker", "check_complete_timeout", 600.0) or None
    return CompletionChecker(timeout=timeout)


def _complete_now(checker: CompletionChecker, task: Task) -> bool:
    try:
        return checker.complete(task) is True
    except Exception:  # the walk lists it as broken; here it only means "not complete"
        return False


def _status(task: Task, checker: CompletionChecker) -> str:
    try:
        if checker.complete(task):
            return "complete"
        return "missing (external)" if is_external(task) else "incomplete"
    except Exception as err:
        return f"error: {type(err).__name__}: {err}"


def dependency_tree(root: Task) -> str:
    """Every task under root with [complete] / [incomplete] / ...; repeats are not expanded."""
    checker = _checker()
    lines: list[str] = []
    shown: set[str] = set()
    stack: list[tuple[Task, int]] = [(root, 0)]
    while stack:
        task, depth = stack.pop()
        checker.prefetch([task])
        again = task.task_id in shown
        note = " (shown above)" if again else ""
        lines.append(
            f"{'  ' * depth}{'└─ ' if depth else ''}[{_status(task, checker)}] {task}{note}"
        )
        if again:
            continue
        shown.add(task.task_id)
        try:
            deps = task.deps()
        except Exception as err:
            lines.append(f"{'  ' * (depth + 1)}└─ requires() raised {type(err).__name__}: {err}")
            continue
        checker.prefetch(deps)
        stack.extend((dep, depth + 1) for dep in reversed(deps))
    return "\n".join(lines)


def dry_run(root: Task) -> str:
    """What a run would do: the incomplete tasks it would run, and what blocks the rest."""
    checker = _checker()
    found = walk([root], checker=checker)
    outcomes = classify(found, {}, lambda task: _complete_now(checker, task))
    to_run = [found.tasks[t] for t, outcome in outcomes.items() if outcome == Outcome.NOT_RUN]
    blocked = [
        found.tasks[t]
        for t, outcome in outcomes.items()
        if outcome in (Outcome.UPSTREAM_FAILED, Outcome.UPSTREAM_MISSING)
    ]
    lines = [f"dry run: {len(to_run)} task{'' if len(to_run) == 1 else 's'} would run"]
    lines += [f"  - {task}" for task in to_run]
    if blocked:
        lines.append(f"waiting on missing data or broken tasks ({len(blocked)}):")
        lines += [f"  - {task}" for task in blocked]
    if found.missing_external:
        lines.append(f"missing external data ({len(found.missing_external)}):")
        lines += [f"  - {found.tasks[t]}" for t in found.missing_external]
    if found.broken:
        lines.append(f"cannot be scheduled ({len(found.broken)}):")
        lines += [f"  - {found.tasks[t]}" for t in found.broken]
    return "\n".join(lines)
