"""Task class helpers: @inherits, @requires, previous() and get_previous_completed()."""

import datetime as dt

import pytest

import pipes
from pipes import date_interval
from pipes.exceptions import TaskDefinitionError
from pipes.util import get_previous_completed, inherits, previous, requires

# ----- @inherits ---------------------------------------------------------------------------------


def test_inherits_copies_parent_params_and_clone_parent_builds_parent():
    class InhParent(pipes.Task):
        day = pipes.DateParameter()
        size = pipes.IntParameter(default=10)

    @inherits(InhParent)
    class InhChild(pipes.Task):
        label = pipes.Parameter(default="c")

    assert [n for n, _ in InhChild.get_params()] == ["day", "size", "label"]
    child = InhChild(day="2024-05-01", size=3)
    assert (child.day, child.size, child.label) == (dt.date(2024, 5, 1), 3, "c")
    assert child.clone_parent() is InhParent(day=dt.date(2024, 5, 1), size=3)
    assert child.clone_parent(size=4) is InhParent(day=dt.date(2024, 5, 1), size=4)
    assert InhParent.get_param_names() == ["day", "size"]  # the parent is left alone


def test_inherits_copies_params_of_every_parent_and_clone_parents_builds_each():
    class InhA(pipes.Task):
        a = pipes.Parameter()

    class InhB(pipes.Task):
        b = pipes.Parameter()
        shared = pipes.Parameter(default="s")

    @inherits(InhA, InhB)
    class InhAB(pipes.Task):
        pass

    task = InhAB(a="1", b="2")
    assert set(InhAB.get_param_names()) == {"a", "b", "shared"}
    assert task.clone_parent() is InhA(a="1")
    assert task.clone_parents() == [InhA(a="1"), InhB(b="2", shared="s")]


def test_inherits_accepts_parents_by_keyword():
    class InhKwParent(pipes.Task):
        k = pipes.IntParameter()

    @inherits(first=InhKwParent)
    class InhKwChild(pipes.Task):
        pass

    assert InhKwChild(k=1).clone_parent() is InhKwParent(k=1)


def test_inherits_keeps_child_param_when_already_defined():
    class InhDefParent(pipes.Task):
        mode = pipes.Parameter(default="parent")
        n = pipes.IntParameter(default=1)

    @inherits(InhDefParent)
    class InhDefChild(pipes.Task):
        mode = pipes.Parameter(default="child")

    child = InhDefChild()
    assert child.mode == "child"
    assert child.n == 1
    assert child.clone_parent().mode == "child"  # the child's value is passed on


def test_inherits_raises_when_given_no_task_class():
    with pytest.raises(TaskDefinitionError, match="at least one task class"):
        inherits()


# ----- @requires -----------------------------------------------------------------------------


def test_requires_single_parent_makes_it_the_requirement_and_input(tmp_path):
    class ReqParent(pipes.Task):
        day = pipes.DateParameter()

        def output(self):
            return pipes.LocalTarget(tmp_path / f"{self.day}.txt")

    @requires(ReqParent)
    class ReqChild(pipes.Task):
        pass

    child = ReqChild(day="2024-01-02")
    assert child.requires() is ReqParent(day=dt.date(2024, 1, 2))
    assert child.input().path == str(tmp_path / "2024-01-02.txt")


def test_requires_many_parents_makes_a_list_of_requirements():
    class ReqP1(pipes.Task):
        x = pipes.IntParameter()

    class ReqP2(pipes.Task):
        x = pipes.IntParameter()
        y = pipes.IntParameter(default=2)

    @requires(ReqP1, ReqP2)
    class ReqMany(pipes.Task):
        pass

    task = ReqMany(x=1, y=5)
    assert task.requires() == [ReqP1(x=1), ReqP2(x=1, y=5)]
    assert task.deps() == [ReqP1(x=1), ReqP2(x=1, y=5)]


def test_requires_builds_graph_that_runs_parent_first(tmp_path):
    class ReqRunParent(pipes.Task):
        n = pipes.IntParameter()

        def output(self):
            return pipes.LocalTarget(tmp_path / f"parent{self.n}")

        def run(self):
            with self.output().open("w") as f:
                f.write(str(self.n * 10))

    @requires(ReqRunParent)
    class ReqRunChild(pipes.Task):
        def output(self):
            return pipes.LocalTarget(tmp_path / f"child{self.n}")

        def run(self):
            with self.input().open() as src, self.output().open("w") as dst:
                dst.write(src.read() + "!")

    assert pipes.build([ReqRunChild(n=4)])
    assert (tmp_path / "child4").read_text() == "40!"


