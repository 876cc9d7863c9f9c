"""The RPC surface: an explicit method table over the core, validating before it mutates.

Service.call(method, body) is what both the HTTP server and the in-process scheduler use:
it checks the body, runs the transition with `now` from the injected clock, commits the
changes to the store, and only then returns the JSON-shaped reply.

A change is visible only once committed: when a commit fails, or a transition raises after
changing state, the core is rebuilt from the journal (the restart path) and the call fails.
While the journal refuses writes, write calls get StoreUnavailable (503) at once, and the
store is probed again at most once a second, so a full disk costs one rebuild, not one per call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from pipes.exceptions import BadRequest, StoreError, StoreUnavailable
from pipes.scheduler import views
from pipes.scheduler.core import Scheduler
from pipes.scheduler.model import Changes, Refused, Status, TaskSpec, Work

logger = logging.getLogger("pipes.scheduler")

API_VERSION = 1
PROBE_INTERVAL = 1.0  # seconds between attempts to write to a journal that refused
MAX_BATCH = 100_000
MAX_TASKS_PER_GET_WORK = 100
_NUMBER = (int, float)


class Store(Protocol):
    """Where the service commits changes."""

    def commit(self, changes: Changes) -> None:
        """Persist one batch of changes."""

    def history(self, task_id: str) -> list[dict[str, Any]]:
        """Status changes of one task, oldest first."""

    def prune_history(self, before: float) -> None:
        """Forget history older than `before`."""

    def log(self, task_id: str) -> str | None:
        """The tail of the task's latest log."""

    def probe(self) -> None:
        """Raise StoreError unless the journal takes a write now."""


@dataclass(frozen=True)
class Field:
    """One body field of an RPC method."""

    kind: type | tuple[type, ...]
    required: bool = True
    nullable: bool = False


@dataclass(frozen=True)
class Method:
    """An RPC method: its handler, the body fields it takes, and whether it may change what
    the journal holds (such calls wait while the journal refuses writes)."""

    handler: Callable[..., Any]
    fields: dict[str, Field]
    writes: bool = True


def _reader(handler: Callable[..., Any], fields: dict[str, Field]) -> Method:
    return Method(handler, fields, writes=False)


WORKER = {"worker": Field(str)}
TASK_ID = {"task_id": Field(str)}
OPTIONAL_STR = Field(str, required=False, nullable=True)


