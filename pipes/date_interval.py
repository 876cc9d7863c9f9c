"""Date intervals: a day, ISO week, month, year or custom range, each written as one string.

An interval covers `date_a` (inclusive) to `date_b` (exclusive). `parse` turns `2024-01-05`,
`2024-W03`, `2024-01`, `2024` or `2024-01-01-2024-01-10` into the matching interval.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterator
from typing import Self

from pipes.exceptions import ParameterError

_ONE_DAY = dt.timedelta(days=1)
FORMS = "YYYY-MM-DD, YYYY-Www, YYYY-MM, YYYY or YYYY-MM-DD-YYYY-MM-DD"


def _make_date(ymd: tuple[int, int, int], what: str, text: str, form: str) -> dt.date:
    """Build a date or raise a one-line ParameterError like `invalid month '2024-13' (...)`."""
    try:
        return dt.date(*ymd)
    except ValueError as err:
        raise ParameterError(f"invalid {what} {text!r} (expected {form})") from err


def _iso(d: dt.date) -> str:
    """`d` as YYYY-MM-DD, zero-padded even before year 1000 (unlike strftime)."""
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"


def _add_days(d: dt.date, days: int, text: str) -> dt.date:
    try:
        return d + dt.timedelta(days=days)
    except OverflowError as err:
        raise ParameterError(f"date interval {text!r} is out of range") from err


@functools.total_ordering
class DateInterval:
    """A half-open range of dates [date_a, date_b); equal only to the same kind and range."""

    def __init__(self, date_a: dt.date, date_b: dt.date) -> None:
        self.date_a = date_a
        self.date_b = date_b

    @classmethod
    def from_date(cls, d: dt.date) -> DateInterval:
        """The interval of this kind that contains `d`."""
        raise NotImplementedError(f"{cls.__name__} has no from_date")

    @classmethod
    def parse(cls, s: str) -> Self | None:
        """The interval written as `s`, or None when `s` is not in this kind's form."""
        raise NotImplementedError(f"{cls.__name__} has no parse")

    def to_string(self) -> str:
        """The canonical string that `parse` turns back into this interval."""
        raise NotImplementedError(f"{type(self).__name__} has no to_string")

    def dates(self) -> list[dt.date]:
        """Every date in the interval, in order."""
        n = (self.date_b - self.date_a).days
        return [self.date_a + dt.timedelta(days=i) for i in range(n)]

    def hours(self) -> list[dt.datetime]:
        """Every whole hour in the interval, in order."""
        return [dt.datetime(d.year, d.month, d.day, h) for d in self.dates() for h in range(24)]

    def prev(self) -> DateInterval:
        """The interval of the same kind just before this one."""
        return self.from_date(self.date_a - _ONE_DAY)

    def next(self) -> DateInterval:
        """The interval of the same kind just after this one."""
        return self.from_date(self.date_b)

    def __iter__(self) -> Iterator[dt.date]:
        """Each date of the interval, in order (as in Luigi: `for date in interval`)."""
        return iter(self.dates())

    def __contains__(self, item: object) -> bool:
        if isinstance(item, dt.datetime):
            item = item.date()
        return isinstance(item, dt.date) and self.date_a <= item < self.date_b

    def _key(self) -> tuple[dt.date, dt.date, str]:
        return (self.date_a, self.date_b, type(self).__name__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DateInterval):
            return NotImplemented
        return self._key() == other._key()

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, DateInterval):
            return NotImplemented
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.to_string()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_string()!r})"


class Date(DateInterval):
    """One day, written `2024-01-05`."""

    _RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")

    def __init__(self, year: int, month: int, day: int) -> None:
        text = f"{year:04d}-{month:02d}-{day:02d}"
        date_a = _make_date((year, month, day), "date", text, "YYYY-MM-DD")
        super().__init__(date_a, _add_days(date_a, 1, text))

    @classmethod
    def from_date(cls, d: dt.date) -> Date:
        return cls(d.year, d.month, d.day)

    @classmethod
    def parse(cls, s: str) -> Date | None:
        m = cls._RE.fullmatch(s)
        return cls(*map(int, m.groups())) if m else None

    def to_string(self) -> str:
        return _iso(self.date_a)


