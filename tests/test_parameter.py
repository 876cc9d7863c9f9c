"""Parameter types: round trips, parsing examples and one-line errors."""

import datetime as dt
import enum
import operator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipes import date_interval
from pipes.exceptions import ParameterError
from pipes.parameter import (
    BoolParameter,
    ChoiceParameter,
    DateHourParameter,
    DateIntervalParameter,
    DateMinuteParameter,
    DateParameter,
    DateSecondParameter,
    DictParameter,
    EnumListParameter,
    EnumParameter,
    FloatParameter,
    FrozenOrderedDict,
    IntParameter,
    ListParameter,
    MonthParameter,
    NumericalParameter,
    OptionalBoolParameter,
    OptionalChoiceParameter,
    OptionalDictParameter,
    OptionalFloatParameter,
    OptionalIntParameter,
    OptionalListParameter,
    OptionalNumericalParameter,
    OptionalParameter,
    OptionalParameterTypeWarning,
    OptionalPathParameter,
    OptionalStrParameter,
    OptionalTupleParameter,
    Parameter,
    ParameterVisibility,
    PathParameter,
    TaskParameter,
    TimeDeltaParameter,
    TupleParameter,
    YearParameter,
)


class Color(enum.Enum):
    RED = 1
    GREEN = 2
    BLUE = 3


def assert_round_trip(p, value):
    normalized = p.normalize(value)
    text = p.serialize(normalized)
    assert isinstance(text, str)
    assert p.parse(text) == normalized
    assert p.serialize(p.parse(text)) == text
    assert p.normalize(normalized) == normalized


def assert_one_line_error(func, arg, *fragments):
    with pytest.raises(ParameterError) as info:
        func(arg)
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    return message


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
naive_datetimes = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30))

# (parameter, strategy of values it accepts) for every type, shared by the round-trip tests
ROUND_TRIPS = [
    (Parameter(), st.text()),
    (OptionalParameter(), st.none() | st.text()),
    (OptionalStrParameter(), st.none() | st.text()),
    (IntParameter(), st.integers()),
    (OptionalIntParameter(), st.none() | st.integers()),
    (FloatParameter(), st.floats(allow_nan=False)),
    (OptionalFloatParameter(), st.none() | st.floats(allow_nan=False)),
    (BoolParameter(), st.booleans()),
    (OptionalBoolParameter(), st.none() | st.booleans()),
    (DateParameter(), st.dates(max_value=dt.date(9999, 12, 30))),
    (DateParameter(interval=7, start=dt.date(2024, 1, 1)), st.dates(min_value=dt.date(2, 1, 1))),
    (MonthParameter(), st.dates()),
    (YearParameter(), st.dates()),
    (DateHourParameter(), naive_datetimes),
    (DateMinuteParameter(), naive_datetimes),
    (DateSecondParameter(), naive_datetimes),
    (DateHourParameter(interval=6), naive_datetimes),
    (TimeDeltaParameter(), st.timedeltas()),
    (ListParameter(), st.lists(json_values, max_size=5)),
    (TupleParameter(), st.lists(st.lists(json_values, max_size=3), max_size=3)),
    (DictParameter(), st.dictionaries(st.text(), json_values, max_size=5)),
    (OptionalListParameter(), st.none() | st.lists(json_values, max_size=3)),
    (OptionalTupleParameter(), st.none() | st.lists(st.tuples(st.integers()), max_size=3)),
    (OptionalDictParameter(), st.none() | st.dictionaries(st.text(), json_values, max_size=3)),
    (EnumParameter(enum=Color), st.sampled_from(Color)),
    (EnumListParameter(enum=Color), st.lists(st.sampled_from(Color), max_size=4)),
    (ChoiceParameter(choices=["a", "b", "c d"]), st.sampled_from(["a", "b", "c d"])),
    (ChoiceParameter(choices=[1, 2, 3], var_type=int), st.sampled_from([1, 2, 3])),
    (OptionalChoiceParameter(choices=["x", "y"]), st.sampled_from([None, "x", "y"])),
    (NumericalParameter(min_value=-5, max_value=5), st.integers(-5, 4)),
    (
        NumericalParameter(var_type=float, min_value=0.0, max_value=1.0, right_op=operator.le),
        st.floats(0.0, 1.0),
    ),
    (OptionalNumericalParameter(min_value=0, max_value=9), st.none() | st.integers(0, 8)),
    (PathParameter(), st.text(alphabet=st.characters(blacklist_characters="\x00"), min_size=1)),
    (OptionalPathParameter(), st.none() | st.text(alphabet="ab/._-", min_size=1)),
    (
        DateIntervalParameter(),
        st.dates(max_value=dt.date(9998, 12, 1)).flatmap(
            lambda d: st.sampled_from(
                [
                    date_interval.Date.from_date(d),
                    date_interval.Week.from_date(d),
                    date_interval.Month.from_date(d),
                    date_interval.Year.from_date(d),
                    date_interval.Custom(d, d + dt.timedelta(days=3)),
                ]
            )
        ),
    ),
]


