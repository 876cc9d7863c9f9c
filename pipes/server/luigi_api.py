"""Luigi's RPC dialect: the /api/<method> calls of Luigi 3.x workers, run as Service calls.

A Luigi worker posts `data=<JSON of its arguments>` form-encoded and reads `{"response": ...}`.
Each Luigi method here maps its arguments onto the Service's own methods (add_task ->
add_task with a TaskSpec, get_work -> get_work plus outlook, ...), so validation, the journal
commit and the policies are pipesd's; nothing Luigi sends bypasses them. The HTTP side is
pipes.server.luigi_http; docs/migrating-from-luigid.md says what each method does.
Differs from luigi: batching (add_task_batcher) and scheduler messages are accepted and ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipes.exceptions import BadRequest
from pipes.scheduler.service import Service
from pipes.scheduler.views import MAX_GRAPH_NODES, MAX_PAGE, UPSTREAM_FAILED

_STATUSES = {"PENDING", "RUNNING", "DONE", "FAILED", "DISABLED", "UNKNOWN", "SUSPENDED"}
_ANY = object  # a value Luigi sends and pipesd ignores: any JSON type
_STR, _INT, _BOOL = (str,), (int,), (bool,)
_NUMBER = (int, float)
LUIGI_RUNTIME_ERROR = "Runtime error:\n"  # Luigi's first line of a failed run's traceback
RUNNING_SHOWN = 100  # tasks running elsewhere that get_work lists, at most


@dataclass(frozen=True)
class LuigiMethod:
    """A Luigi method: its handler, its argument names with their JSON types, which of them
    must be given (not null), and whether it only reads (GET is allowed then)."""

    handler: Callable[..., Any]
    fields: Mapping[str, tuple[type, ...]]
    required: tuple[str, ...] = ()
    reads: bool = False


class LuigiDialect:
    """Luigi's method table over one Service."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.methods = self._method_table()

    def call(self, method: str, body: Any) -> Any:
        """Run one Luigi method and return what goes in `response`; BadRequest on bad input."""
        spec = self.methods.get(method)
        if spec is None:
            raise BadRequest(f"unknown Luigi method {method!r} (see docs/migrating-from-luigid.md)")
        return spec.handler(**_checked(method, spec, body))

    def is_read(self, method: str) -> bool:
        """True for a method that changes nothing (such calls may use GET)."""
        spec = self.methods.get(method)
        return spec is not None and spec.reads

    def _rpc(self, method: str, **body: Any) -> dict[str, Any]:
        return self.service.call(method, body)

    def _method_table(self) -> dict[str, LuigiMethod]:
        worker = {"worker": _STR}
        task = {"task_id": _STR}
        ignored = {  # accepted for Luigi's sake, nothing to do (see the module docstring)
            "announce_scheduling_failure": (
                "task_name", "family", "params", "expl", "owners", "worker",
            ),
            "add_scheduler_message_response": ("task_id", "message_id", "response"),
            "add_task_batcher": ("worker", "task_family", "batched_args", "max_batch_size"),
            "report_task_statistics": ("task_id", "statistics"),
            "set_worker_processes": ("worker", "n"),
        }  # fmt: skip
        table = {
            name: LuigiMethod(_nothing, dict.fromkeys(names, (_ANY,)))
            for name, names in ignored.items()
        }
        table |= {
            "add_worker": LuigiMethod(
                self._add_worker, {**worker, "info": (list, dict)}, ("worker", "info")
            ),
            "add_task": LuigiMethod(self._add_task, ADD_TASK_FIELDS, ("task_id", "worker")),
            "get_work": LuigiMethod(self._get_work, GET_WORK_FIELDS, ("worker",)),
            "count_pending": LuigiMethod(self._count_pending, worker, ("worker",), reads=True),
            "ping": LuigiMethod(self._ping, worker, ("worker",)),
            "disable_worker": LuigiMethod(
                lambda worker: self._rpc("stop_worker", worker=worker), worker, ("worker",)
            ),
            "set_task_status_message": LuigiMethod(
                lambda task_id, status_message: self._set(
                    "set_status_message", task_id, message=status_message
                ),
                {**task, "status_message": _STR},
                ("task_id", "status_message"),
            ),
            "set_task_progress_percentage": LuigiMethod(
                lambda task_id, progress_percentage: self._set(
                    "set_progress_percentage", task_id, progress=progress_percentage
                ),
                {**task, "progress_percentage": _NUMBER},
                ("task_id", "progress_percentage"),
            ),
            "decrease_running_task_resources": LuigiMethod(
                self._known_task,
                {**task, "decrease_resources": (dict,)},
                ("task_id",),
            ),
            "get_task_status_message": LuigiMethod(
                self._status_message, task, ("task_id",), reads=True
            ),
            "get_task_progress_percentage": LuigiMethod(
                self._progress, task, ("task_id",), reads=True
            ),
            "get_running_task_resources": LuigiMethod(
                self._running_resources, task, ("task_id",), reads=True
            ),
            "get_scheduler_message_response": LuigiMethod(
                lambda task_id, message_id: {"response": None},
                {**task, "message_id": _STR},
                reads=True,
            ),
            "task_list": LuigiMethod(self._task_list, TASK_LIST_FIELDS, reads=True),
            "task_search": LuigiMethod(
                self._task_search, {"task_str": _STR}, ("task_str",), reads=True
            ),
            "fetch_error": LuigiMethod(self._fetch_error, task, ("task_id",), reads=True),
            "graph": LuigiMethod(self._graph, {}, reads=True),
            "dep_graph": LuigiMethod(
                self._dep_graph("deps"), GRAPH_FIELDS, ("task_id",), reads=True
            ),
            "inverse_dep_graph": LuigiMethod(
                self._dep_graph("dependents"), GRAPH_FIELDS, ("task_id",), reads=True
            ),
            "worker_list": LuigiMethod(self._worker_list, {"include_running": _BOOL}, reads=True),
            "resource_list": LuigiMethod(self._resource_list, {}, reads=True),
            "has_task_history": LuigiMethod(lambda: False, {}, reads=True),
            "is_pause_enabled": LuigiMethod(lambda: {"enabled": True}, {}, reads=True),
            "is_paused": LuigiMethod(lambda: self._rpc("is_paused"), {}, reads=True),
            "pause": LuigiMethod(lambda: self._rpc("pause"), {}),
            "unpause": LuigiMethod(lambda: self._rpc("unpause"), {}),
            "prune": LuigiMethod(lambda: self._rpc("prune"), {}),
            "re_enable_task": LuigiMethod(self._action("re_enable_task"), task, ("task_id",)),
            "forgive_failures": LuigiMethod(self._action("forgive_failures"), task, ("task_id",)),
            "mark_as_done": LuigiMethod(self._action("mark_as_done"), task, ("task_id",)),
            "update_resource": LuigiMethod(
                lambda resource, amount: self._rpc("update_resource", name=resource, amount=amount),
                {"resource": _STR, "amount": _INT},
                ("resource", "amount"),
            ),
        }
        return table

    # ----- workers ---------------------------------------------------------------------------

    def _add_worker(self, worker: str, info: list[Any] | dict[str, Any]) -> None:
        """Luigi sends its info as [name, value] pairs."""
        if isinstance(info, list):
            if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in info):
                raise BadRequest("add_worker: 'info' must be a list of [name, value] pairs")
            info = dict(info)
        self._rpc("add_worker", worker=worker, info={**info, "luigi": True})

    def _add_task(self, task_id: str, worker: str, **given: Any) -> None:
        """A task scheduled, or a result reported (status DONE / FAILED / PENDING + new_deps)."""
        status = given.get("status") or "PENDING"
        if status not in _STATUSES:
            raise BadRequest(f"add_task: unknown status {status!r}")
        if status == "RUNNING":  # Luigi says a task it runs has a tracking URL (or is a batch)
            if given.get("tracking_url") is not None:
                self._set("set_tracking_url", task_id, url=given["tracking_url"])
            return
        self._rpc("add_task", worker=worker, task=_task_spec(task_id, status, given))
        if given.get("tracking_url") is not None:
            self._set("set_tracking_url", task_id, url=given["tracking_url"])

    def _get_work(self, worker: str, **given: Any) -> dict[str, Any]:
        if given.get("assistant"):
            self._rpc("add_worker", worker=worker, info={"assistant": True})
        body: dict[str, Any] = {"worker": worker}
        if given.get("current_tasks") is not None:
            body["running"] = given["current_tasks"]
        task = self._rpc("get_work", **body)["task"]
        reply = self._count_pending(worker)
        reply["task_id"] = None
        if task is not None:
            reply |= {
                "task_id": task["task_id"],
                "task_family": task["family"],
                "task_module": task["module"] or None,
                "task_params": task["params"],
            }
        return reply

    def _count_pending(self, worker: str) -> dict[str, Any]:
        counts = self._rpc("outlook", worker=worker)
        pending = counts["pending"] + counts["waiting_for_retry"]
        running: list[dict[str, Any]] = []
        if counts["running_elsewhere"]:
            # Luigi's run summary lists tasks it saw running on other workers; it ignores
            # the ones it did not schedule itself, so other workers' tasks may be listed too.
            page = self._rpc("task_list", status="RUNNING", limit=RUNNING_SHOWN)["tasks"]
            running = [
                {"task_id": t["task_id"], "worker": t["worker_running"]}
                for t in page
                if t["worker_running"] != worker
            ]
        return {
            "n_pending_tasks": pending,
            "n_unique_pending": pending,  # pipesd does not count who else could run them
            "n_pending_last_scheduled": pending,
            "worker_state": "active",
            "running_tasks": running,
        }

    def _ping(self, worker: str) -> dict[str, Any]:
        self._rpc("ping", worker=worker)
        return {"rpc_messages": []}  # pipesd sends workers no messages

    # ----- tasks -----------------------------------------------------------------------------

    def _set(self, method: str, task_id: str, **value: Any) -> None:
        self._rpc(method, task_id=task_id, **value)

    def _action(self, method: str) -> Callable[[str], dict[str, Any]]:
        def run(task_id: str) -> dict[str, Any]:
            self._rpc(method, task_id=task_id)
            return {"task_id": task_id}

        return run

    def _detail(self, task_id: str) -> dict[str, Any]:
        return self._rpc("task_detail", task_id=task_id)

    def _known_task(self, task_id: str, **_: Any) -> None:
        """pipesd holds a task's resources until it ends; the call only checks the id."""
        self._detail(task_id)

    def _status_message(self, task_id: str) -> dict[str, Any]:
        return {"taskId": task_id, "statusMessage": self._detail(task_id)["status_message"]}

    def _progress(self, task_id: str) -> dict[str, Any]:
        progress = self._detail(task_id)["progress_percentage"]
        return {"taskId": task_id, "progressPercentage": progress}

    def _running_resources(self, task_id: str) -> dict[str, Any]:
        detail = self._detail(task_id)
        running = detail["resources"] if detail["status"] == "RUNNING" else None
        return {"taskId": task_id, "resources": running}

    def _fetch_error(self, task_id: str) -> dict[str, Any]:
        detail = self._detail(task_id)
        return {
            "taskId": task_id,
            "error": detail["error"] or "",
            "displayName": _display_name(detail),
            "taskParams": detail["params"],
            "taskFamily": detail["family"],
        }

    # ----- reading ---------------------------------------------------------------------------

    def _tasks(self, limit: int | None, **query: Any) -> tuple[int, list[dict[str, Any]]]:
        """(total, tasks) of a task_list query; all pages when limit is None."""
        first = self._rpc("task_list", limit=MAX_PAGE if limit is None else limit, **query)
        tasks, total = first["tasks"], first["total"]
        while limit is None and len(tasks) < total:
            page = self._rpc("task_list", limit=MAX_PAGE, offset=len(tasks), **query)["tasks"]
            if not page:
                break
            tasks += page
        return total, tasks

    def _task_list(self, **given: Any) -> dict[str, Any]:
        status = given.get("status") or None
        upstream = given.get("upstream_status") or None
        if upstream is not None:
            if upstream != UPSTREAM_FAILED or status not in (None, "PENDING"):
                raise BadRequest(
                    f"task_list: upstream_status {upstream!r} is not tracked by pipesd"
                )
            status = UPSTREAM_FAILED
        if status is not None and status not in _STATUSES:
            raise BadRequest(f"task_list: unknown status {status!r}")
        cap = given.get("max_shown_tasks") or MAX_PAGE
        limited = given.get("limit", True) is not False
        total, tasks = self._tasks(
            min(cap, MAX_PAGE) if limited else None, status=status, search=given.get("search")
        )
        if limited and total > len(tasks):
            return {"num_tasks": total}  # Luigi's answer when a list is too long to show
        return {t["task_id"]: _luigi_task(t) for t in tasks}

    def _task_search(self, task_str: str) -> dict[str, dict[str, Any]]:
        _, tasks = self._tasks(None, search=task_str)
        found: dict[str, dict[str, Any]] = {}
        for task in tasks:
            found.setdefault(task["status"], {})[task["task_id"]] = _luigi_task(task)
        return found

    def _graph(self) -> dict[str, Any]:
        _, tasks = self._tasks(None)
        return {t["task_id"]: _luigi_task(t) for t in tasks}

    def _dep_graph(self, direction: str) -> Callable[..., dict[str, Any]]:
        """Walk deps (or dependents) from a task, up to MAX_GRAPH_NODES tasks."""

        def walk(task_id: str, include_done: bool | None = True) -> dict[str, Any]:
            found: dict[str, Any] = {}
            stack = [task_id]
            while stack and len(found) < MAX_GRAPH_NODES:
                current = stack.pop()
                if current in found:
                    continue
                try:
                    detail = self._detail(current)
                except BadRequest:  # only named as a dependency so far
                    found[current] = {"name": current, "status": "UNKNOWN", "deps": []}
                    continue
                if include_done is False and detail["status"] == "DONE" and current != task_id:
                    continue
                found[current] = _luigi_task(
                    {**detail, "deps": [d["task_id"] for d in detail["deps"]]}
                )
                stack.extend(d["task_id"] for d in detail[direction])
            return found

        return walk

    def _worker_list(self, include_running: bool | None = True) -> list[dict[str, Any]]:
        workers = self._rpc("worker_list")["workers"]
        listed = []
        for w in workers:
            info = {k: v for k, v in w["info"].items() if k not in ("name", "running")}
            entry = {
                **info,
                "name": w["worker"],
                "last_active": w["last_seen"],
                "state": "active",
                "num_running": len(w["running"]),
                "num_pending": w["tasks"],
            }
            if include_running is not False:
                entry["running"] = {t: {"task_id": t} for t in w["running"]}
            listed.append(entry)
        return listed

    def _resource_list(self) -> list[dict[str, Any]]:
        resources = self._rpc("resource_list")["resources"]
        return [
            {"name": r["name"], "num_total": r["total"], "num_used": r["used"]} for r in resources
        ]