class Week(DateInterval):
    """One ISO week (Monday to Sunday), written `2024-W03`."""

    _RE = re.compile(r"(\d{4})-W(\d{2})")

    def __init__(self, year: int, week: int) -> None:
        text = f"{year:04d}-W{week:02d}"
        try:
            date_a = dt.date.fromisocalendar(year, week, 1)
        except ValueError as err:
            raise ParameterError(f"invalid ISO week {text!r} (expected YYYY-Www)") from err
        super().__init__(date_a, _add_days(date_a, 7, text))
        self.year, self.week = year, week

    @classmethod
    def from_date(cls, d: dt.date) -> Week:
        year, week, _ = d.isocalendar()
        return cls(year, week)

    @classmethod
    def parse(cls, s: str) -> Week | None:
        m = cls._RE.fullmatch(s)
        return cls(int(m[1]), int(m[2])) if m else None

    def to_string(self) -> str:
        return f"{self.year:04d}-W{self.week:02d}"


class Month(DateInterval):
    """One calendar month, written `2024-01`."""

    _RE = re.compile(r"(\d{4})-(\d{2})")

    def __init__(self, year: int, month: int) -> None:
        text = f"{year:04d}-{month:02d}"
        date_a = _make_date((year, month, 1), "month", text, "YYYY-MM")
        date_b = _add_days(date_a, 31, text).replace(day=1)
        super().__init__(date_a, date_b)

    @classmethod
    def from_date(cls, d: dt.date) -> Month:
        return cls(d.year, d.month)

    @classmethod
    def parse(cls, s: str) -> Month | None:
        m = cls._RE.fullmatch(s)
        return cls(int(m[1]), int(m[2])) if m else None

    def to_string(self) -> str:
        return f"{self.date_a.year:04d}-{self.date_a.month:02d}"


class Year(DateInterval):
    """One calendar year, written `2024`."""

    _RE = re.compile(r"\d{4}")

    def __init__(self, year: int) -> None:
        text = f"{year:04d}"
        date_a = _make_date((year, 1, 1), "year", text, "YYYY")
        super().__init__(date_a, _add_days(date_a, 366, text).replace(month=1, day=1))

    @classmethod
    def from_date(cls, d: dt.date) -> Year:
        return cls(d.year)

    @classmethod
    def parse(cls, s: str) -> Year | None:
        return cls(int(s)) if cls._RE.fullmatch(s) else None

    def to_string(self) -> str:
        return f"{self.date_a.year:04d}"


class Custom(DateInterval):
    """Any non-empty range, written `2024-01-01-2024-01-10` (the second date is exclusive)."""

    _RE = re.compile(r"(\d{4}-\d{2}-\d{2})-(\d{4}-\d{2}-\d{2})")

    def __init__(self, date_a: dt.date, date_b: dt.date) -> None:
        if not date_a < date_b:
            raise ParameterError(
                f"invalid date interval '{_iso(date_a)}-{_iso(date_b)}'"
                " (the end date must be after the start date)"
            )
        super().__init__(date_a, date_b)

    @classmethod
    def parse(cls, s: str) -> Custom | None:
        m = cls._RE.fullmatch(s)
        if not m:
            return None
        first, second = (Date.parse(part) for part in m.groups())
        assert first is not None and second is not None  # the regex fixes their shape
        return cls(first.date_a, second.date_a)

    def prev(self) -> Custom:
        """The range of the same length just before this one."""
        length = (self.date_b - self.date_a).days
        return Custom(_add_days(self.date_a, -length, str(self)), self.date_a)

    def next(self) -> Custom:
        """The range of the same length just after this one."""
        length = (self.date_b - self.date_a).days
        return Custom(self.date_b, _add_days(self.date_b, length, str(self)))

    def to_string(self) -> str:
        return f"{_iso(self.date_a)}-{_iso(self.date_b)}"


_KINDS: tuple[type[DateInterval], ...] = (Date, Week, Month, Year, Custom)


def parse(s: str) -> DateInterval:
    """The interval written as `s`; raises ParameterError when no kind matches."""
    for kind in _KINDS:
        interval = kind.parse(s)
        if interval is not None:
            return interval
    raise ParameterError(f"invalid date interval {s!r} (expected {FORMS})")