@pytest.mark.parametrize(
    ("param", "values"), ROUND_TRIPS, ids=[type(p).__name__ for p, _ in ROUND_TRIPS]
)
@given(data=st.data())
def test_parameter_round_trips_exactly_when_value_is_valid(param, values, data):
    assert_round_trip(param, data.draw(values))


@pytest.mark.parametrize(("param", "_values"), ROUND_TRIPS)
def test_parameter_type_name_is_short_text_when_asked_for_help(param, _values):
    assert isinstance(param.type_name, str) and 0 < len(param.type_name) < 120


# -- base Parameter --------------------------------------------------------------------------


def test_parameter_orders_instances_by_creation_when_defined():
    first, second, third = IntParameter(), Parameter(), DateParameter()
    assert first._order < second._order < third._order


def test_parameter_stores_options_when_constructed():
    p = Parameter(
        "x",
        significant=False,
        description="what",
        positional=False,
        always_in_help=True,
        batch_method=max,
        visibility=ParameterVisibility.HIDDEN,
        config_path={"section": "s", "name": "n"},
    )
    assert (p.significant, p.description, p.positional, p.always_in_help) == (
        False,
        "what",
        False,
        True,
    )
    assert p.visibility is ParameterVisibility.HIDDEN
    assert p.config_path == {"section": "s", "name": "n"}
    assert p.takes_value


def test_visibility_has_luigi_values_when_compared_to_ints():
    assert [int(v) for v in ParameterVisibility] == [0, 1, 2]
    assert ParameterVisibility.PRIVATE > ParameterVisibility.PUBLIC


def test_default_is_normalized_when_given():
    assert IntParameter(default="7").default == 7
    assert ListParameter(default=[1, [2]]).default == (1, (2,))
    assert Parameter(default=None).has_default


def test_default_raises_when_missing():
    p = IntParameter()
    assert not p.has_default
    assert_one_line_error(lambda _: p.default, None, "no default")


def test_parse_list_combines_with_batch_method_when_given():
    assert IntParameter(batch_method=max).parse_list(["3", "10", "2"]) == 10
    assert DateParameter(batch_method=min).parse_list(["2024-01-05", "2024-01-02"]) == dt.date(
        2024, 1, 2
    )


def test_parse_list_raises_when_no_batch_method():
    assert_one_line_error(IntParameter().parse_list, ["1"], "batch_method")


def test_next_in_enumeration_is_none_when_type_has_no_order():
    assert Parameter().next_in_enumeration("a") is None
    assert FloatParameter().next_in_enumeration(1.0) is None


# -- scalars ---------------------------------------------------------------------------------


def test_int_parameter_parses_examples_when_valid():
    p = IntParameter()
    assert p.parse("42") == 42
    assert p.parse("-3") == -3
    assert p.serialize(42) == "42"
    assert p.next_in_enumeration(41) == 42
    assert p.normalize(3.0) == 3


@pytest.mark.parametrize("bad", ["abc", "1.5", "", "0x10"])
def test_int_parameter_raises_one_line_error_when_unparsable(bad):
    message = assert_one_line_error(IntParameter().parse, bad, repr(bad), "integer")
    assert message.startswith("invalid int ")


