"""Read-only views of scheduler state for the API and the status page (no mutation here)."""

from __future__ import annotations

import heapq
import itertools
import operator
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pipes.scheduler.core import Scheduler
from pipes.scheduler.model import Status, TaskRecord

MAX_PAGE = 1000
MAX_GRAPH_NODES = 500
MAX_GRAPH_DEPTH = 50


UPSTREAM_FAILED = "UPSTREAM_FAILED"  # derived: pending behind a failed or disabled task
SORT_KEYS = ("updated", "task_id", "family", "status", "priority")  # ties go by task id
RECENT_FAILURES = 10
BY_ID = operator.attrgetter("task_id")
BY_UPDATED = operator.attrgetter("updated")


@dataclass(frozen=True)
class TaskQuery:
    """Filters, order and page of a task_list call."""

    status: str | None = None  # a Status, or UPSTREAM_FAILED
    family: str | None = None
    search: str | None = None  # case-insensitive substring of the task id
    sort: str = "-updated"  # a SORT_KEYS name, "-" first for descending
    limit: int = 100
    offset: int = 0


def task_list(
    core: Scheduler, query: TaskQuery, clock: Callable[[], float] | None = None
) -> dict[str, Any]:
    """One sorted page of the known tasks matching the query, with counts per family.

    Candidates come from the status and family indexes; only a search walks them all.
    `clock` times costly answers so they are reused (see TaskIndex.cached).
    """
    limit = max(0, min(query.limit, MAX_PAGE))
    offset = max(0, query.offset)
    if query.status == UPSTREAM_FAILED:
        failed = upstream_failed(core, clock)
        if query.family is not None:
            failed = failed & core.index.by_family.get(query.family, set())
        ids: set[str] | None = failed
        statuses: set[Status] | None = {Status.PENDING}
    else:
        status = Status(query.status) if query.status is not None else None
        ids = core.index.ids(status, query.family)
        statuses = {status} if status is not None else None
    tasks = core.tasks
    if ids is None:
        candidates: Iterable[TaskRecord] = (t for t in tasks.values() if t.known)
        total = sum(core.index.counts().values())
    else:
        candidates = (tasks[t] for t in ids)
        total = len(ids)
    if query.search:
        needle = query.search.lower()
        matching = [t for t in candidates if needle in t.task_id.lower()]
        candidates, total = matching, len(matching)
    stop = offset + limit
    descending, field = query.sort.startswith("-"), query.sort.removeprefix("-")
    if stop * 8 < total:  # an early page: a heap beats a full sort
        page = _top(list(candidates), field, descending, stop)[offset:]
    else:  # a deep page: the sorted list is kept, so paging on costs no sort each time
        query_key = (query.status, query.family, query.search, query.sort)
        ordered = core.index.cached(
            "sorted", lambda: _sorted(candidates, field, descending), query_key, clock
        )
        page = ordered[offset:stop]
    families = core.index.families(statuses)
    if query.status == UPSTREAM_FAILED:
        families = core.index.cached(
            "upstream_failed_families",
            lambda: Counter(tasks[t].family for t in upstream_failed(core, clock)),
            clock=clock,
        )
    return {
        "total": total,
        "offset": offset,
        "limit": limit,
        "tasks": [t.summary() for t in page],
        "families": [{"family": f, "count": n} for f, n in sorted(families.items())],
    }


def _sorted(tasks: Iterable[TaskRecord], field: str, descending: bool) -> list[TaskRecord]:
    # Two stable sorts, each on one plain value, beat one sort on (value, id) pairs.
    ordered = sorted(tasks, key=BY_ID, reverse=descending)
    if field != "task_id":
        ordered.sort(key=operator.attrgetter(field), reverse=descending)
    return ordered


def _top(tasks: list[TaskRecord], field: str, descending: bool, stop: int) -> list[TaskRecord]:
    """The first `stop` tasks by field, then id: a heap on the plain value, then the ties.

    Tasks added in one call share their `updated` time, so the value at the page's edge may
    be shared by many tasks outside the heap's pick: those are gathered and sorted by id.
    """
    key = operator.attrgetter(field)
    pick = heapq.nlargest if descending else heapq.nsmallest
    top = pick(stop, tasks, key=key)
    if not top:
        return top
    edge = key(top[-1])
    inside = [t for t in top if key(t) != edge]
    tied = [t for t in tasks if key(t) == edge]
    return (_sorted(inside, field, descending) + _sorted(tied, "task_id", descending))[:stop]


def counts(core: Scheduler) -> dict[str, int]:
    """Number of known tasks in each status."""
    return {str(status): count for status, count in core.counts.items()}


def upstream_failed(core: Scheduler, clock: Callable[[], float] | None = None) -> set[str]:
    """PENDING tasks that wait, directly or through other pending tasks, on a failed one.

    The walk visits only the failed tasks' pending dependents, and its answer is reused
    until some task changes status.
    """
    failed: set[str] = core.index.cached(
        "upstream_failed", lambda: _upstream_failed(core), clock=clock
    )
    return failed


