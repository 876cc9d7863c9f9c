"""Which child runs what, decided without processes or clocks.

A family whose recent runs took under FAST_SECONDS has its tasks sent several at a time,
and a child may hold up to DEPTH of them, so it does not wait on the worker between two.
Any other task, and any task with a timeout, goes alone to an idle child. The dispatcher
numbers what it sends each child, knows what each holds until the outcome comes back,
and says when a new child is needed; the pool (pool.py) forks it and moves the bytes.
Being pure, every rule here is tested without a process (tests/test_dispatcher.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from pipes.task import Task
from pipes.worker.execute import Execution

FAST_SECONDS = 0.01  # a family whose recent runs took less is sent several tasks at a time
DEPTH = 16  # tasks of fast families a child may hold: one running, the others waiting
LOST_SECONDS = 0.1  # what a task a child died or timed out in counts as: its family is not fast
DECAY = 0.75  # each run, a family's remembered time shrinks by this unless the run took longer


@dataclass(eq=False)
class Load:
    """What one child holds, as far as the dispatcher knows."""

    held: dict[int, Execution] = field(default_factory=dict)  # sent, no outcome yet; by seq
    next_seq: int = 1  # the number the next task sent to it gets
    sent: int = 0  # tasks sent over its life (max_tasks_per_child)
    alone: bool = False  # its task may not have others waiting behind it
    retiring: bool = False  # send it nothing more; stop it once it holds nothing

    def idle(self) -> bool:
        """Holding nothing, and open for work."""
        return not self.held and not self.retiring


@dataclass(frozen=True)
class Assignment:
    """Executions to send one child, each under its sequence number."""

    child: int
    numbered: list[tuple[int, Execution]]
    new: bool  # the child does not exist yet: fork it first
    was_idle: bool  # it held nothing before this
    alone: bool  # a task that runs alone: its timeout starts now


class Dispatcher:
    """Queues executions and hands them to up to `workers` children."""

    def __init__(self, workers: int, max_tasks_per_child: int) -> None:
        self.workers = workers
        self.max_tasks_per_child = max_tasks_per_child
        self.loads: dict[int, Load] = {}  # by the child's key; read-only outside this class
        self._outbox: deque[tuple[Execution, bool]] = deque()  # (execution, fast), not sent yet
        self._slow_waiting = 0  # executions in the outbox that must run alone
        self._expect_fast = False  # the last execution queued could wait behind others
        self._family_seconds: dict[type[Task], float] = {}  # decaying max of recent run times
        self._next_child = 1

    # --- what families take ---------------------------------------------------------------

    def is_fast(self, task: Task, timeout: float | None) -> bool:
        """Whether task may wait behind others in a child: a fast family, and no timeout."""
        seconds = self._family_seconds.get(type(task))
        return seconds is not None and seconds < FAST_SECONDS and not timeout

    def learn(self, task: Task, seconds: float) -> None:
        """Remember how long a run of task's family took (a decaying maximum)."""
        decayed = DECAY * self._family_seconds.get(type(task), 0.0)
        self._family_seconds[type(task)] = seconds if seconds > decayed else decayed

    def lost(self, task: Task) -> None:
        """Task's child died or timed out while running it: its family goes alone for a while."""
        self._family_seconds[type(task)] = LOST_SECONDS

    # --- the queue ------------------------------------------------------------------------

    def queue(self, execution: Execution, fast: bool) -> None:
        """Queue an execution for the next assign()."""
        self._expect_fast = fast
        self._slow_waiting += not fast
        self._outbox.append((execution, fast))

    def requeue(self, executions: list[Execution], fast: bool) -> None:
        """Put executions a child did not start back at the head of the queue, in order."""
        self._outbox.extendleft((e, fast) for e in reversed(executions))
        self._slow_waiting += 0 if fast else len(executions)

    def unqueue(self) -> list[Execution]:
        """Empty the queue: what was waiting for a child, which now none will run."""
        executions = [e for e, _ in self._outbox]
        self._outbox.clear()
        self._slow_waiting = 0
        return executions

    def queued(self) -> bool:
        """Whether executions wait for a child."""
        return bool(self._outbox)

    def busy(self) -> list[Execution]:
        """Executions queued or held by a child."""
        held = [e for load in self.loads.values() for e in load.held.values()]
        return [e for e, _ in self._outbox] + held

    def holding(self) -> list[int]:
        """The children that hold executions."""
        return [key for key, load in self.loads.items() if load.held]

    # --- handing out ----------------------------------------------------------------------

    def has_room(self) -> bool:
        """Whether another execution would find a child soon (asked before taking one)."""
        if self._expect_fast and not self._slow_waiting and len(self._outbox) < self._fast_room():
            return True
        return len(self._outbox) < self.idle_slots()

    def idle_slots(self) -> int:
        """Idle children, and children not forked yet."""
        idle = sum(1 for load in self.loads.values() if load.idle())
        return idle + self.workers - len(self.loads)

    def _fast_room(self) -> int:
        """How many more fast tasks the children (and those not forked yet) may take."""
        room = DEPTH * (self.workers - len(self.loads))
        for load in self.loads.values():
            if not load.alone and not load.retiring:
                room += DEPTH - len(load.held)
        return room

    def assign(self) -> list[Assignment]:
        """Hand queued executions to children: fast ones several to a child, others alone."""
        room = {key: self._room_in(load) for key, load in self.loads.items()}
        new: set[int] = set()
        batches: dict[int, list[Execution]] = {}
        alone: set[int] = set()
        while self._outbox:
            execution, fast = self._outbox[0]
            key = self._fast_child(room, new) if fast else self._idle_child(room, batches, new)
            if key is None:
                break
            self._outbox.popleft()
            batches.setdefault(key, []).append(execution)
            room[key] -= 1
            if not fast:
                self._slow_waiting -= 1
                self.loads[key].alone, room[key] = True, 0
                alone.add(key)
        return [self._number(key, e, key in new, key in alone) for key, e in batches.items()]

    def _number(self, key: int, executions: list[Execution], new: bool, alone: bool) -> Assignment:
        load = self.loads[key]
        was_idle = not load.held
        numbered = list(
            zip(range(load.next_seq, load.next_seq + len(executions)), executions, strict=True)
        )
        load.held.update(numbered)
        load.next_seq += len(executions)
        load.sent += len(executions)
        load.retiring = load.retiring or load.sent >= self.max_tasks_per_child
        return Assignment(key, numbered, new, was_idle, alone)

    def _room_in(self, load: Load) -> int:
        if load.alone or load.retiring:
            return 0
        return min(DEPTH - len(load.held), self.max_tasks_per_child - load.sent)

    def _fast_child(self, room: dict[int, int], new: set[int]) -> int | None:
        """The child with the most room for fast tasks; a new one while it would not be idle."""
        best = max(room, key=room.__getitem__, default=None)
        if len(self.loads) < self.workers and (best is None or room[best] < DEPTH):
            best = self._add(new)
            room[best] = min(DEPTH, self.max_tasks_per_child)
        return best if best is not None and room[best] > 0 else None

    def _idle_child(
        self, room: dict[int, int], batches: dict[int, list[Execution]], new: set[int]
    ) -> int | None:
        """An idle child for a task that runs alone, a new one if need be."""
        for key, load in self.loads.items():
            if load.idle() and key not in batches and room[key] > 0:
                return key
        if len(self.loads) < self.workers:
            key = self._add(new)
            room[key] = 1
            return key
        return None

    def _add(self, new: set[int]) -> int:
        key, self._next_child = self._next_child, self._next_child + 1
        self.loads[key] = Load()
        new.add(key)
        return key

    # --- what comes back ------------------------------------------------------------------

    def settle(self, key: int, seq: int) -> Execution | None:
        """Task `seq` of child `key` has an outcome: it no longer holds it (None: not held)."""
        load = self.loads[key]
        execution = load.held.pop(seq, None)
        if not load.held:
            load.alone = False
        return execution

    def settled_up_to(self, key: int, finished: int) -> Iterator[tuple[int, Execution]]:
        """Settle every task of child `key` numbered up to `finished`."""
        for seq in [seq for seq in self.loads[key].held if seq <= finished]:
            execution = self.settle(key, seq)
            assert execution is not None
            yield seq, execution

    def take_back(self, key: int, started: int | None) -> list[Execution]:
        """Tasks child `key` was sent after `started`, which it now never starts (None: none).

        From now on the child is alone: nothing more waits behind the task it runs."""
        load = self.loads[key]
        load.alone = bool(load.held)
        if started is None:
            return []
        unstarted = [seq for seq in load.held if seq > started]
        load.sent -= len(unstarted)
        taken = [load.held.pop(seq) for seq in unstarted]
        load.alone = bool(load.held)
        return taken

    def stalled(self) -> list[int]:
        """Children holding tasks they have not started, while another child could run them."""
        if self._outbox or not self.idle_slots():
            return []
        return [key for key, load in self.loads.items() if len(load.held) > 1 and not load.alone]

    def retire(self, key: int) -> None:
        """Send child `key` nothing more."""
        self.loads[key].retiring = True

    def remove(self, key: int) -> dict[int, Execution]:
        """Forget child `key` (gone or stopped); returns what it held."""
        return self.loads.pop(key).held