@pytest.mark.parametrize("bad", ["abc", True, 1.5, None, [1]])
def test_int_parameter_rejects_value_when_normalizing_wrong_type(bad):
    assert_one_line_error(IntParameter().normalize, bad, "int")


def test_float_parameter_parses_examples_when_valid():
    p = FloatParameter()
    assert p.parse("1.5") == 1.5
    assert p.parse("1e3") == 1000.0
    assert p.normalize(2) == 2.0 and isinstance(p.normalize(2), float)
    assert p.serialize(0.1) == "0.1"


@pytest.mark.parametrize("bad", ["nan", "x", ""])
def test_float_parameter_raises_when_unparsable_or_nan(bad):
    assert_one_line_error(FloatParameter().parse, bad, "float", repr(bad))


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("TRUE", True), ("1", True), ("Yes", True), ("false", False),
     ("0", False), ("no", False), ("NO", False)],
)  # fmt: skip
def test_bool_parameter_parses_words_when_any_case(text, value):
    assert BoolParameter().parse(text) is value


def test_bool_parameter_takes_no_value_when_on_command_line():
    assert BoolParameter().takes_value is False
    assert BoolParameter().serialize(True) == "true"


def test_bool_parameter_raises_when_word_unknown():
    assert_one_line_error(BoolParameter().parse, "maybe", "'maybe'", "true|false")
    assert_one_line_error(BoolParameter().normalize, 2, "bool")


def test_optional_parameters_map_none_to_empty_string_when_serialized():
    optionals = [OptionalParameter, OptionalIntParameter, OptionalListParameter,
                 OptionalDictParameter, OptionalPathParameter, OptionalBoolParameter]  # fmt: skip
    for p in (cls() for cls in optionals):
        assert p.serialize(None) == ""
        assert p.parse("") is None
        assert p.normalize(None) is None


def test_optional_int_parameter_parses_number_when_not_empty():
    assert OptionalIntParameter().parse("5") == 5
    assert OptionalIntParameter().type_name == "optional int"
    assert_one_line_error(OptionalIntParameter().parse, "x", "int")


def test_optional_str_parameter_rejects_value_when_not_string():
    with pytest.warns(OptionalParameterTypeWarning, match="not of type str or None"):
        assert_one_line_error(OptionalStrParameter().normalize, 5, "string")


# -- dates and times -------------------------------------------------------------------------


def test_date_parameter_parses_examples_when_valid():
    p = DateParameter()
    assert p.parse("2024-02-29") == dt.date(2024, 2, 29)
    assert p.serialize(dt.date(5, 1, 2)) == "0005-01-02"
    assert p.normalize(dt.datetime(2024, 3, 1, 13, 5)) == dt.date(2024, 3, 1)
    assert type(p.normalize(dt.datetime(2024, 3, 1, 13, 5))) is dt.date
    assert p.next_in_enumeration(dt.date(2024, 12, 31)) == dt.date(2025, 1, 1)
    assert p.type_name == "date YYYY-MM-DD"


@pytest.mark.parametrize("bad", ["2024-13-45", "2023-02-29", "2024-1-5", "20240105", "x", ""])
def test_date_parameter_raises_one_line_error_when_impossible_or_malformed(bad):
    message = assert_one_line_error(DateParameter().parse, bad, "(expected YYYY-MM-DD)")
    assert message == f"invalid date {bad!r} (expected YYYY-MM-DD)"


def test_date_parameter_rejects_value_when_not_a_date():
    assert_one_line_error(DateParameter().normalize, 20240101, "date")
    aware = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert_one_line_error(DateParameter().normalize, aware, "time zone")


def test_date_parameter_snaps_to_grid_when_interval_given():
    p = DateParameter(interval=7, start=dt.date(2024, 1, 1))
    assert p.parse("2024-01-10") == dt.date(2024, 1, 8)
    assert p.normalize(dt.date(2024, 1, 8)) == dt.date(2024, 1, 8)
    assert p.next_in_enumeration(dt.date(2024, 1, 8)) == dt.date(2024, 1, 15)


def test_date_parameter_next_is_none_when_past_year_9999():
    assert DateParameter().next_in_enumeration(dt.date(9999, 12, 31)) is None


