"""Backfill ranges: RangeDaily, RangeHourly, RangeByMinutes and RangeMonthly require the gaps.

A range names a task family (`of`) with one date-like parameter and a window of dates; its
requires() yields the instances in the window that are not complete, found in bulk: through
the family's bulk_complete(), else one exists_many() per filesystem (one listing per output
directory), else, for WrapperTasks and tasks with their own complete(), each instance's own
complete() on the worker's threads. Never one output check per instance.

Differs from luigi: "now" is the local time unless --tz names a zone (luigi: UTC, #2753);
RangeMonthly checks in bulk too (#2601); a range of WrapperTasks or output-less tasks asks
each instance's complete() and never ends in "unfulfilled dependencies" (#1093).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import zoneinfo
from dataclasses import dataclass
from typing import Any, ClassVar

from pipes import parameter_dates as dates
from pipes.exceptions import ParameterError
from pipes.parameter import (
    BoolParameter,
    DateHourParameter,
    DateMinuteParameter,
    DateParameter,
    DictParameter,
    IntParameter,
    MonthParameter,
    OptionalIntParameter,
    OptionalParameter,
    TaskParameter,
)
from pipes.task import Task, WrapperTask
from pipes.worker.completion import CompletionChecker

logger = logging.getLogger("pipes.tools.range")

# The families this module defines, for the CLI to import it when one is named.
RANGE_FAMILIES = ("RangeDaily", "RangeHourly", "RangeByMinutes", "RangeMonthly")


class _Optional:
    """Mixed in before a date parameter: also accepts None (the empty string on a command line)."""

    def parse(self, s: str) -> Any:
        return None if s == "" else super().parse(s)  # type: ignore[misc]

    def serialize(self, value: Any) -> str:
        return "" if value is None else super().serialize(value)  # type: ignore[misc]

    def normalize(self, value: Any) -> Any:
        return None if value is None else super().normalize(value)  # type: ignore[misc]


class _OptionalDate(_Optional, DateParameter):
    """A date or None."""


class _OptionalDateHour(_Optional, DateHourParameter):
    """A date and hour or None."""


class _OptionalDateMinute(_Optional, DateMinuteParameter):
    """A date, hour and minute or None."""


class _OptionalMonth(_Optional, MonthParameter):
    """A month or None."""


@dataclass(frozen=True)
class RangeReport:
    """What one check of a range found: counts, the oldest gap, and how many were required."""

    family: str
    expected: int
    missing: int
    oldest_missing: str | None
    required: int

    def text(self) -> str:
        """One line for the log and the status page."""
        if not self.expected:
            return f"{self.family}: empty range, no instances expected"
        done = self.expected - self.missing
        line = f"{self.family}: {done} of {self.expected} complete, {self.missing} missing"
        if self.oldest_missing is not None:
            line += f" (oldest {self.oldest_missing}); requiring {self.required}"
            if self.required < self.missing:
                line += " (task_limit)"
        return line


def _as_datetime(value: dt.date) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.combine(value, dt.time())


def _zone(name: str | None) -> dt.tzinfo | None:
    """The zone called `name` (None: the local zone); ParameterError for an unknown name."""
    if name is None:
        return None
    if name.upper() == "UTC":  # needs no zone database
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as err:
        raise ParameterError(
            f"unknown time zone {name!r} for --tz (expected an IANA name like UTC or Europe/Paris)"
        ) from err


class RangeBase(WrapperTask):
    """Requires the missing instances of `of` between start and stop (a WrapperTask).

    Subclasses give the grid: datetime_to_parameter, parameter_to_datetime, moving_start,
    moving_stop and _unit; override missing_datetimes for a custom bulk check.
    """

    _visible_in_registry = False
    _unit: ClassVar[dates.Unit] = dates.DAY
    _back_flag: ClassVar[str] = "--days-back"  # the option that bounds how far back it looks

    of = TaskParameter(description="the task family to complete (one date-like parameter)")
    of_params = DictParameter(default={}, description="other parameters of `of`, as JSON")
    reverse = BoolParameter(
        default=False, description="fill the newest gaps first (needed when start is not given)"
    )
    task_limit = IntParameter(default=50, description="require at most this many instances")
    now = OptionalIntParameter(
        default=None, description="the current time in seconds since the epoch (for tests)"
    )
    param_name = OptionalParameter(
        default=None,
        positional=False,
        description="the parameter of `of` that takes the date (default: its first)",
    )
    tz = OptionalParameter(
        default=None,
        description="IANA time zone in which `now` falls, e.g. UTC (default: the local zone)",
    )

    start: Any
    stop: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Check the parameters now, so a bad range is a usage error before anything runs."""
        super().__init__(*args, **kwargs)
        family = self.get_task_family()
        if self.start is None and self.stop is None:
            raise ParameterError(f"{family} needs --start or --stop (or both)")
        if self.start is None and not self.reverse:
            raise ParameterError(f"{family} without --start needs --reverse")
        if self.start is not None and self.stop is not None and self.start > self.stop:
            raise ParameterError(f"{family}: --start {self.start} is after --stop {self.stop}")
        if self.task_limit < 1:
            raise ParameterError(f"{family}: --task-limit must be at least 1")
        names = [name for name, _ in self.of.get_params()]
        if self.param_name is not None and self.param_name not in names:
            of = self.of.get_task_family()
            raise ParameterError(
                f"{family}: {of} has no parameter {self.param_name!r} (--param-name)"
            )
        if self.param_name is None and not names:
            raise ParameterError(f"{family}: {self.of.get_task_family()} has no parameters")
        _zone(self.tz)
        # one instance now, so a wrong --of-params is a usage error, not a scheduling error
        self._instance(self.parameter_to_datetime(self.start or self.stop))

    def __repr__(self) -> str:
        """Only the parameters that differ from their defaults: a range has many."""
        shown = [
            f"{name}={param.serialize(self.param_kwargs[name])}"
            for name, param in self.get_params()
            if not param.has_default or self.param_kwargs[name] != param.default
        ]
        return f"{self.task_family}({', '.join(shown)})"

    # ----- the grid (luigi's method names, for subclasses) -------------------------------

    def datetime_to_parameter(self, value: dt.datetime) -> Any:
        """The `of` parameter value for a point of the grid."""
        return value

    def parameter_to_datetime(self, value: Any) -> dt.datetime:
        """The grid point of an `of` parameter value (or start/stop)."""
        return _as_datetime(value)

    def moving_start(self, now: dt.datetime) -> dt.datetime:
        """The oldest time the range looks at, however old `start` is."""
        raise NotImplementedError

    def moving_stop(self, now: dt.datetime) -> dt.datetime:
        """The time the range stops at (exclusive), however late `stop` is."""
        raise NotImplementedError

    def _interval(self) -> int:
        return 1

    def finite_datetimes(self, start: dt.datetime, stop: dt.datetime) -> list[dt.datetime]:
        """Every grid point t with start <= t < stop, oldest first."""
        unit, step = self._unit, self._interval()
        index = unit.to_index(start)
        index -= index % step
        points: list[dt.datetime] = []
        while True:
            point = _as_datetime(unit.from_index(index))
            if point >= stop:
                return points
            if point >= start:
                points.append(point)
            index += step

    def missing_datetimes(self, finite_datetimes: list[dt.datetime]) -> list[dt.datetime]:
        """The grid points whose instance is not complete, all checked together."""
        instances = {point: self._instance(point) for point in finite_datetimes}
        checker = CompletionChecker()
        checker.prefetch(instances.values())
        return [point for point, task in instances.items() if not checker.complete(task)]

    # ----- requires, run -----------------------------------------------------------------

    @property
    def _param_name(self) -> str:
        if self.param_name is not None:
            return self.param_name
        return self.of.get_params()[0][0]

    def _instance(self, point: dt.datetime) -> Task:
        values = dict(self.of_params)
        values[self._param_name] = self.datetime_to_parameter(point)
        return self.of(**values)

    def _now(self) -> dt.datetime:
        seconds = time.time() if self.now is None else self.now
        zone = _zone(self.tz)
        if zone is None:
            return dt.datetime.fromtimestamp(seconds)
        return dt.datetime.fromtimestamp(seconds, zone).replace(tzinfo=None)

    def _window(self) -> tuple[dt.datetime, dt.datetime, bool]:
        """(start, stop) of the check, and whether the *_back bound cut --start off."""
        now = self._now()
        start, stop = self.moving_start(now), self.moving_stop(now)
        clipped = False
        if self.start is not None:
            wanted = self.parameter_to_datetime(self.start)
            clipped = wanted < start
            start = max(start, wanted)
        if self.stop is not None:
            stop = min(stop, self.parameter_to_datetime(self.stop))
        return start, stop, clipped

    def requires(self) -> list[Task]:
        """The missing instances, oldest first (newest first with reverse), at most task_limit.

        Checked afresh on each call (the worker asks once per walk), so a long-lived process
        that builds the same range again sees the gaps and the time of that moment.
        """
        start, stop, clipped = self._window()
        points = self.finite_datetimes(start, stop) if start < stop else []
        if clipped:
            first = self._param_text(points[0]) if points else "nothing"
            logger.info(
                "%s: --start %s is older than %s allows: checking from %s",
                self.get_task_family(),
                self._unit.format(self.start),
                self._back_flag,
                first,
            )
        missing = sorted(self.missing_datetimes(points)) if points else []
        chosen = missing[-self.task_limit :][::-1] if self.reverse else missing[: self.task_limit]
        required = [self._instance(point) for point in chosen]
        oldest = self._param_text(missing[0]) if missing else None
        report = RangeReport(
            self.of.get_task_family(), len(points), len(missing), oldest, len(required)
        )
        logger.info("%s", report.text())
        self.__dict__["_range_report"] = report
        return required

    def _param_text(self, point: dt.datetime) -> str:
        param = dict(self.of.get_params())[self._param_name]
        return param.serialize(param.normalize(self.datetime_to_parameter(point)))

    def run(self) -> None:
        """Show what the check found as this task's status message (on the status page)."""
        report = self.__dict__.get("_range_report")
        if report is None:  # rebuilt in a child that did not see the walk: check again
            self.requires()
            report = self.__dict__["_range_report"]
        self.set_status_message(report.text())

    def range_report(self) -> RangeReport:
        """What a fresh check finds: counts and the oldest gap (for scripts and monitoring)."""
        self.requires()
        report: RangeReport = self.__dict__["_range_report"]
        return report