class Service:
    """Validated, committed access to one Scheduler."""

    def __init__(
        self,
        core: Scheduler,
        store: Store,
        clock: Callable[[], float],
        rebuild: Callable[[], Scheduler] | None = None,
    ) -> None:
        """`rebuild` gives a core restored from the journal; without it (an in-memory store)
        there is nothing to roll back to."""
        self.core = core
        self.store = store
        self.clock = clock
        self.rebuild = rebuild
        self.store_error: str | None = None  # why the journal refuses writes, while it does
        self._next_probe = 0.0
        self._stale = False  # the core holds what the journal does not: rebuild before use
        self.methods = self._method_table()

    def _method_table(self) -> dict[str, Method]:
        core = self.core
        return {
            "add_worker": Method(self._add_worker, {**WORKER, "info": Field(dict)}),
            "add_tasks": Method(self._add_tasks, {**WORKER, "tasks": Field(list)}),
            "add_task": Method(self._add_task, {**WORKER, "task": Field(dict)}),
            "get_work": Method(
                self._get_work,
                {
                    **WORKER,
                    "running": Field(list, required=False),
                    "reports": Field(list, required=False),
                    "max_tasks": Field(int, required=False),
                },
            ),
            "outlook": _reader(lambda worker: asdict(core.outlook(worker, self.clock())), WORKER),
            # A ping journals nothing, so it goes through while the journal refuses writes:
            # live workers must not be dropped as silent when the disk has room again.
            "ping": _reader(self._ping, WORKER),
            "stop_worker": Method(lambda worker: core.stop_worker(worker, self.clock()), WORKER),
            "set_status_message": Method(
                self._field_setter("status_message"), {**TASK_ID, "message": Field(str)}
            ),
            "set_progress_percentage": Method(
                self._field_setter("progress_percentage"), {**TASK_ID, "progress": Field(_NUMBER)}
            ),
            "set_log_tail": Method(self._field_setter("log_tail"), {**TASK_ID, "tail": Field(str)}),
            "set_tracking_url": Method(
                self._field_setter("tracking_url"), {**TASK_ID, "url": Field(str)}
            ),
            "task_list": _reader(
                self._task_list,
                {
                    "status": OPTIONAL_STR,
                    "family": OPTIONAL_STR,
                    "search": OPTIONAL_STR,
                    "sort": Field(str, required=False),
                    "limit": Field(int, required=False),
                    "offset": Field(int, required=False),
                },
            ),
            "task_detail": _reader(self._task_detail, TASK_ID),
            "graph": _reader(
                lambda task_id, depth=3: views.graph(core, task_id, depth),
                {**TASK_ID, "depth": Field(int, required=False)},
            ),
            "counts": _reader(lambda: views.counts(core), {}),
            "overview": _reader(lambda: views.overview(core, self.clock), {}),
            "worker_list": _reader(lambda: {"workers": views.worker_list(core)}, {}),
            "resource_list": _reader(lambda: {"resources": views.resource_list(core)}, {}),
            "update_resource": Method(
                self._update_resource, {"name": Field(str), "amount": Field(int, nullable=True)}
            ),
            "forgive_failures": Method(self._action(core.forgive_failures), TASK_ID),
            "re_enable_task": Method(self._action(core.re_enable_task), TASK_ID),
            "mark_as_done": Method(self._action(core.mark_as_done), TASK_ID),
            "prune": Method(lambda: core.prune(self.clock()), {}),
            "pause": Method(lambda: core.set_paused(True), {}),
            "unpause": Method(lambda: core.set_paused(False), {}),
            "is_paused": _reader(lambda: {"paused": core.paused}, {}),
        }

    def call(self, method: str, body: Any) -> dict[str, Any]:
        """Run one RPC; BadRequest (nothing changed) for an unknown method or a bad body,
        StoreUnavailable (nothing changed) when the journal refuses the write."""
        spec = self.methods.get(method)
        if spec is None:
            raise BadRequest(f"unknown method {method!r}")
        args = _validated(method, spec, body)
        if self._stale:
            self._rebuild()
        if self.store_error is not None and spec.writes and not self._keep_alive(method, args):
            self._probe(method)
        try:
            result = spec.handler(**args)
            self.store.commit(self.core.take_changes())
        except StoreError as err:
            self._roll_back(f"{method} not applied: {err}", str(err))
            raise StoreUnavailable(f"{method} not applied: {err}") from err
        except BaseException as err:
            if self.rebuild is not None and self.core.has_changes():
                self._roll_back(f"{method} raised after changing state", self.store_error)
            if isinstance(err, Refused):  # the caller's request was wrong: an HTTP 400
                raise BadRequest(str(err)) from None
            raise
        if spec.writes:
            self.store_error = None
        return result if isinstance(result, dict) else {}

    def _keep_alive(self, method: str, args: dict[str, Any]) -> bool:
        """An add_worker that repeats what the core knows journals nothing: a worker's
        keep-alive, which must go through while the journal refuses writes."""
        return method == "add_worker" and self.core.knows_worker(args["worker"], args["info"])

    def _probe(self, method: str) -> None:
        """Let a write through only if the journal takes one now (tried once a second)."""
        now = self.clock()
        if now >= self._next_probe:
            self._next_probe = now + PROBE_INTERVAL
            try:
                self.store.probe()
            except StoreError as err:
                self.store_error = str(err)
            else:
                return
        raise StoreUnavailable(f"{method} not applied: {self.store_error}")

    def _roll_back(self, why: str, store_error: str | None) -> None:
        """Serve only what the journal holds: rebuild the core from it (the restart path)."""
        self.core.take_changes()  # never commit them later
        self.store_error = store_error
        self._next_probe = self.clock() + PROBE_INTERVAL
        logger.error("%s; rebuilding the scheduler from the journal", why)
        self._stale = True
        self._rebuild()

    def _rebuild(self) -> None:
        """Replace the core by one restored from the journal; until then every call gets 503."""
        assert self.rebuild is not None
        try:
            self.core = self.rebuild()
        except StoreError as err:
            logger.error("cannot rebuild the scheduler from the journal: %s", err)
            raise StoreUnavailable(f"scheduler state is being restored: {err}") from err
        self._stale = False
        self.methods = self._method_table()

    def _add_worker(self, worker: str, info: dict[str, Any]) -> None:
        if not isinstance(info.get("host", ""), str):
            raise BadRequest("add_worker: info 'host' must be a string")  # history stores it
        self.core.add_worker(worker, info, self.clock())

    def _add_tasks(self, worker: str, tasks: list[Any]) -> dict[str, Any]:
        if len(tasks) > MAX_BATCH:
            raise BadRequest(f"add_tasks takes at most {MAX_BATCH} tasks per call")
        specs = [TaskSpec.from_dict(task) for task in tasks]  # all checked before any change
        self.core.add_tasks(worker, specs, self.clock())
        return {"added": len(specs)}

    def _add_task(self, worker: str, task: dict[str, Any]) -> None:
        self.core.add_tasks(worker, [TaskSpec.from_dict(task)], self.clock())

    def _get_work(
        self,
        worker: str,
        running: list[Any] | None = None,
        reports: list[Any] | None = None,
        max_tasks: int = 1,
    ) -> dict[str, Any]:
        """Apply the worker's reports, then hand out up to max_tasks tasks: one round trip."""
        if running is not None and not all(isinstance(t, str) for t in running):
            raise BadRequest("get_work: 'running' must be a list of task ids")
        if not 1 <= max_tasks <= MAX_TASKS_PER_GET_WORK:
            raise BadRequest(f"get_work: 'max_tasks' must be 1..{MAX_TASKS_PER_GET_WORK}")
        specs = [TaskSpec.from_dict(report) for report in reports or ()]
        now = self.clock()
        if specs:
            self.core.add_tasks(worker, specs, now)
        handed: list[dict[str, Any]] = []
        known = set(running) if running is not None else None  # a set: checked per task
        floor: int | None = None
        while len(handed) < max_tasks:
            # Extra tasks only at the first one's priority: a worker must not sit on lower
            # priority work while a higher priority task may become ready meanwhile.
            work = self.core.get_work(worker, now, known, floor)
            if work is None:
                break
            handed.append(work_json(work))  # now: the record changes with later calls
            floor = handed[0]["priority"]
            if known is not None:
                known.update(work.task_ids)
        return {"task": handed[0] if handed else None, "tasks": handed}

    def _ping(self, worker: str) -> None:
        self.core.ping(worker, self.clock())

    def _field_setter(self, name: str) -> Callable[..., None]:
        def set_field(task_id: str, **value: Any) -> None:
            (given,) = value.values()
            self.core.set_task_field(task_id, name, given, self.clock())

        return set_field

    def _action(self, transition: Callable[[str, float], None]) -> Callable[[str], None]:
        return lambda task_id: transition(task_id, self.clock())

    def _task_list(self, **query: Any) -> dict[str, Any]:
        status = query.get("status")
        if status is not None and status not in (*Status.__members__, views.UPSTREAM_FAILED):
            raise BadRequest(f"task_list: unknown status {status!r}")
        sort = query.get("sort", "-updated")
        if sort.removeprefix("-") not in views.SORT_KEYS:
            names = ", ".join(views.SORT_KEYS)
            raise BadRequest(f"task_list: unknown sort {sort!r} (one of {names}; '-' descends)")
        return views.task_list(self.core, views.TaskQuery(**query), self.clock)

    def _task_detail(self, task_id: str) -> dict[str, Any]:
        history, log = self.store.history(task_id), self.store.log(task_id)
        return views.task_detail(self.core, task_id, history, log)

    def _update_resource(self, name: str, amount: int | None) -> None:
        self.core.update_resource(name, amount)


def _validated(method: str, spec: Method, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(f"{method}: the body must be a JSON object")
    unknown = set(body) - set(spec.fields)
    if unknown:
        raise BadRequest(f"{method}: unknown field {sorted(unknown)[0]!r}")
    args: dict[str, Any] = {}
    for name, field in spec.fields.items():
        if name not in body:
            if field.required:
                raise BadRequest(f"{method}: missing field {name!r}")
            continue
        value = body[name]
        if value is None and field.nullable:
            args[name] = None
            continue
        if not isinstance(value, field.kind) or (
            isinstance(value, bool) and field.kind is not bool
        ):
            kind = type(value).__name__
            raise BadRequest(f"{method}: field {name!r} has the wrong type ({kind})")
        args[name] = value
    return args


def work_json(work: Work) -> dict[str, Any]:
    """get_work's reply as the RPC sends it: the task's summary, plus "batch" for a batch."""
    reply = work.task.summary()
    if work.batch is not None:
        reply["batch"] = {"task_ids": work.batch.task_ids, "params": work.batch.params}
    return reply