def test_month_parameter_normalizes_to_first_day_when_given_any_date():
    p = MonthParameter()
    assert p.parse("2024-05") == dt.date(2024, 5, 1)
    assert p.normalize(dt.date(2024, 5, 17)) == dt.date(2024, 5, 1)
    assert p.serialize(dt.date(2024, 5, 1)) == "2024-05"
    assert p.next_in_enumeration(dt.date(2024, 12, 1)) == dt.date(2025, 1, 1)
    assert MonthParameter(interval=3).parse("2024-05") == dt.date(2024, 4, 1)
    assert_one_line_error(p.parse, "2024-13", "invalid month '2024-13' (expected YYYY-MM)")


def test_year_parameter_parses_examples_when_valid():
    p = YearParameter()
    assert p.parse("2024") == dt.date(2024, 1, 1)
    assert p.serialize(dt.date(2024, 6, 1)) == "2024"
    assert p.next_in_enumeration(dt.date(2024, 1, 1)) == dt.date(2025, 1, 1)
    assert_one_line_error(p.parse, "0000", "invalid year '0000' (expected YYYY)")
    assert_one_line_error(p.parse, "24", "YYYY")


def test_date_hour_parameter_truncates_when_given_minutes():
    p = DateHourParameter()
    assert p.parse("2024-01-02T03") == dt.datetime(2024, 1, 2, 3)
    assert p.normalize(dt.datetime(2024, 1, 2, 3, 59, 59)) == dt.datetime(2024, 1, 2, 3)
    assert p.normalize(dt.date(2024, 1, 2)) == dt.datetime(2024, 1, 2)
    assert p.serialize(dt.datetime(2024, 1, 2, 3)) == "2024-01-02T03"
    assert p.next_in_enumeration(dt.datetime(2024, 1, 2, 23)) == dt.datetime(2024, 1, 3)
    assert_one_line_error(p.parse, "2024-01-02T24", "invalid hour", "YYYY-MM-DDTHH")


def test_date_minute_parameter_accepts_colon_when_parsing():
    p = DateMinuteParameter()
    assert p.parse("2024-01-02T0304") == dt.datetime(2024, 1, 2, 3, 4)
    assert p.parse("2024-01-02T03:04") == dt.datetime(2024, 1, 2, 3, 4)
    assert p.serialize(dt.datetime(2024, 1, 2, 3, 4)) == "2024-01-02T0304"
    assert_one_line_error(p.parse, "2024-01-02T0360", "YYYY-MM-DDTHHMM")


def test_date_second_parameter_parses_examples_when_valid():
    p = DateSecondParameter()
    assert p.parse("2024-01-02T030405") == dt.datetime(2024, 1, 2, 3, 4, 5)
    assert p.serialize(dt.datetime(2024, 1, 2, 3, 4, 5, 999)) == "2024-01-02T030405"
    assert p.next_in_enumeration(dt.datetime(2024, 1, 2, 3, 4, 59)) == dt.datetime(2024, 1, 2, 3, 5)
    assert_one_line_error(p.parse, "2024-01-02T03:04:05", "YYYY-MM-DDTHHMMSS")


def test_date_interval_parameter_parses_each_kind_when_valid():
    p = DateIntervalParameter()
    assert p.parse("2024-W03") == date_interval.Week(2024, 3)
    assert p.serialize(p.parse("2024-01-01-2024-01-10")) == "2024-01-01-2024-01-10"
    assert_one_line_error(p.parse, "soon", "invalid date interval 'soon'")
    assert_one_line_error(p.normalize, 5, "date interval")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("P1DT2H", dt.timedelta(days=1, hours=2)),
        ("PT30M", dt.timedelta(minutes=30)),
        ("P2W", dt.timedelta(weeks=2)),
        ("PT1.5S", dt.timedelta(seconds=1.5)),
        ("-P1D", dt.timedelta(days=-1)),
        ("1 d 2 h", dt.timedelta(days=1, hours=2)),
        ("1 day 2 hours", dt.timedelta(days=1, hours=2)),
        ("30m", dt.timedelta(minutes=30)),
        ("1w 3 days 4 hrs 5 minutes 6 seconds", dt.timedelta(10, 14706)),
    ],
)
def test_timedelta_parameter_parses_iso_and_simple_forms(text, value):
    assert TimeDeltaParameter().parse(text) == value