def _shift(now: dt.datetime, **delta: int) -> dt.datetime:
    try:
        return now + dt.timedelta(**delta)
    except OverflowError:  # a huge *_back: clamp to the calendar's ends
        return dt.datetime.min if next(iter(delta.values())) < 0 else dt.datetime.max


class RangeDaily(RangeBase):
    """Requires the missing daily instances of `of` (a DateParameter) from start to stop."""

    start = _OptionalDate(default=None, description="first day, inclusive")
    stop = _OptionalDate(default=None, description="last day, exclusive")
    days_back = IntParameter(default=100, description="look back at most this many days from now")
    days_forward = IntParameter(default=0, description="look this many days past now")

    def datetime_to_parameter(self, value: dt.datetime) -> Any:
        return value.date()

    def moving_start(self, now: dt.datetime) -> dt.datetime:
        return _shift(now, days=-self.days_back)

    def moving_stop(self, now: dt.datetime) -> dt.datetime:
        return _shift(now, days=self.days_forward)


class RangeHourly(RangeBase):
    """Requires the missing hourly instances of `of` (a DateHourParameter) from start to stop."""

    _unit = dates.HOUR
    _back_flag = "--hours-back"

    start = _OptionalDateHour(default=None, description="first hour, inclusive")
    stop = _OptionalDateHour(default=None, description="last hour, exclusive")
    hours_back = IntParameter(default=100 * 24, description="look back at most this many hours")
    hours_forward = IntParameter(default=0, description="look this many hours past now")

    def moving_start(self, now: dt.datetime) -> dt.datetime:
        return _shift(now, hours=-self.hours_back)

    def moving_stop(self, now: dt.datetime) -> dt.datetime:
        return _shift(now, hours=self.hours_forward)