ADD_TASK_FIELDS: dict[str, tuple[type, ...]] = {
    "task_id": _STR,
    "worker": _STR,
    "status": _STR,
    "runnable": _BOOL,
    "deps": (list,),
    "new_deps": (list,),
    "expl": _STR,
    "resources": (dict,),
    "priority": _INT,
    "family": _STR,
    "module": _STR,
    "params": (dict,),
    "param_visibilities": (dict,),
    "accepts_messages": _BOOL,
    "assistant": _BOOL,
    "tracking_url": _STR,
    "batchable": _BOOL,
    "batch_id": _STR,
    "retry_policy_dict": (dict,),
    "owners": (list,),
}
GET_WORK_FIELDS: dict[str, tuple[type, ...]] = {
    "worker": _STR,
    "host": _STR,
    "assistant": _BOOL,
    "current_tasks": (list,),
}
TASK_LIST_FIELDS: dict[str, tuple[type, ...]] = {
    "status": _STR,
    "upstream_status": _STR,
    "limit": (bool, int),
    "search": _STR,
    "max_shown_tasks": _INT,
}
GRAPH_FIELDS: dict[str, tuple[type, ...]] = {"task_id": _STR, "include_done": _BOOL}


def _nothing(**_: Any) -> None:
    return None


def _checked(method: str, spec: LuigiMethod, body: Any) -> dict[str, Any]:
    """The arguments of a Luigi call, nulls dropped (Luigi sends every default, often null)."""
    if not isinstance(body, dict):
        raise BadRequest(f"{method}: 'data' must hold a JSON object")
    args = {}
    for name, value in body.items():
        kinds = spec.fields.get(name)
        if kinds is None:
            raise BadRequest(f"{method}: unknown argument {name!r}")
        if value is None:
            continue
        if _ANY not in kinds and (
            not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)
        ):
            raise BadRequest(
                f"{method}: argument {name!r} has the wrong type ({type(value).__name__})"
            )
        args[name] = value
    for name in spec.required:
        if name not in args:
            raise BadRequest(f"{method}: missing argument {name!r}")
    return args


