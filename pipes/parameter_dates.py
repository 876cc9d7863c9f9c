"""Date, time and duration parameters, with the text forms they read and write.

Each `Unit` (day, month, year, hour, minute, second) also numbers its values, so parameters
can snap a value to an interval grid and step to the next value with integer arithmetic.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple, Unpack

from pipes import date_interval
from pipes.exceptions import ParameterError
from pipes.parameter_base import NO_VALUE, Parameter, ParameterOptions, fail

_DAY_SECONDS = 86400
_YMD = r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})"


def _seconds(value: dt.date) -> int:
    """Seconds from 0001-01-01 (ordinal 0) to `value`; a date counts as its midnight."""
    seconds = value.toordinal() * _DAY_SECONDS
    if isinstance(value, dt.datetime):
        seconds += value.hour * 3600 + value.minute * 60 + value.second
    return seconds


def _from_seconds(seconds: int) -> dt.datetime:
    day, rest = divmod(seconds, _DAY_SECONDS)
    return dt.datetime.combine(dt.date.fromordinal(day), dt.time()) + dt.timedelta(seconds=rest)


def _ymd(d: dt.date) -> str:
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"


class Unit(NamedTuple):  # not a dataclass: dataclasses costs `import pipes` ~7 ms
    """One granularity: how its values are written, and how they map to consecutive integers."""

    kind: str
    form: str
    pattern: re.Pattern[str]
    to_index: Callable[[dt.date], int]
    from_index: Callable[[int], dt.date]
    format: Callable[[dt.date], str]
    default_start: dt.date

    def parse(self, s: str) -> dt.date:
        """The value written as `s`, truncated to this unit; raises ParameterError."""
        m = self.pattern.fullmatch(s)
        try:
            if m is None:
                raise ValueError(s)
            fields: dict[str, Any] = {k: int(v) for k, v in m.groupdict().items() if v is not None}
            value = dt.datetime(fields.pop("year"), fields.pop("month", 1), fields.pop("day", 1))
            return self.from_index(self.to_index(value.replace(**fields)))
        except ValueError as err:
            raise ParameterError(f"invalid {self.kind} {s!r} (expected {self.form})") from err


def _seconds_unit(kind: str, form: str, pattern: str, size: int) -> Unit:
    """A unit of `size` seconds whose values are datetimes."""

    def fmt(value: dt.date) -> str:
        t = _from_seconds(_seconds(value))  # also accepts a plain date, as midnight
        text = f"{_ymd(t)}T{t.hour:02d}{t.minute:02d}{t.second:02d}"
        return text[: len(form)]

    return Unit(
        kind=kind,
        form=form,
        pattern=re.compile(_YMD + "T" + pattern),
        to_index=lambda v: _seconds(v) // size,
        from_index=lambda i: _from_seconds(i * size),
        format=fmt,
        default_start=dt.datetime(1970, 1, 1),
    )


DAY = Unit(
    kind="date",
    form="YYYY-MM-DD",
    pattern=re.compile(_YMD),
    to_index=dt.date.toordinal,
    from_index=dt.date.fromordinal,
    format=_ymd,
    default_start=dt.date.min,
)
MONTH = Unit(
    kind="month",
    form="YYYY-MM",
    pattern=re.compile(r"(?P<year>\d{4})-(?P<month>\d{2})"),
    to_index=lambda v: v.year * 12 + v.month - 1,
    from_index=lambda i: dt.date(i // 12, i % 12 + 1, 1),
    format=lambda v: f"{v.year:04d}-{v.month:02d}",
    default_start=dt.date.min,
)
YEAR = Unit(
    kind="year",
    form="YYYY",
    pattern=re.compile(r"(?P<year>\d{4})"),
    to_index=lambda v: v.year,
    from_index=lambda i: dt.date(i, 1, 1),
    format=lambda v: f"{v.year:04d}",
    default_start=dt.date.min,
)
HOUR = _seconds_unit("hour", "YYYY-MM-DDTHH", r"(?P<hour>\d{2})", 3600)
MINUTE = _seconds_unit("minute", "YYYY-MM-DDTHHMM", r"(?P<hour>\d{2}):?(?P<minute>\d{2})", 60)
SECOND = _seconds_unit(
    "second", "YYYY-MM-DDTHHMMSS", r"(?P<hour>\d{2})(?P<minute>\d{2})(?P<second>\d{2})", 1
)

# -- durations -------------------------------------------------------------------------------

DURATION_FORMS = "an ISO 8601 duration like P1DT2H30M or units like '1 d 2 h' / '30m'"
_NUMBER = r"\d+"
_SECONDS = r"\d+(?:\.\d{1,6})?"  # at most microseconds, so parsing is exact
_ISO_DURATION = re.compile(
    rf"(?P<sign>-)?P(?:(?P<weeks>{_NUMBER})W)?(?:(?P<days>{_NUMBER})D)?"
    rf"(?:T(?:(?P<hours>{_NUMBER})H)?(?:(?P<minutes>{_NUMBER})M)?(?:(?P<seconds>{_SECONDS})S)?)?"
)
_SIMPLE_DURATION = re.compile(
    rf"\s*(?P<sign>-)?\s*(?:(?P<weeks>{_NUMBER})\s*w(?:eeks?)?\s*)?"
    rf"(?:(?P<days>{_NUMBER})\s*d(?:ays?)?\s*)?"
    rf"(?:(?P<hours>{_NUMBER})\s*h(?:(?:ou)?rs?)?\s*)?"
    rf"(?:(?P<minutes>{_NUMBER})\s*m(?:in(?:ute)?s?)?\s*)?"
    rf"(?:(?P<seconds>{_SECONDS})\s*s(?:ec(?:ond)?s?)?\s*)?",
    re.IGNORECASE,
)
_FIELDS = ("weeks", "days", "hours", "minutes", "seconds")


def parse_timedelta(s: str) -> dt.timedelta:
    """The duration written as `s` (ISO 8601 or simple units); raises ParameterError."""
    m = _ISO_DURATION.fullmatch(s) or _SIMPLE_DURATION.fullmatch(s)
    found = {k: m[k] for k in _FIELDS if m is not None and m[k] is not None}
    if m is None or not found or s.endswith("T"):
        raise ParameterError(f"invalid duration {s!r} (expected {DURATION_FORMS})")
    whole, _, fraction = found.pop("seconds", "0").partition(".")
    try:
        value = dt.timedelta(
            seconds=int(whole),
            microseconds=int(fraction.ljust(6, "0")),
            **{k: int(v) for k, v in found.items()},
        )
    except OverflowError as err:
        raise ParameterError(f"duration {s!r} is out of range") from err
    return -value if m["sign"] else value


def format_timedelta(value: dt.timedelta) -> str:
    """`value` as the canonical ISO 8601 duration, e.g. P1DT2H0.5S; negatives start with '-'."""
    total = abs(value)
    hours, rest = divmod(total.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    time = "".join(f"{n}{u}" for n, u in ((hours, "H"), (minutes, "M")) if n)
    if seconds or total.microseconds:
        fraction = f".{total.microseconds:06d}".rstrip("0").rstrip(".")
        time += f"{seconds}{fraction}S"
    days = f"{total.days}D" if total.days else ""
    if not days and not time:
        return "PT0S"
    return ("-" if value < dt.timedelta(0) else "") + "P" + days + ("T" + time if time else "")


# -- the parameters ----------------------------------------------------------------------------


class _DateParameterBase[V: dt.date](Parameter[V]):
    """A date or datetime at one unit's granularity, on a grid of `interval` units from `start`."""

    _unit: ClassVar[Unit] = DAY

    def __init__(
        self,
        default: Any = NO_VALUE,
        *,
        interval: int = 1,
        start: dt.date | None = None,
        **options: Unpack[ParameterOptions],
    ) -> None:
        super().__init__(default, **options)
        self.interval = interval
        self.start = start

    @property
    def type_name(self) -> str:  # type: ignore[override]
        return f"{self._unit.kind} {self._unit.form}"

    def _snap(self, value: dt.date) -> Any:
        unit = self._unit
        index = unit.to_index(value)
        if self.interval != 1:
            index -= (index - unit.to_index(self.start or unit.default_start)) % self.interval
        try:
            return unit.from_index(index)
        except (ValueError, OverflowError):
            fail(unit.kind, value, f"{unit.form} within years 0001-9999")

    def parse(self, s: str) -> Any:
        return self._snap(self._unit.parse(s))

    def serialize(self, value: Any) -> str:
        return self._unit.format(value)

    def _coerce(self, value: Any) -> Any:
        if not isinstance(value, dt.date):
            fail(self._unit.kind, value, f"a date or datetime, or {self._unit.form}")
        if isinstance(value, dt.datetime) and value.utcoffset() is not None:
            fail(self._unit.kind, value, "a naive datetime (no time zone)")
        return self._snap(value)

    def next_in_enumeration(self, value: Any) -> Any:
        return self._step(value, self.interval)

    def prev_in_enumeration(self, value: Any) -> Any:
        """The value one interval before `value` (None before year 1)."""
        return self._step(value, -self.interval)

    def _step(self, value: Any, steps: int) -> Any:
        try:
            return self._unit.from_index(self._unit.to_index(value) + steps)
        except (ValueError, OverflowError):
            return None


