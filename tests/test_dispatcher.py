"""Which child runs what (pipes/worker/dispatcher.py): the rules, without a single process."""

import pipes
from pipes.worker.dispatcher import DEPTH, FAST_SECONDS, Assignment, Dispatcher
from pipes.worker.execute import Execution


class Step(pipes.Task):
    n = pipes.IntParameter()


class Other(pipes.Task):
    n = pipes.IntParameter()


def executions(count, cls=Step):
    return [Execution(cls(n=n)) for n in range(count)]


def queue_all(dispatcher, items, timeout=None):
    for execution in items:
        dispatcher.queue(execution, dispatcher.is_fast(execution.task, timeout))


def sent(assignments: list[Assignment]) -> dict[int, list[int]]:
    """child -> the n of each task sent to it, in order."""
    return {a.child: [e.task.n for _, e in a.numbered] for a in assignments}


def fast_dispatcher(workers=2, max_tasks_per_child=1000):
    dispatcher = Dispatcher(workers, max_tasks_per_child)
    dispatcher.learn(Step(n=-1), FAST_SECONDS / 10)
    return dispatcher


def test_tasks_of_a_family_never_timed_go_alone_one_per_child_up_to_workers():
    dispatcher = Dispatcher(workers=2, max_tasks_per_child=1000)
    queue_all(dispatcher, executions(3))
    assignments = dispatcher.assign()
    assert sent(assignments) == {1: [0], 2: [1]}
    assert all(a.new and a.alone and a.was_idle for a in assignments)
    assert [e.task.n for e in dispatcher.busy()] == [2, 0, 1]  # 2 waits for an idle child
    assert dispatcher.assign() == []
    assert dispatcher.settle(1, 1).task == Step(n=0)
    assert sent(dispatcher.assign()) == {1: [2]}


def test_a_fast_family_goes_several_to_a_child_and_fills_both_children():
    dispatcher = fast_dispatcher()
    queue_all(dispatcher, executions(2 * DEPTH + 3))
    assignments = dispatcher.assign()
    by_child = sent(assignments)
    assert sorted(len(ns) for ns in by_child.values()) == [DEPTH, DEPTH]
    assert sorted(n for ns in by_child.values() for n in ns) == list(range(2 * DEPTH))
    assert not any(a.alone for a in assignments)
    assert [seq for seq, _ in assignments[0].numbered] == list(range(1, DEPTH + 1))
    assert not dispatcher.has_room()  # three wait, and every child is full


def test_a_task_with_a_timeout_is_never_sent_behind_others():
    dispatcher = fast_dispatcher()
    assert dispatcher.is_fast(Step(n=1), None)
    assert not dispatcher.is_fast(Step(n=1), 30.0)
    assert not dispatcher.is_fast(Other(n=1), None)  # a family not seen yet


def test_a_family_whose_child_died_goes_alone_until_fast_runs_bring_it_back():
    dispatcher = fast_dispatcher()
    dispatcher.lost(Step(n=1))
    assert not dispatcher.is_fast(Step(n=2), None)
    runs = 0
    while not dispatcher.is_fast(Step(n=2), None):
        dispatcher.learn(Step(n=2), 0.0)
        runs += 1
    assert 5 <= runs <= 15  # the remembered time decays: a few fast runs, not one


def test_room_for_fast_tasks_is_what_children_may_still_hold():
    dispatcher = fast_dispatcher(workers=2)
    queue_all(dispatcher, executions(2 * DEPTH - 1))
    assert dispatcher.has_room()
    queue_all(dispatcher, executions(1))
    assert not dispatcher.has_room()


def test_taking_back_returns_the_tasks_after_the_started_one_and_leaves_the_child_alone():
    dispatcher = fast_dispatcher(workers=1)
    queue_all(dispatcher, executions(5))
    [assignment] = dispatcher.assign()
    taken = dispatcher.take_back(assignment.child, started=2)
    assert [e.task.n for e in taken] == [2, 3, 4]
    load = dispatcher.loads[assignment.child]
    assert list(load.held) == [1, 2] and load.alone and load.sent == 2
    dispatcher.requeue(taken, fast=True)
    assert dispatcher.assign() == []  # nothing more waits behind its task
    dispatcher.settle(assignment.child, 1)
    dispatcher.settle(assignment.child, 2)
    assert not load.alone
    assert sent(dispatcher.assign()) == {assignment.child: [2, 3, 4]}


def test_a_child_whose_lock_is_stuck_gives_nothing_back_and_gets_nothing_more():
    dispatcher = fast_dispatcher(workers=1)
    queue_all(dispatcher, executions(3))
    [assignment] = dispatcher.assign()
    assert dispatcher.take_back(assignment.child, started=None) == []
    assert dispatcher.loads[assignment.child].alone


def test_a_child_holding_waiting_tasks_stalls_only_while_another_could_run_them():
    dispatcher = fast_dispatcher(workers=2)
    queue_all(dispatcher, executions(3))
    by_child = sent(dispatcher.assign())
    assert sorted(len(ns) for ns in by_child.values()) == [1, 2]
    assert dispatcher.stalled() == []  # no child idles
    lone = next(child for child, ns in by_child.items() if len(ns) == 1)
    dispatcher.settle(lone, 1)
    assert dispatcher.stalled() == [next(c for c in by_child if c != lone)]


def test_a_child_that_reached_max_tasks_retires_and_a_new_one_takes_the_rest():
    dispatcher = Dispatcher(workers=1, max_tasks_per_child=2)
    dispatcher.learn(Step(n=-1), 0.0)
    queue_all(dispatcher, executions(3))
    assert sent(dispatcher.assign()) == {1: [0, 1]}
    assert dispatcher.loads[1].retiring
    assert dispatcher.assign() == []  # one worker: the next child waits for this one to go
    dispatcher.settle(1, 1)
    dispatcher.settle(1, 2)
    assert dispatcher.remove(1) == {}
    [assignment] = dispatcher.assign()
    assert assignment.new and sent([assignment]) == {2: [2]}


def test_finished_up_to_settles_the_tasks_a_child_marked_finished():
    dispatcher = fast_dispatcher(workers=1)
    queue_all(dispatcher, executions(4))
    dispatcher.assign()
    settled = [(seq, e.task.n) for seq, e in dispatcher.settled_up_to(1, finished=2)]
    assert settled == [(1, 0), (2, 1)]
    assert list(dispatcher.loads[1].held) == [3, 4]
    assert dispatcher.settle(1, 1) is None  # its message, when it comes, finds nothing held
