"""Task events: which fire during a build, with which arguments, in which order."""

import time

import pytest

import pipes
from pipes import Event

ALL_EVENTS = [
    Event.DEPENDENCY_DISCOVERED,
    Event.DEPENDENCY_MISSING,
    Event.DEPENDENCY_PRESENT,
    Event.BROKEN_TASK,
    Event.START,
    Event.FAILURE,
    Event.SUCCESS,
    Event.PROCESSING_TIME,
]

SHORT = {
    Event.DEPENDENCY_DISCOVERED: "discovered",
    Event.DEPENDENCY_MISSING: "missing",
    Event.DEPENDENCY_PRESENT: "present",
    Event.BROKEN_TASK: "broken",
    Event.START: "start",
    Event.FAILURE: "failure",
    Event.SUCCESS: "success",
    Event.PROCESSING_TIME: "time",
}


pytestmark = pytest.mark.usefixtures("fresh_config")  # an empty config, in tmp_path


def recording_base(tmp_path):
    """A base task class whose handlers record (event, family, extra args) for every subclass."""
    log = []

    class Recorded(pipes.Task):
        name = pipes.Parameter(default="")

        def output(self):
            return pipes.LocalTarget(tmp_path / f"{self.task_family}{self.name}")

        def run(self):
            with self.output().open("w") as f:
                f.write("x")

    for event in ALL_EVENTS:

        def handler(task, *args, event=event):
            log.append((SHORT[event], task.task_family, args))

        Recorded.event_handler(event)(handler)
    return Recorded, log


def names(log):
    """(event, family) pairs, dropping arguments that vary from run to run."""
    return [(event, family) for event, family, _ in log]


def test_events_fire_in_walk_then_run_order_with_task_arguments(tmp_path):
    base, log = recording_base(tmp_path)

    class EvReady(base):
        pass

    class EvTodo(base):
        def run(self):
            time.sleep(0.02)  # on purpose: a processing time above zero
            super().run()

    class EvRoot(base):
        def requires(self):
            return [EvReady(), EvTodo()]

    EvReady().output().open("w").close()
    assert pipes.build([EvRoot()])
    assert names(log) == [
        ("discovered", "EvRoot"),
        ("discovered", "EvRoot"),
        ("present", "EvReady"),
        ("start", "EvTodo"),
        ("success", "EvTodo"),
        ("time", "EvTodo"),
        ("start", "EvRoot"),
        ("success", "EvRoot"),
        ("time", "EvRoot"),
    ]
    assert log[0][2] == (EvReady(),)
    assert log[1][2] == (EvTodo(),)
    for event, _, args in log[2:]:
        assert args == () or event == "time"
    [todo_seconds] = [a[0] for e, family, a in log if (e, family) == ("time", "EvTodo")]
    assert isinstance(todo_seconds, float)
    assert 0.02 <= todo_seconds < 10


def test_failure_event_receives_the_raised_exception(tmp_path):
    base, log = recording_base(tmp_path)
    raised = ValueError("bad row 17")

    class EvFails(base):
        def run(self):
            raise raised

    assert not pipes.build([EvFails()])
    assert names(log) == [("start", "EvFails"), ("failure", "EvFails")]
    assert log[1][2] == (raised,)


def test_failure_event_fires_when_run_returns_without_output(tmp_path):
    base, log = recording_base(tmp_path)

    class EvNoOutput(base):
        def run(self):
            pass

    assert not pipes.build([EvNoOutput()])
    assert names(log) == [("start", "EvNoOutput"), ("failure", "EvNoOutput")]
    [error] = log[1][2]
    assert "outputs are missing" in str(error)


def test_dependency_missing_fires_for_absent_external_data(tmp_path):
    base, log = recording_base(tmp_path)

    class EvExternal(base):
        run = None

    class EvNeedsExternal(base):
        def requires(self):
            return EvExternal()

    assert not pipes.build([EvNeedsExternal()])
    assert names(log) == [("discovered", "EvNeedsExternal"), ("missing", "EvExternal")]
    assert log[0][2] == (EvExternal(),)
    assert log[1][2] == ()


def test_broken_task_fires_with_exception_when_requires_raises(tmp_path):
    base, log = recording_base(tmp_path)
    raised = LookupError("no partition")

    class EvBroken(base):
        def requires(self):
            raise raised

    class EvAboveBroken(base):
        def requires(self):
            return EvBroken()

    assert not pipes.build([EvAboveBroken()])
    assert names(log) == [("discovered", "EvAboveBroken"), ("broken", "EvBroken")]
    assert log[1][2] == (raised,)


def test_events_fire_for_dynamic_dependencies_when_parent_resumes(tmp_path):
    base, log = recording_base(tmp_path)

    class EvDynChild(base):
        pass

    class EvDynParent(base):
        def run(self):
            yield EvDynChild()
            super().run()

    assert pipes.build([EvDynParent()])
    assert names(log) == [
        ("start", "EvDynParent"),
        ("start", "EvDynChild"),
        ("success", "EvDynChild"),
        ("time", "EvDynChild"),
        ("success", "EvDynParent"),
        ("time", "EvDynParent"),
    ]


def test_handler_on_parent_class_fires_for_subclass_but_not_for_sibling(tmp_path):
    seen = []

    class EvParent(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / self.task_family)

        def run(self):
            self.output().open("w").close()

    class EvChild(EvParent):
        pass

    class EvSibling(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "sibling")

        def run(self):
            self.output().open("w").close()

    @EvParent.event_handler(Event.SUCCESS)
    def on_parent_success(task):
        seen.append(("parent-handler", task.task_family))

    @EvChild.event_handler(Event.SUCCESS)
    def on_child_success(task):
        seen.append(("child-handler", task.task_family))

    assert pipes.build([EvChild(), EvSibling(), EvParent()])
    assert sorted(seen) == [
        ("child-handler", "EvChild"),
        ("parent-handler", "EvChild"),
        ("parent-handler", "EvParent"),
    ]


def test_raising_handler_neither_fails_task_nor_stops_other_handlers(tmp_path):
    calls = []

    class EvLoud(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "loud")

        def run(self):
            self.output().open("w").close()

    @EvLoud.event_handler(Event.START)
    def explodes(task):
        calls.append("explodes")
        raise RuntimeError("handler bug")

    @EvLoud.event_handler(Event.START)
    def records(task):
        calls.append("records")

    @EvLoud.event_handler(Event.SUCCESS)
    def also_explodes(task):
        raise RuntimeError("handler bug")

    result = pipes.build([EvLoud()])
    assert result
    assert result.completed == [EvLoud()]
    assert calls == ["explodes", "records"]


def test_raising_walk_handler_does_not_break_scheduling(tmp_path):
    class EvQuietDep(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / "dep")

        def run(self):
            self.output().open("w").close()

    class EvQuietRoot(pipes.Task):
        def requires(self):
            return EvQuietDep()

        def output(self):
            return pipes.LocalTarget(tmp_path / "root")

        def run(self):
            self.output().open("w").close()

    @EvQuietRoot.event_handler(Event.DEPENDENCY_DISCOVERED)
    def explodes(task, dependency):
        raise RuntimeError("handler bug")

    result = pipes.build([EvQuietRoot()])
    assert result
    assert set(result.completed) == {EvQuietRoot(), EvQuietDep()}