# ----- previous() ------------------------------------------------------------------------------


def test_previous_steps_back_one_day_when_task_has_date_parameter():
    class PrevDay(pipes.Task):
        day = pipes.DateParameter()
        other = pipes.IntParameter(default=7)

    task = PrevDay(day=dt.date(2024, 3, 1), other=3)
    assert previous(task) is PrevDay(day=dt.date(2024, 2, 29), other=3)


def test_previous_steps_back_one_interval_when_date_parameter_has_interval():
    class PrevWeekly(pipes.Task):
        day = pipes.DateParameter(interval=7, start=dt.date(2024, 1, 1))

    task = PrevWeekly(day=dt.date(2024, 1, 15))
    assert previous(task).day == dt.date(2024, 1, 8)


def test_previous_steps_back_one_month_when_task_has_month_parameter():
    class PrevMonth(pipes.Task):
        month = pipes.MonthParameter()

    assert previous(PrevMonth(month="2024-01")).month == dt.date(2023, 12, 1)
    assert previous(PrevMonth(month="2024-03")).month == dt.date(2024, 2, 1)


def test_previous_steps_back_one_hour_when_task_has_date_hour_parameter():
    class PrevHour(pipes.Task):
        hour = pipes.DateHourParameter()

    task = PrevHour(hour=dt.datetime(2024, 1, 1, 0))
    assert previous(task).hour == dt.datetime(2023, 12, 31, 23)


def test_previous_steps_back_one_interval_when_task_has_date_interval_parameter():
    class PrevInterval(pipes.Task):
        span = pipes.DateIntervalParameter()

    month = previous(PrevInterval(span="2024-03")).span
    assert month == date_interval.Month(2024, 2)
    assert month.to_string() == "2024-02"
    week = previous(PrevInterval(span="2024-W01")).span
    assert week.to_string() == "2023-W52"
    custom = previous(PrevInterval(span="2024-01-10-2024-01-13")).span
    assert (custom.date_a, custom.date_b) == (dt.date(2024, 1, 7), dt.date(2024, 1, 10))


def test_previous_raises_when_task_has_no_date_parameter():
    class PrevNone(pipes.Task):
        n = pipes.IntParameter()

    with pytest.raises(TaskDefinitionError, match="PrevNone: it has no date-like parameter"):
        previous(PrevNone(n=1))


def test_previous_raises_when_task_has_two_date_parameters():
    class PrevTwo(pipes.Task):
        start = pipes.DateParameter()
        end = pipes.DateParameter()

    with pytest.raises(TaskDefinitionError, match="more than one date-like parameter"):
        previous(PrevTwo(start="2024-01-01", end="2024-01-05"))


# ----- get_previous_completed -------------------------------------------------------------------


def test_get_previous_completed_returns_closest_earlier_complete_task(tmp_path):
    class Daily(pipes.Task):
        day = pipes.DateParameter()

        def output(self):
            return pipes.LocalTarget(tmp_path / f"{self.day}.done")

    for day in ("2024-01-03", "2024-01-06"):
        (tmp_path / f"{day}.done").write_text("")
    (tmp_path / "2024-01-10.done").write_text("")  # the task itself does not count

    found = get_previous_completed(Daily(day="2024-01-10"))
    assert found is Daily(day=dt.date(2024, 1, 6))
    assert get_previous_completed(Daily(day="2024-01-06")) is Daily(day=dt.date(2024, 1, 3))


def test_get_previous_completed_returns_none_when_nothing_within_max_steps(tmp_path):
    class DailyFar(pipes.Task):
        day = pipes.DateParameter()

        def output(self):
            return pipes.LocalTarget(tmp_path / f"{self.day}.done")

    (tmp_path / "2024-01-01.done").write_text("")
    task = DailyFar(day="2024-01-10")
    assert get_previous_completed(task, max_steps=8) is None
    assert get_previous_completed(task, max_steps=9) is DailyFar(day=dt.date(2024, 1, 1))