def _upstream_failed(core: Scheduler) -> set[str]:
    found: set[str] = set()
    by_status = core.index.by_status
    stack = [*by_status[Status.FAILED], *by_status[Status.DISABLED]]
    while stack:
        for dependent_id in core.tasks[stack.pop()].dependents:
            dependent = core.tasks.get(dependent_id)
            if dependent is not None and dependent.status == Status.PENDING:
                if dependent_id not in found:
                    found.add(dependent_id)
                    stack.append(dependent_id)
    return found


def overview(core: Scheduler, clock: Callable[[], float]) -> dict[str, Any]:
    """What the status page's front shows: counts, workers, resources, failures, timeline."""
    now = clock()
    status_counts = counts(core)
    status_counts[UPSTREAM_FAILED] = len(upstream_failed(core, clock))
    live_after = now - core.policy.worker_disconnect_delay
    failed_ids = itertools.chain(
        core.index.by_status[Status.FAILED], core.index.by_status[Status.DISABLED]
    )
    recent = heapq.nlargest(
        RECENT_FAILURES, (core.tasks[t] for t in failed_ids), key=BY_UPDATED
    )
    return {
        "counts": status_counts,
        "total": sum(core.index.counts().values()),
        "workers": {
            "live": sum(w.last_seen >= live_after for w in core.workers.values()),
            "total": len(core.workers),
        },
        "resources": resource_list(core),
        "recent_failures": [
            {
                "task_id": t.task_id,
                "family": t.family,
                "status": str(t.status),
                "updated": t.updated,
                "error_line": error_line(t.error),
            }
            for t in recent
        ],
        "timeline": core.timeline.window(now),
        "paused": core.paused,
        "now": now,
    }


def error_line(error: str | None) -> str:
    """The line of an error that says what went wrong: a traceback's last line, else the first."""
    lines = [line for line in (error or "").splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1].strip() if lines[0].startswith("Traceback") else lines[0].strip()


def _brief(core: Scheduler, task_id: str) -> dict[str, Any]:
    task = core.tasks.get(task_id)
    status = str(task.status) if task is not None and task.known else "UNKNOWN"
    family = task.family if task is not None else ""
    return {"task_id": task_id, "family": family, "status": status}


def task_detail(
    core: Scheduler, task_id: str, history: list[dict[str, Any]], log: str | None
) -> dict[str, Any]:
    """One task with its history, log tail, dependencies and dependents (with statuses)."""
    task = core.task(task_id)
    detail = task.summary()
    detail["deps"] = [_brief(core, d) for d in task.deps]
    detail["dependents"] = [_brief(core, d) for d in task.dependents]
    detail["stakeholders"] = sorted(task.stakeholders)
    detail["retry_at"] = task.retry_at
    detail["history"] = history
    detail["log"] = log
    return detail


def graph(core: Scheduler, task_id: str, depth: int = 3) -> dict[str, Any]:
    """Nodes and edges within `depth` steps up and down from a task; 'truncated' if cut."""
    core.task(task_id)
    seen = {task_id: 0}
    frontier = [task_id]
    truncated = False
    level = 0
    while frontier and level < min(depth, MAX_GRAPH_DEPTH):
        level += 1
        found = []
        for current in frontier:
            record = core.tasks[current]
            for neighbour in itertools.chain(record.deps, record.dependents):
                if neighbour in seen or neighbour not in core.tasks:
                    continue
                if len(seen) >= MAX_GRAPH_NODES:
                    truncated = True
                    break
                seen[neighbour] = level
                found.append(neighbour)
        frontier = found
    truncated = truncated or bool(frontier and level < depth)
    nodes = [{**_brief(core, node), "distance": distance} for node, distance in seen.items()]
    edges = [
        {"from": node, "to": dep}
        for node in seen
        for dep in _deps_of(core.tasks.get(node))
        if dep in seen
    ]
    return {"nodes": nodes, "edges": edges, "truncated": truncated}


def _deps_of(task: TaskRecord | None) -> tuple[str, ...]:
    return task.deps if task is not None else ()


def worker_list(core: Scheduler) -> list[dict[str, Any]]:
    """Every connected worker with what it runs and when it last pinged."""
    return [
        {
            "worker": w.worker_id,
            "info": w.info,
            "last_seen": w.last_seen,
            "running": sorted(w.running),
            "tasks": len(w.tasks),
            "assistant": w.assistant,
        }
        for w in core.workers.values()
    ]


def resource_list(core: Scheduler) -> list[dict[str, Any]]:
    """Each resource's capacity and current use."""
    used = core.resources_used()
    names = sorted(set(core.resources) | set(used))
    return [{"name": n, "total": core.resources.get(n, 1), "used": used.get(n, 0)} for n in names]