class DateParameter(_DateParameterBase[dt.date]):
    """A datetime.date, written YYYY-MM-DD; a datetime is truncated to its date."""

    _unit = DAY


class MonthParameter(_DateParameterBase[dt.date]):
    """The first day of a month as a datetime.date, written YYYY-MM."""

    _unit = MONTH


class YearParameter(_DateParameterBase[dt.date]):
    """January 1st of a year as a datetime.date, written YYYY."""

    _unit = YEAR


class DateHourParameter(_DateParameterBase[dt.datetime]):
    """A datetime truncated to the hour, written YYYY-MM-DDTHH."""

    _unit = HOUR


class DateMinuteParameter(_DateParameterBase[dt.datetime]):
    """A datetime truncated to the minute, written YYYY-MM-DDTHHMM (YYYY-MM-DDTHH:MM also read)."""

    _unit = MINUTE


class DateSecondParameter(_DateParameterBase[dt.datetime]):
    """A datetime truncated to the second, written YYYY-MM-DDTHHMMSS."""

    _unit = SECOND


class DateIntervalParameter(Parameter[date_interval.DateInterval]):
    """A date_interval.DateInterval: a day, ISO week, month, year or custom range."""

    type_name = f"date interval ({date_interval.FORMS})"

    def parse(self, s: str) -> date_interval.DateInterval:
        return date_interval.parse(s)

    def serialize(self, value: Any) -> str:
        text: str = value.to_string()
        return text

    def _coerce(self, value: Any) -> date_interval.DateInterval:
        if isinstance(value, date_interval.DateInterval):
            return value
        fail("date interval", value, date_interval.FORMS)


class TimeDeltaParameter(Parameter[dt.timedelta]):
    """A datetime.timedelta, read from ISO 8601 (P1DT2H) or units ('1 d 2 h', '30m')."""

    type_name = "duration (P1DT2H or 1d 2h)"

    def parse(self, s: str) -> dt.timedelta:
        return parse_timedelta(s)

    def serialize(self, value: Any) -> str:
        return format_timedelta(value)

    def _coerce(self, value: Any) -> dt.timedelta:
        if isinstance(value, dt.timedelta):
            return value
        fail("duration", value, DURATION_FORMS)