def test_timedelta_parameter_serializes_canonically_when_value_given():
    p = TimeDeltaParameter()
    assert p.serialize(dt.timedelta(days=1, hours=2)) == "P1DT2H"
    assert p.serialize(dt.timedelta(0)) == "PT0S"
    assert p.serialize(dt.timedelta(seconds=-0.5)) == "-PT0.5S"
    assert p.serialize(dt.timedelta(minutes=1, microseconds=1)) == "PT1M0.000001S"


@pytest.mark.parametrize("bad", ["", "P", "PT", "P1DT", "1 month", "P1Y", "PT0.1234567S", "x"])
def test_timedelta_parameter_raises_one_line_error_when_unparsable(bad):
    assert_one_line_error(TimeDeltaParameter().parse, bad, f"invalid duration {bad!r}")


# -- structures ------------------------------------------------------------------------------


def test_list_parameter_makes_nested_tuples_when_parsing_json():
    p = ListParameter()
    assert p.parse('[1, [2, 3], {"a": [4]}]') == (1, (2, 3), {"a": (4,)})
    assert p.normalize([1, [2]]) == (1, (2,))
    assert p.serialize((1, "x", (2,))) == '[1,"x",[2]]'
    hash(p.parse('[{"a": [1]}]'))


@pytest.mark.parametrize("bad", ["[1,", '{"a": 1}', "x"])
def test_list_parameter_raises_one_line_error_when_not_a_json_list(bad):
    assert_one_line_error(ListParameter().parse, bad, "JSON list")


def test_list_parameter_rejects_value_when_not_json_able():
    assert_one_line_error(ListParameter().normalize, [object()], "JSON value")
    assert_one_line_error(ListParameter().normalize, [float("inf")], "finite")
    assert_one_line_error(ListParameter().normalize, [{1: 2}], "object key")


def test_tuple_parameter_reads_python_literal_when_not_json():
    p = TupleParameter()
    assert p.parse("[[1, 2], [3, 4]]") == ((1, 2), (3, 4))
    assert p.parse("((1, 2), (3, 4))") == ((1, 2), (3, 4))
    assert_one_line_error(p.parse, "((1, 2)", "tuple")


def test_dict_parameter_freezes_nested_values_when_parsing():
    p = DictParameter()
    value = p.parse('{"b": {"c": [1, 2]}, "a": 1}')
    assert isinstance(value, FrozenOrderedDict)
    assert isinstance(value["b"], FrozenOrderedDict)
    assert value == {"a": 1, "b": {"c": (1, 2)}}
    assert list(value) == ["b", "a"]
    assert p.serialize(value) == '{"a":1,"b":{"c":[1,2]}}'
    assert hash(value) == hash(p.normalize({"a": 1, "b": {"c": [1, 2]}}))


def test_dict_parameter_raises_one_line_error_when_not_an_object():
    assert_one_line_error(DictParameter().parse, "[1]", "dict", "JSON object")
    assert_one_line_error(DictParameter().parse, "{", "JSON object")


def test_frozen_ordered_dict_is_immutable_and_hashable():
    d = FrozenOrderedDict([("x", 1), ("y", 2)])
    assert d == FrozenOrderedDict([("y", 2), ("x", 1)])
    assert hash(d) == hash(FrozenOrderedDict([("y", 2), ("x", 1)]))
    assert list(d.items()) == [("x", 1), ("y", 2)]
    assert d.get_wrapped() == {"x": 1, "y": 2}
    with pytest.raises(TypeError):
        d["x"] = 3  # type: ignore[index]
    assert {d: "ok"}[FrozenOrderedDict(x=1, y=2)] == "ok"


# -- choices, enums, ranges ------------------------------------------------------------------


def test_enum_parameter_parses_member_name_when_known():
    p = EnumParameter(enum=Color)
    assert p.parse("GREEN") is Color.GREEN
    assert p.serialize(Color.BLUE) == "BLUE"
    assert p.type_name == "one of RED|GREEN|BLUE"
    assert_one_line_error(p.parse, "PINK", "invalid Color 'PINK' (expected one of RED|GREEN|BLUE)")
    assert_one_line_error(p.normalize, 1, "Color")


