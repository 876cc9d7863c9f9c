"""Date intervals: parsing each kind, their dates, neighbours and string round trips."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipes import date_interval
from pipes.date_interval import Custom, Date, DateInterval, Month, Week, Year
from pipes.exceptions import ParameterError

dates = st.dates(min_value=dt.date(2, 1, 1), max_value=dt.date(9998, 11, 30))
intervals = dates.flatmap(
    lambda d: st.sampled_from(
        [
            Date.from_date(d),
            Week.from_date(d),
            Month.from_date(d),
            Year.from_date(d),
            Custom(d, d + dt.timedelta(days=10)),
        ]
    )
)


@pytest.mark.parametrize(
    ("text", "kind", "first", "count"),
    [
        ("2024-01-05", Date, dt.date(2024, 1, 5), 1),
        ("2024-W03", Week, dt.date(2024, 1, 15), 7),
        ("2020-W53", Week, dt.date(2020, 12, 28), 7),
        ("2024-02", Month, dt.date(2024, 2, 1), 29),
        ("2023-02", Month, dt.date(2023, 2, 1), 28),
        ("2024", Year, dt.date(2024, 1, 1), 366),
        ("2023", Year, dt.date(2023, 1, 1), 365),
        ("2024-01-01-2024-01-10", Custom, dt.date(2024, 1, 1), 9),
    ],
)
def test_parse_returns_kind_and_dates_when_valid(text, kind, first, count):
    interval = date_interval.parse(text)
    assert type(interval) is kind
    assert interval.date_a == first
    assert len(interval.dates()) == count
    assert interval.dates()[0] == first
    assert interval.dates()[-1] == interval.date_b - dt.timedelta(days=1)
    assert len(interval.hours()) == 24 * count
    assert str(interval) == text == interval.to_string()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("2024-13-45", "invalid date '2024-13-45' (expected YYYY-MM-DD)"),
        ("2023-02-29", "invalid date '2023-02-29'"),
        ("2023-W53", "invalid ISO week '2023-W53' (expected YYYY-Www)"),
        ("2024-13", "invalid month '2024-13' (expected YYYY-MM)"),
        ("0000", "invalid year '0000' (expected YYYY)"),
        ("9999", "date interval '9999' is out of range"),
        ("2024-01-10-2024-01-01", "end date must be after the start date"),
        ("2024-01-10-2024-01-10", "end date must be after the start date"),
        ("yesterday", "invalid date interval 'yesterday' (expected YYYY-MM-DD, YYYY-Www"),
        ("", "invalid date interval ''"),
        ("24", "invalid date interval '24'"),
    ],
)
def test_parse_raises_one_line_error_when_invalid(text, fragment):
    with pytest.raises(ParameterError) as info:
        date_interval.parse(text)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_kind_parse_returns_none_when_form_differs():
    assert Date.parse("2024-01") is None
    assert Week.parse("2024-01-05") is None
    assert Month.parse("2024") is None
    assert Year.parse("2024-W01") is None
    assert Custom.parse("2024-01-05") is None


def test_prev_and_next_step_one_interval_when_called():
    assert Date(2024, 3, 1).prev() == Date(2024, 2, 29)
    assert Date(2024, 12, 31).next() == Date(2025, 1, 1)
    assert Week(2024, 1).prev() == Week(2023, 52)
    assert Week(2020, 53).next() == Week(2021, 1)
    assert Month(2024, 1).prev() == Month(2023, 12)
    assert Month(2024, 12).next() == Month(2025, 1)
    assert Year(2024).next() == Year(2025)
    custom = date_interval.parse("2024-01-01-2024-01-04")
    assert str(custom.next()) == "2024-01-04-2024-01-07"
    assert str(custom.prev()) == "2023-12-29-2024-01-01"


def test_contains_checks_half_open_range_when_given_date_or_datetime():
    month = Month(2024, 2)
    assert dt.date(2024, 2, 1) in month
    assert dt.date(2024, 2, 29) in month
    assert dt.datetime(2024, 2, 29, 23, 59) in month
    assert dt.date(2024, 3, 1) not in month
    assert "2024-02-10" not in month


def test_equality_needs_same_kind_when_ranges_match():
    day = Date(2024, 1, 1)
    same_range = Custom(dt.date(2024, 1, 1), dt.date(2024, 1, 2))
    assert day != same_range
    assert day == Date.from_date(dt.datetime(2024, 1, 1, 5))
    assert len({day, Date(2024, 1, 1), same_range}) == 2


def test_ordering_follows_dates_when_sorted():
    items = [Month(2024, 2), Date(2024, 1, 15), Year(2023), Week(2024, 1)]
    assert sorted(items) == [Year(2023), Week(2024, 1), Date(2024, 1, 15), Month(2024, 2)]
    assert Date(2024, 1, 1) < Date(2024, 1, 2) <= Date(2024, 1, 2)


def test_repr_names_kind_and_string():
    assert repr(Week(2024, 3)) == "Week('2024-W03')"


def test_from_date_picks_enclosing_interval():
    d = dt.date(2024, 1, 1)  # a Monday in ISO week 1 of 2024
    assert Week.from_date(d) == Week(2024, 1)
    assert Week.from_date(dt.date(2021, 1, 3)) == Week(2020, 53)
    assert Month.from_date(dt.date(2024, 5, 31)) == Month(2024, 5)
    with pytest.raises(NotImplementedError):
        Custom.from_date(d)


def test_base_interval_covers_dates_when_built_directly():
    interval = DateInterval(dt.date(2024, 1, 1), dt.date(2024, 1, 3))
    assert interval.dates() == [dt.date(2024, 1, 1), dt.date(2024, 1, 2)]


@given(intervals)
def test_interval_round_trips_through_string_when_valid(interval):
    assert date_interval.parse(interval.to_string()) == interval
    assert type(interval).parse(str(interval)) == interval


@given(intervals)
def test_next_then_prev_returns_same_interval_when_in_range(interval):
    following = interval.next()
    assert following.date_a == interval.date_b
    assert following.prev() == interval
    assert interval.prev().date_b == interval.date_a


@given(dates)
def test_from_date_contains_the_date_when_any_kind(d):
    for kind in (Date, Week, Month, Year):
        interval = kind.from_date(d)
        assert d in interval
        assert interval.dates()[0] <= d
