"""The end-of-run result: what each task came to, a readable summary and the exit code."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from pipes.exit_codes import ExitCode
from pipes.task import Task
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

    @property
    def exit_code(self) -> ExitCode:
        """0 when everything requested is complete, else the code of the worst outcome."""
        if self:
            return ExitCode.OK
        present = set(self.outcomes.values())
        for outcome, code in EXIT_CODES.items():
            if outcome in present:
                return code
        return ExitCode.NOT_RUN

    @property
    def status(self) -> str:
        """A one-word verdict: SUCCESS, FAILED, MISSING_EXTERNAL, SCHEDULING_FAILED or NOT_RUN."""
        return {
            ExitCode.OK: "SUCCESS",
            ExitCode.TASK_FAILED: "FAILED",
            ExitCode.SCHEDULING_ERROR: "SCHEDULING_FAILED",
            ExitCode.MISSING_EXTERNAL: "MISSING_EXTERNAL",
        }.get(self.exit_code, "NOT_RUN")

    def summary_text(self, detailed: bool | None = None) -> str:
        """Counts per outcome with task ids, then a one-line verdict."""
        if detailed is None:
            detailed = self.detailed_summary
        count = len(self.outcomes)
        lines = [f"pipes summary: {count} task{'' if count == 1 else 's'} scheduled"]
        for outcome in Outcome:
            tasks = self.of(outcome)
            if not tasks:
                continue
            lines.append(f"* {len(tasks)} {outcome}")
            shown = tasks if detailed else tasks[:MAX_LISTED]
            lines.extend(f"    - {task}" for task in shown)
            if len(shown) < len(tasks):
                lines.append(f"    ... and {len(tasks) - len(shown)} more")
        lines.append(self.verdict())
        return "\n".join(lines)

    def verdict(self) -> str:
        """One line saying whether the run did what was asked, and if not why."""
        if self:
            return f"verdict: SUCCESS: all {len(self.roots)} requested task(s) are complete"
        counts = {o: 0 for o in Outcome}
        for outcome in self.outcomes.values():
            counts[outcome] += 1
        reasons = [f"{counts[o]} {o}" for o in Outcome if counts[o] and o in EXIT_CODES]
        return f"verdict: {self.status} (exit {int(self.exit_code)}): {', '.join(reasons)}"


def classify(graph: WalkResult, ran: dict[str, str]) -> dict[str, Outcome]:
    """Each walked task's outcome; `ran` maps task id to 'DONE' or 'FAILED'.

    A task this worker did not run but that is complete now was run by another worker.
    """
    outcomes: dict[str, Outcome] = {}
    for task_id in graph.tasks:
        if task_id in graph.complete:
            outcomes[task_id] = Outcome.ALREADY_DONE
        elif task_id in graph.broken:
            outcomes[task_id] = Outcome.SCHEDULING_ERROR
        elif task_id in graph.missing_external:
            outcomes[task_id] = Outcome.MISSING_EXTERNAL
        elif task_id in ran:
            outcomes[task_id] = Outcome.RAN if ran[task_id] == "DONE" else Outcome.FAILED
        elif _complete_now(graph.tasks[task_id]):
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