def _task_spec(task_id: str, status: str, given: dict[str, Any]) -> dict[str, Any]:
    """pipesd's task object for a Luigi add_task (see docs/api.md for its fields)."""
    spec: dict[str, Any] = {
        "task_id": task_id,
        "status": "PENDING" if status == "SUSPENDED" else status,
    }
    for name in (
        "family",
        "module",
        "params",
        "deps",
        "new_deps",
        "priority",
        "resources",
        "runnable",
    ):
        if name in given:
            spec[name] = given[name]
    retry = given.get("retry_policy_dict") or {}
    for name in ("retry_count", "disable_window"):
        if retry.get(name) is not None:
            spec[name] = retry[name]
    if status == "FAILED":
        spec["error"] = _explanation(given.get("expl"))
    owners = given.get("owners")
    if isinstance(owners, list) and all(isinstance(o, str) for o in owners) and owners:
        spec["owners"] = owners
    return spec


def _explanation(expl: str | None) -> str | None:
    """Luigi JSON-encodes a failure's traceback once more; pipesd keeps the text.

    Luigi's "Runtime error:" line before a traceback goes, so the status page's one-line
    summary (a traceback's last line) finds the exception.
    """
    if expl is None:
        return None
    try:
        decoded = json.loads(expl)
    except ValueError:
        decoded = expl
    text = decoded if isinstance(decoded, str) else expl
    return text.removeprefix(LUIGI_RUNTIME_ERROR)


def _display_name(task: dict[str, Any]) -> str:
    params = ", ".join(f"{k}={v}" for k, v in task["params"].items())
    return f"{task['family']}({params})"


def _luigi_task(task: dict[str, Any]) -> dict[str, Any]:
    """A task as Luigi's read methods show one."""
    return {
        "name": task["family"],
        "family": task["family"],
        "display_name": _display_name(task),
        "params": task["params"],
        "status": task["status"],
        "deps": task["deps"],
        "priority": task["priority"],
        "resources": task["resources"],
        "resources_running": task["resources"] if task["status"] == "RUNNING" else None,
        "worker_running": task["worker_running"],
        "time_running": task["time_running"],
        "start_time": task["time_running"],
        "last_updated": task["updated"],
        "tracking_url": task["tracking_url"],
        "status_message": task["status_message"],
        "progress_percentage": task["progress_percentage"],
        "error": task["error"],
    }