class RangeByMinutes(RangeBase):
    """Requires the missing instances of `of` (a DateMinuteParameter) every minutes_interval."""

    _unit = dates.MINUTE
    _back_flag = "--minutes-back"

    start = _OptionalDateMinute(default=None, description="first minute, inclusive")
    stop = _OptionalDateMinute(default=None, description="last minute, exclusive")
    minutes_back = IntParameter(default=60 * 24, description="look back at most this many minutes")
    minutes_forward = IntParameter(default=0, description="look this many minutes past now")
    minutes_interval = IntParameter(default=1, description="minutes between instances (divides 60)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Also check that minutes_interval divides an hour."""
        super().__init__(*args, **kwargs)
        if not 0 < self.minutes_interval < 60 or 60 % self.minutes_interval:
            raise ParameterError(
                f"RangeByMinutes: --minutes-interval {self.minutes_interval} must divide 60"
            )

    def _interval(self) -> int:
        return self.minutes_interval

    def moving_start(self, now: dt.datetime) -> dt.datetime:
        return _shift(now, minutes=-self.minutes_back)

    def moving_stop(self, now: dt.datetime) -> dt.datetime:
        return _shift(now, minutes=self.minutes_forward)


class RangeMonthly(RangeBase):
    """Requires the missing monthly instances of `of` (a MonthParameter) from start to stop."""

    _unit = dates.MONTH
    _back_flag = "--months-back"

    start = _OptionalMonth(default=None, description="first month, inclusive")
    stop = _OptionalMonth(default=None, description="last month, exclusive")
    months_back = IntParameter(default=13, description="look back at most this many months")
    months_forward = IntParameter(default=0, description="look this many months past now")

    def datetime_to_parameter(self, value: dt.datetime) -> Any:
        return value.date().replace(day=1)

    def _months(self, now: dt.datetime, months: int) -> dt.datetime:
        index = dates.MONTH.to_index(now) + months
        low, high = dates.MONTH.to_index(dt.date.min), dates.MONTH.to_index(dt.date.max)
        return _as_datetime(dates.MONTH.from_index(min(max(index, low), high)))

    def moving_start(self, now: dt.datetime) -> dt.datetime:
        return self._months(now, -self.months_back)

    def moving_stop(self, now: dt.datetime) -> dt.datetime:
        return self._months(now, self.months_forward)