def test_enum_list_parameter_parses_comma_separated_names():
    p = EnumListParameter(enum=Color)
    assert p.parse("RED,BLUE") == (Color.RED, Color.BLUE)
    assert p.parse("") == ()
    assert p.serialize((Color.RED, Color.BLUE)) == "RED,BLUE"
    assert p.normalize([Color.GREEN]) == (Color.GREEN,)
    assert_one_line_error(p.parse, "RED,PINK", "'PINK'")


def test_choice_parameter_rejects_value_when_not_a_choice():
    p = ChoiceParameter(choices=["a", "b"])
    assert p.parse("a") == "a"
    assert p.type_name == "one of a|b"
    assert_one_line_error(p.parse, "c", "invalid choice 'c' (expected one of a|b)")
    assert_one_line_error(p.normalize, 1, "choice")
    ints = ChoiceParameter(choices=[1, 2], var_type=int)
    assert ints.parse("2") == 2
    assert_one_line_error(ints.parse, "x", "choice")
    assert_one_line_error(ints.parse, "3", "one of 1|2")


def test_numerical_parameter_checks_bounds_when_parsing():
    p = NumericalParameter(min_value=0, max_value=10)
    assert p.type_name == "int in [0, 10)"
    assert p.parse("0") == 0
    assert_one_line_error(p.parse, "10", "invalid int 10 (expected int in [0, 10))")
    assert_one_line_error(p.parse, "x", "int")
    assert p.next_in_enumeration(8) == 9
    assert p.next_in_enumeration(9) is None


def test_numerical_parameter_uses_ops_when_given():
    p = NumericalParameter(
        var_type=float, min_value=0, max_value=1, left_op=operator.lt, right_op=operator.le
    )
    assert p.type_name == "float in (0, 1]"
    assert p.parse("1") == 1.0
    assert_one_line_error(p.parse, "0", "float")


def test_numerical_parameter_rejects_var_type_when_not_a_number():
    with pytest.raises(TypeError):
        NumericalParameter(var_type=str, min_value=0, max_value=1)


# -- paths and tasks -------------------------------------------------------------------------


def test_path_parameter_makes_path_when_parsing(tmp_path):
    assert PathParameter().parse("a/b") == Path("a/b")
    assert PathParameter(absolute=True).parse("a").is_absolute()
    existing = PathParameter(exists=True)
    assert existing.parse(str(tmp_path)) == tmp_path
    assert_one_line_error(existing.parse, str(tmp_path / "nope"), "existing path")
    assert_one_line_error(PathParameter().normalize, 5, "path")


def test_task_parameter_serializes_family_when_given_task_class():
    class FakeTask:
        @classmethod
        def get_task_family(cls):
            return "ns.Fake"

    p = TaskParameter()
    assert p.serialize(FakeTask) == "ns.Fake"
    assert p.normalize(FakeTask) is FakeTask
    assert_one_line_error(p.normalize, 5, "task")


# -- the public module -----------------------------------------------------------------------


def test_every_parameter_name_of_pipes_is_importable_from_pipes_parameter():
    import pipes
    import pipes.parameter

    names = [name for name in pipes.__all__ if name.endswith("Parameter")] + ["ParameterVisibility"]
    assert len(names) > 30
    moved = [name for name in names if getattr(pipes.parameter, name) is not getattr(pipes, name)]
    assert moved == []


def test_optional_parameter_mixin_makes_custom_type_take_none():
    from pipes.parameter import OptionalParameterMixin

    class CsvParameter(Parameter):
        def parse(self, s):
            return tuple(s.split(","))

        def serialize(self, value):
            return ",".join(value)

    class OptionalCsvParameter(OptionalParameterMixin, CsvParameter):
        expected_type = tuple

    p = OptionalCsvParameter()
    assert p.parse("") is None
    assert p.parse("a,b") == ("a", "b")
    assert p.serialize(None) == ""
    assert_round_trip(p, ("a", "b"))
    assert p.type_name == "optional str"
