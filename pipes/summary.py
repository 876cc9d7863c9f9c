"""The end-of-run result: what each task came to, a readable summary and the exit code."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipes.config import get_config
from pipes.exceptions import ConfigError
from pipes.exit_codes import RETCODE_KEYS, ExitCode
from pipes.scheduler.model import Status
from pipes.task import Task, is_external
from pipes.worker.messages import RunStatus
from pipes.worker.walk import WalkResult

MAX_LISTED = 5


class Outcome(enum.StrEnum):
    """What one task came to in a run."""

    ALREADY_DONE = "already done"
    RAN = "ran"
    DONE_ELSEWHERE = "done by another worker"
    FAILED = "failed"
    SCHEDULING_ERROR = "scheduling error"
    MISSING_EXTERNAL = "missing external data"
    UPSTREAM_FAILED = "not run: upstream failed"
    UPSTREAM_MISSING = "not run: upstream data missing"
    NOT_RUN = "not run"


EXIT_CODES = {  # the first outcome present picks the exit code of an unsuccessful run
    Outcome.FAILED: ExitCode.TASK_FAILED,
    Outcome.SCHEDULING_ERROR: ExitCode.SCHEDULING_ERROR,
    Outcome.MISSING_EXTERNAL: ExitCode.MISSING_EXTERNAL,
    Outcome.UPSTREAM_FAILED: ExitCode.TASK_FAILED,
    Outcome.UPSTREAM_MISSING: ExitCode.MISSING_EXTERNAL,
    Outcome.NOT_RUN: ExitCode.NOT_RUN,
}
_SUCCESS = {Outcome.ALREADY_DONE, Outcome.RAN, Outcome.DONE_ELSEWHERE}
_FAILED_KINDS = {Outcome.FAILED, Outcome.SCHEDULING_ERROR, Outcome.UPSTREAM_FAILED}
_MISSING_KINDS = {Outcome.MISSING_EXTERNAL, Outcome.UPSTREAM_MISSING}


@dataclass
class RunResult:
    """Result of pipes.build / pipes.run: truthy exactly when every requested task is complete."""

    roots: list[Task]
    outcomes: dict[str, Outcome]
    tasks: dict[str, Task]
    errors: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)  # task id -> why it did not run
    detailed_summary: bool = False

    def __bool__(self) -> bool:
        return self.scheduling_succeeded and all(
            self.outcomes.get(t.task_id) in _SUCCESS for t in self.roots
        )

    def of(self, outcome: Outcome) -> list[Task]:
        """The tasks that came to `outcome`, in walk order."""
        return [self.tasks[i] for i, o in self.outcomes.items() if o == outcome]

    already_done = property(lambda self: self.of(Outcome.ALREADY_DONE))
    completed = property(lambda self: self.of(Outcome.RAN))
    failed = property(lambda self: self.of(Outcome.FAILED))
    scheduling_errors = property(lambda self: self.of(Outcome.SCHEDULING_ERROR))
    missing_external = property(lambda self: self.of(Outcome.MISSING_EXTERNAL))
    upstream_failed = property(lambda self: self.of(Outcome.UPSTREAM_FAILED))
    upstream_missing = property(lambda self: self.of(Outcome.UPSTREAM_MISSING))
    not_run = property(lambda self: self.of(Outcome.NOT_RUN))

    @property
    def scheduling_succeeded(self) -> bool:
        """False when some requires()/complete()/output() raised while building the graph."""
        return Outcome.SCHEDULING_ERROR not in self.outcomes.values()

    def conditions(self) -> list[ExitCode]:
        """The codes of the outcomes present, worst first (empty when the run succeeded)."""
        if self:
            return []
        present = set(self.outcomes.values())
        found = [code for outcome, code in EXIT_CODES.items() if outcome in present]
        return list(dict.fromkeys(found)) or [ExitCode.NOT_RUN]

    @property
    def exit_code(self) -> int:
        """0 when everything requested is complete, else the code of the worst outcome.

        [retcode] may renumber a code; one set to 0 is skipped for the next worst outcome.
        """
        for condition in self.conditions():
            code = configured_code(condition)
            if code:
                return code
        return ExitCode.OK

    @property
    def status(self) -> str:
        """A one-word verdict: SUCCESS, FAILED, MISSING_EXTERNAL, SCHEDULING_FAILED or NOT_RUN."""
        worst = (self.conditions() or [ExitCode.OK])[0]
        return {
            ExitCode.OK: "SUCCESS",
            ExitCode.TASK_FAILED: "FAILED",
            ExitCode.SCHEDULING_ERROR: "SCHEDULING_FAILED",
            ExitCode.MISSING_EXTERNAL: "MISSING_EXTERNAL",
        }.get(worst, "NOT_RUN")

    def summary_text(self, detailed: bool | None = None) -> str:
        """Counts per outcome with task ids (and why each failed or did not run), then a verdict.

        Present external inputs are only counted (unless detailed): they crowd the list.
        """
        if detailed is None:
            detailed = self.detailed_summary
        lines = [f"pipes summary: {plural(len(self.outcomes), 'task')} scheduled"]
        for outcome in Outcome:
            tasks = self.of(outcome)
            if outcome == Outcome.ALREADY_DONE:
                inputs = [t for t in tasks if is_external(t)]
                tasks = [t for t in tasks if not is_external(t)]
                if inputs:
                    lines.append(f"* {plural(len(inputs), 'external input')} present")
                    lines.extend(f"    - {task}" for task in inputs if detailed)
            if tasks:
                lines.extend(self._listed(outcome, tasks, detailed))
        lines.append(self.verdict())
        return "\n".join(lines)

    def _listed(self, outcome: Outcome, tasks: list[Task], detailed: bool) -> list[str]:
        """'* N outcome' and its tasks, each failed or not-run one with its reason."""
        lines = [f"* {len(tasks)} {outcome}"]
        shown = tasks if detailed else tasks[:MAX_LISTED]
        for task in shown:
            reason = self.reasons.get(task.task_id)
            if reason is None and outcome in (Outcome.FAILED, Outcome.SCHEDULING_ERROR):
                reason = error_line(self.errors.get(task.task_id))
            lines.append(f"    - {task}: {reason}" if reason else f"    - {task}")
        if len(shown) < len(tasks):
            lines.append(f"    ... and {len(tasks) - len(shown)} more")
        return lines

    def verdict(self) -> str:
        """One line saying whether the run did what was asked, and if not why."""
        if self:
            if len(self.roots) == 1:
                return "verdict: SUCCESS: the requested task is complete"
            return f"verdict: SUCCESS: all {len(self.roots)} requested tasks are complete"
        counts = {o: 0 for o in Outcome}
        for outcome in self.outcomes.values():
            counts[outcome] += 1
        reasons = [f"{counts[o]} {o}" for o in Outcome if counts[o] and o in EXIT_CODES]
        return f"verdict: {self.status} (exit {int(self.exit_code)}): {', '.join(reasons)}"


def configured_code(code: int) -> int:
    """The exit code for a condition: its [retcode] setting (Luigi's keys) if any, else code.

    ConfigError for a value that is not 0..255.
    """
    key = RETCODE_KEYS.get(ExitCode(code)) if code in ExitCode else None
    if key is None:
        return code
    config = get_config()
    value = config.getint("retcode", key, int(code))
    if not 0 <= value <= 255:
        raise ConfigError(f"{config.where('retcode', key)} = {value} is not an exit code 0..255")
    return code if value == code else value


def check_retcodes() -> None:
    """Raise ConfigError now for a bad [retcode] value, not after the run."""
    for code in RETCODE_KEYS:
        configured_code(code)


def plural(count: int, noun: str) -> str:
    """'1 task', '2 tasks'."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def error_line(error: str | None) -> str:
    """The line of an error that says what went wrong: a traceback's last line, else the first."""
    lines = [line.strip() for line in (error or "").splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]


def not_run_reason(detail: dict[str, Any], context: SchedulerContext) -> str:
    """Why the scheduler did not hand a task to this worker, from its task_detail, in one line."""
    status, failures = detail["status"], detail.get("failures", 0)
    if status == Status.DISABLED:
        until = _clock("until", detail.get("retry_at"), context.now)
        return (
            f"disabled after {plural(failures, 'failure')}{until}; re-enable it with the status"
            " page's Re-enable button or the re_enable_task API call"
        )
    if status == Status.FAILED:
        last = error_line(detail.get("error"))
        return (
            f"failed on another worker ({last or 'no error text'}); retries"
            f"{_clock('at', detail.get('retry_at'), context.now) or ' later'}"
            " ([scheduler] retry_delay); the status page's Forgive failures button runs it now"
        )
    if status in (Status.RUNNING, Status.BATCH_RUNNING):
        return f"another worker is running it ({detail.get('worker_running')})"
    blocked = [d for d in detail.get("deps", []) if d["status"] != Status.DONE]
    if blocked:
        name = context.names.get(blocked[0]["task_id"], blocked[0]["task_id"])
        return f"waits on {name}, which is {blocked[0]['status']}"
    if context.paused:
        return "the scheduler is paused (unpause it on the status page)"
    short = [
        f"{name}={amount} (capacity {context.capacity.get(name, 1)})"
        for name, amount in (detail.get("resources") or {}).items()
        if amount > context.capacity.get(name, 1)
    ]
    if short:
        return f"needs more of a resource than there is: {', '.join(short)}"
    return f"the scheduler has it {status} but handed it to no worker of this run"


@dataclass(frozen=True)
class SchedulerContext:
    """What not_run_reason needs besides the task: time, pause state, capacities, task names."""

    now: float
    paused: bool = False
    capacity: dict[str, int] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # task id -> how the summary shows it


def _clock(word: str, when: float | None, now: float) -> str:
    """' at 14:05:09 (in 15 min)' for a time ahead, else ''."""
    if when is None or when <= now:
        return ""
    minutes = max(1, round((when - now) / 60))
    ahead = f"{minutes} min" if minutes < 90 else f"{round(minutes / 60)} h"
    same_day = time.localtime(when)[:3] == time.localtime(now)[:3]
    shown = time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S", time.localtime(when))
    return f" {word} {shown} (in {ahead})"


def classify(
    graph: WalkResult, ran: dict[str, RunStatus], complete_now: Callable[[Task], bool] | None = None
) -> dict[str, Outcome]:
    """Each walked task's outcome; `ran` maps task id to how its run here ended (DONE, FAILED).

    A task this worker did not run but that is complete now was run by another worker;
    `complete_now` asks that (the worker's checker, whose checks time out), else complete().
    """
    complete_now = complete_now or _complete_now
    outcomes: dict[str, Outcome] = {}
    for task_id in graph.tasks:
        if task_id in graph.complete:
            outcomes[task_id] = Outcome.ALREADY_DONE
        elif task_id in graph.broken:
            outcomes[task_id] = Outcome.SCHEDULING_ERROR
        elif task_id in graph.missing_external:
            outcomes[task_id] = Outcome.MISSING_EXTERNAL
        elif task_id in ran:
            outcomes[task_id] = Outcome.RAN if ran[task_id] == RunStatus.DONE else Outcome.FAILED
        elif complete_now(graph.tasks[task_id]):
            outcomes[task_id] = Outcome.DONE_ELSEWHERE
    for task_id in graph.tasks:
        _blocked_reason(task_id, graph, outcomes)
    return {task_id: outcomes[task_id] for task_id in graph.tasks}


def _blocked_reason(start: str, graph: WalkResult, outcomes: dict[str, Outcome]) -> None:
    """Decide why unfinished tasks did not run, deps first, without recursion."""
    stack = [(start, False)]
    entered: set[str] = set()  # guards against dependency cycles
    while stack:
        task_id, expanded = stack.pop()
        if task_id in outcomes or (not expanded and task_id in entered):
            continue
        deps = graph.deps.get(task_id, [])
        if not expanded:
            entered.add(task_id)
            stack.append((task_id, True))
            stack.extend((d, False) for d in deps if d not in outcomes and d in graph.tasks)
            continue
        kinds = {outcomes.get(d) for d in deps}
        if kinds & _FAILED_KINDS:
            outcomes[task_id] = Outcome.UPSTREAM_FAILED
        elif kinds & _MISSING_KINDS:
            outcomes[task_id] = Outcome.UPSTREAM_MISSING
        else:
            outcomes[task_id] = Outcome.NOT_RUN


def _complete_now(task: Task) -> bool:
    try:
        return task.complete()
    except Exception:  # the walk already reported it; here it only means "not done"
        return False
