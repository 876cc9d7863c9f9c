"""Read-only views of scheduler state for the API and the status page (no mutation here)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from pipes.scheduler.core import Scheduler
from pipes.scheduler.model import TaskRecord

MAX_PAGE = 1000
MAX_GRAPH_NODES = 500
MAX_GRAPH_DEPTH = 50


@dataclass(frozen=True)
class TaskQuery:
    """Filters and page of a task_list call."""

    status: str | None = None
    family: str | None = None
    search: str | None = None  # substring of the task id
    limit: int = 100
    offset: int = 0


def task_list(core: Scheduler, query: TaskQuery) -> dict[str, Any]:
    """Known tasks matching the query, one page of them: {'total', 'tasks'}."""
    limit = max(0, min(query.limit, MAX_PAGE))
    status, family, search, offset = query.status, query.family, query.search, query.offset
    matches = (
        t
        for t in core.tasks.values()
        if t.known
        and (status is None or t.status == status)
        and (family is None or t.family == family)
        and (search is None or search in t.task_id)
    )
    page, total = [], 0
    for index, task in enumerate(matches):
        if offset <= index < offset + limit:
            page.append(task.summary())
        total += 1
    return {"total": total, "tasks": page}


def counts(core: Scheduler) -> dict[str, int]:
    """Number of known tasks in each status."""
    return {str(status): count for status, count in core.counts.items()}


def _brief(core: Scheduler, task_id: str) -> dict[str, Any]:
    task = core.tasks.get(task_id)
    status = str(task.status) if task is not None and task.known else "UNKNOWN"
    family = task.family if task is not None else ""
    return {"task_id": task_id, "family": family, "status": status}


def task_detail(core: Scheduler, task_id: str, history: list[dict[str, Any]]) -> dict[str, Any]:
    """One task with its history, dependencies and dependents (each with its status)."""
    task = core.task(task_id)
    detail = task.summary()
    detail["deps"] = [_brief(core, d) for d in task.deps]
    detail["dependents"] = [_brief(core, d) for d in task.dependents]
    detail["stakeholders"] = sorted(task.stakeholders)
    detail["retry_at"] = task.retry_at
    detail["history"] = history
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
