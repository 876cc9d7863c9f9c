"""The worker: schedules a DAG with a scheduler, then takes and runs tasks until none are left."""

from __future__ import annotations

import concurrent.futures as cf
import getpass
import importlib
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

from pipes.exceptions import TaskDefinitionError
from pipes.scheduler.api import SchedulerAPI
from pipes.scheduler.model import Status
from pipes.task import Task
from pipes.task_register import get_task_cls
from pipes.worker.execute import Execution, Outcome
from pipes.worker.keepalive import KeepAlive
from pipes.worker.walk import WalkResult, task_spec, walk

logger = logging.getLogger("pipes.worker")

ADD_BATCH = 2000


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker behaves; read from [worker] config by the caller."""

    workers: int = 1
    wait_interval: float = 1.0
    check_complete_on_run: bool = True
    keep_alive: bool = False
    ping_interval: float = 5.0
    assistant: bool = False  # also run tasks other workers added, loading them by family


class Worker:
    """Runs the tasks it scheduled, talking to the scheduler only through SchedulerAPI."""

    def __init__(self, scheduler: SchedulerAPI, options: WorkerOptions | None = None) -> None:
        self.scheduler = scheduler
        self.options = options or WorkerOptions()
        self.worker_id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.graph = WalkResult()
        self.ran: dict[str, Outcome] = {}
        self._executions: dict[str, Execution] = {}

    def info(self) -> dict[str, Any]:
        """What this worker tells the scheduler about itself."""
        return {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "user": getpass.getuser(),
            "workers": self.options.workers,
            "assistant": self.options.assistant,
        }

    def add(self, roots: list[Task]) -> WalkResult:
        """Walk the DAG from roots and send every task found to the scheduler in batches."""
        self.scheduler.add_worker(self.worker_id, self.info())
        found = walk(roots, known=set(self.graph.tasks))
        self._send(found.specs)
        self.graph.merge(found)
        return found

    def _send(self, specs: list[dict[str, Any]]) -> None:
        for start in range(0, len(specs), ADD_BATCH):
            self.scheduler.add_tasks(self.worker_id, specs[start : start + ADD_BATCH])

    def run(self) -> None:
        """Take work until there is none this worker can do, pinging in the background."""
        self.scheduler.add_worker(self.worker_id, self.info())
        pinger = KeepAlive(self.scheduler, self.worker_id, self.options.ping_interval)
        pinger.start()
        try:
            if self.options.workers > 1:
                with cf.ThreadPoolExecutor(self.options.workers, "pipes-task") as pool:
                    self._loop(pool)
            else:
                self._loop(None)
        finally:
            pinger.stop()

    def _loop(self, pool: cf.ThreadPoolExecutor | None) -> None:
        running: dict[cf.Future[Outcome], str] = {}
        while True:
            work = None
            if len(running) < self.options.workers:
                work = self.scheduler.get_work(self.worker_id, list(running.values()))
            if work is not None:
                execution = self._execution(work)
                if execution is None:
                    continue
                if pool is None:
                    self._report(execution.step())
                else:
                    running[pool.submit(execution.step)] = work["task_id"]
                continue
            if running:
                done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    del running[future]
                    self._report(future.result())
                continue
            if not self._should_wait():
                return
            time.sleep(self.options.wait_interval)

    def _should_wait(self) -> bool:
        """Idle: wait only while other workers run tasks that may unblock ours."""
        if self.options.assistant:
            return True
        outlook = self.scheduler.outlook(self.worker_id)
        if outlook["running_elsewhere"]:
            return True
        return self.options.keep_alive and bool(outlook["pending"] or outlook["waiting_for_retry"])

    def _execution(self, work: dict[str, Any]) -> Execution | None:
        task_id = work["task_id"]
        execution = self._executions.get(task_id)
        if execution is None:
            try:
                task = self.graph.tasks.get(task_id) or self._load(work)
            except Exception as err:  # e.g. an assistant without the task's module
                logger.error("cannot load task %s: %s", task_id, err)
                error = f"worker {self.worker_id} cannot load this task: {err}"
                self.scheduler.add_task(
                    self.worker_id, {"task_id": task_id, "status": "FAILED", "error": error}
                )
                return None
            task._status_reporter = self._reporter(task_id)
            execution = Execution(task, self.options.check_complete_on_run)
            self._executions[task_id] = execution
        return execution

    def _load(self, work: dict[str, Any]) -> Task:
        """Rebuild a task another worker added (assistants only) from its family and params."""
        if work.get("module"):
            importlib.import_module(work["module"])
        task = get_task_cls(work["family"]).from_str_params(work["params"])
        if task.task_id != work["task_id"]:
            raise TaskDefinitionError(f"task {work['task_id']} loads as {task.task_id} here")
        self.graph.tasks[task.task_id] = task
        return task

    def _reporter(self, task_id: str) -> Any:
        def report(field: str, value: Any) -> None:
            self.scheduler.set_task_field(task_id, field, value)

        return report

    def _report(self, outcome: Outcome) -> None:
        task = outcome.task
        if outcome.status == "SUSPENDED":
            self._suspend(outcome)
            return
        del self._executions[task.task_id]
        self.ran[task.task_id] = outcome
        spec = {"task_id": task.task_id, "status": outcome.status}
        if outcome.status == "DONE":
            logger.info("done %s (%.3fs)", task, outcome.seconds)
            if outcome.error:  # the text on_success() returned
                self.scheduler.set_task_field(task.task_id, "status_message", outcome.error)
        elif outcome.error:
            spec["error"] = outcome.error
        self.scheduler.add_task(self.worker_id, spec)

    def _suspend(self, outcome: Outcome) -> None:
        """Schedule the dynamic dependencies, then put the task back to wait on them."""
        task = outcome.task
        logger.info("%s waits on %d dynamic dependencies", task, len(outcome.new_deps))
        self.add(outcome.new_deps)
        new_ids = [dep.task_id for dep in outcome.new_deps]
        self.graph.deps[task.task_id] = [*self.graph.deps.get(task.task_id, []), *new_ids]
        spec = task_spec(task, Status.PENDING)
        spec["new_deps"] = new_ids
        self.scheduler.add_task(self.worker_id, spec)
