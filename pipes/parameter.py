"""Parameter types: how each task parameter value is parsed, normalized and serialised.

Pure value types: looking values up in config or on the command line is the Task's job.
Contract: `p.parse(p.serialize(v)) == p.normalize(v)` for every value `p` accepts.
Over 600 lines because every type belongs in this one public module; the text forms of dates
and durations live in `parameter_dates`.
"""

from __future__ import annotations

import ast
import datetime as dt
import itertools
import json
import math
import operator
import warnings
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from enum import Enum, IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Self, TypedDict, Unpack, overload

from pipes import date_interval
from pipes import parameter_dates as dates
from pipes.exceptions import MissingExtra, ParameterError

if TYPE_CHECKING:
    from pipes.task import Task


class ParameterException(ParameterError):
    """Luigi's name for a parameter error; pipes raises its subclasses below."""


class MissingParameterException(ParameterException):
    """A task parameter has no value: none given, none in config, no default."""


class UnknownParameterException(ParameterException):
    """A value was given for a parameter the task does not have."""


class DuplicateParameterException(ParameterException):
    """A parameter was given twice (positionally and by name)."""


class UnconsumedParameterWarning(UserWarning):
    """A config value for a task parameter that no parameter reads."""


class OptionalParameterTypeWarning(UserWarning):
    """An optional parameter got a value that is neither None nor its type."""


class ParameterVisibility(IntEnum):
    """Where a parameter shows: everywhere, not on the status page, or nowhere outside the task."""

    PUBLIC = 0
    HIDDEN = 1
    PRIVATE = 2


class _NoValue:
    """Type of the `_no_value` sentinel: "no default given", distinct from None."""

    def __repr__(self) -> str:
        return "_no_value"


_no_value: Any = _NoValue()


class ParameterOptions(TypedDict, total=False):
    """The keyword options every Parameter takes, so subclasses can pass them on typed."""

    significant: bool
    description: str | None
    positional: bool
    always_in_help: bool
    batch_method: Callable[[Iterable[Any]], Any] | None
    visibility: ParameterVisibility
    config_path: dict[str, str] | None


def _fail(kind: str, value: object, expected: str) -> NoReturn:
    """Raise the one-line error every parse and normalize failure uses."""
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    raise ParameterError(f"invalid {kind} {shown} (expected {expected})")


class Parameter:
    """A string-valued task parameter; subclasses add types. Values are kept as given."""

    _counter: ClassVar[Iterator[int]] = itertools.count()
    type_name: str = "str"
    takes_value: bool = True

    if TYPE_CHECKING:  # a task sets values in its instance dict; this only tells the checker

        @overload
        def __get__(self, instance: None, owner: type[Any]) -> Self: ...
        @overload
        def __get__(self, instance: object, owner: type[Any]) -> Any: ...
        def __get__(self, instance: object, owner: type[Any]) -> Any:
            """On a task class: the Parameter; on a task: its value."""

    def __init__(  # noqa: PLR0913 -- luigi's keyword names, kept so pipelines port unchanged
        self,
        default: Any = _no_value,
        *,
        significant: bool = True,
        description: str | None = None,
        positional: bool = True,
        always_in_help: bool = False,
        batch_method: Callable[[Iterable[Any]], Any] | None = None,
        visibility: ParameterVisibility = ParameterVisibility.PUBLIC,
        config_path: dict[str, str] | None = None,
    ) -> None:
        self._default = default
        self.significant = significant
        self.description = description
        self.positional = positional
        self.always_in_help = always_in_help
        self.batch_method = batch_method
        self.visibility = ParameterVisibility(visibility)
        self.config_path = config_path
        self._order = next(Parameter._counter)

    @property
    def has_default(self) -> bool:
        """Whether a default was given (None counts as a default)."""
        return self._default is not _no_value

    @property
    def default(self) -> Any:
        """The normalized default; raises ParameterError when there is none."""
        if not self.has_default:
            raise ParameterError(f"{type(self).__name__} has no default value")
        return self.normalize(self._default)

    def parse(self, s: str) -> Any:
        """The value written as `s` on a command line or in a config file."""
        return s

    def serialize(self, value: Any) -> str:
        """`value` (already normalized) as the canonical string `parse` reads back."""
        return str(value)

    def normalize(self, value: Any) -> Any:
        """The canonical form of `value`: strings are parsed, other values checked."""
        return self.parse(value) if isinstance(value, str) else self._coerce(value)

    def _coerce(self, value: Any) -> Any:
        """Check and convert a non-string value; the base type keeps it as given."""
        return value

    def parse_list(self, strings: Iterable[str]) -> Any:
        """Parse each string and combine the values with `batch_method`."""
        if self.batch_method is None:
            raise ParameterError(f"{type(self).__name__} has no batch_method to combine values")
        return self.batch_method([self.parse(s) for s in strings])

    def next_in_enumeration(self, value: Any) -> Any:
        """The value after `value` in a range, or None when the type has no order."""
        return None

    def __repr__(self) -> str:
        default = f"default={self._default!r}" if self.has_default else "no default"
        return f"<{type(self).__name__} {default}>"


class _OptionalMixin(Parameter):
    """Also accepts None, written as the empty string."""

    @property
    def type_name(self) -> str:  # type: ignore[override]
        return f"optional {super().type_name}"

    def parse(self, s: str) -> Any:
        return None if s == "" else super().parse(s)

    def serialize(self, value: Any) -> str:
        return "" if value is None else super().serialize(value)

    expected_type: ClassVar[type | tuple[type, ...] | None] = None

    def normalize(self, value: Any) -> Any:
        if value is None:
            return None
        expected = self.expected_type
        if expected is not None and not isinstance(value, expected):
            # as Luigi does: warn, and still try to take the value
            warnings.warn(
                f"{type(self).__name__} value {value!r} is not of type"
                f" {getattr(expected, '__name__', expected)} or None",
                OptionalParameterTypeWarning,
                stacklevel=2,
            )
        return super().normalize(value)

    def next_in_enumeration(self, value: Any) -> Any:
        return None if value is None else super().next_in_enumeration(value)


OptionalParameterMixin = _OptionalMixin  # Luigi's name, for custom Optional... parameters


class OptionalParameter(_OptionalMixin, Parameter):
    """A string parameter that may be None (the empty string on a command line)."""

    if TYPE_CHECKING:  # a task sets values in its instance dict; this only tells the checker

        @overload
        def __get__(self, instance: None, owner: type[Any]) -> Self: ...
        @overload
        def __get__(self, instance: object, owner: type[Any]) -> str | None: ...
        def __get__(self, instance: object, owner: type[Any]) -> Any:
            """On a task class: the Parameter; on a task: its value."""

    expected_type = str


class OptionalStrParameter(OptionalParameter):
    """A string or None; other types are rejected."""

    def _coerce(self, value: Any) -> Any:
        _fail("string", value, "a string or None")


# -- numbers ------------------------------------------------------------------------------


def _parse_int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        _fail("int", s, "an integer")


def _coerce_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    _fail("int", value, "an integer")


def _check_float(value: float, shown: object) -> float:
    if math.isnan(value):
        _fail("float", shown, "a number, not NaN")
    return value


def _parse_float(s: str) -> float:
    try:
        return _check_float(float(s), s)
    except ValueError:
        _fail("float", s, "a number")


def _coerce_float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _check_float(float(value), value)
    _fail("float", value, "a number")


class IntParameter(Parameter):
    """An integer."""

    if TYPE_CHECKING:  # a task sets values in its instance dict; this only tells the checker

        @overload
        def __get__(self, instance: None, owner: type[Any]) -> Self: ...
        @overload
        def __get__(self, instance: object, owner: type[Any]) -> int: ...
        def __get__(self, instance: object, owner: type[Any]) -> Any:
            """On a task class: the Parameter; on a task: its value."""

    type_name = "int"

    def parse(self, s: str) -> int:
        return _parse_int(s)

    def _coerce(self, value: Any) -> int:
        return _coerce_int(value)

    def next_in_enumeration(self, value: Any) -> int:
        following: int = value + 1
        return following


class FloatParameter(Parameter):
    """A float; NaN is rejected because it is not equal to itself."""

    if TYPE_CHECKING:  # a task sets values in its instance dict; this only tells the checker

        @overload
        def __get__(self, instance: None, owner: type[Any]) -> Self: ...
        @overload
        def __get__(self, instance: object, owner: type[Any]) -> float: ...
        def __get__(self, instance: object, owner: type[Any]) -> Any:
            """On a task class: the Parameter; on a task: its value."""

    type_name = "float"

    def parse(self, s: str) -> float:
        return _parse_float(s)

    def serialize(self, value: Any) -> str:
        return repr(float(value))

    def _coerce(self, value: Any) -> float:
        return _coerce_float(value)


class BoolParameter(Parameter):
    """True or False; `--flag` alone on a command line means True."""

    if TYPE_CHECKING:  # a task sets values in its instance dict; this only tells the checker

        @overload
        def __get__(self, instance: None, owner: type[Any]) -> Self: ...
        @overload
        def __get__(self, instance: object, owner: type[Any]) -> bool: ...
        def __get__(self, instance: object, owner: type[Any]) -> Any:
            """On a task class: the Parameter; on a task: its value."""

    type_name = "bool"
    takes_value = False
    _WORDS: ClassVar[dict[str, bool]] = {
        "true": True, "1": True, "yes": True, "false": False, "0": False, "no": False,
    }  # fmt: skip

    def __init__(self, default: Any = False, **options: Unpack[ParameterOptions]) -> None:
        """Defaults to False, as in luigi, so a plain `--flag` switch needs no default."""
        super().__init__(default, **options)

    def parse(self, s: str) -> bool:
        try:
            return self._WORDS[s.strip().lower()]
        except KeyError:
            _fail("bool", s, "true|false|1|0|yes|no")

    def serialize(self, value: Any) -> str:
        return "true" if value else "false"

    def _coerce(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        _fail("bool", value, "True or False")


class OptionalIntParameter(_OptionalMixin, IntParameter):  # type: ignore[override]
    """An integer or None."""

    if TYPE_CHECKING:  # a task sets values in its instance dict; this only tells the checker

        @overload  # type: ignore[override]  # None is a value of an optional parameter
        def __get__(self, instance: None, owner: type[Any]) -> Self: ...
        @overload
        def __get__(self, instance: object, owner: type[Any]) -> int | None: ...
        def __get__(self, instance: object, owner: type[Any]) -> Any:
            """On a task class: the Parameter; on a task: its value."""

    expected_type = int


class OptionalFloatParameter(_OptionalMixin, FloatParameter):  # type: ignore[override]
    """A float or None."""

    if TYPE_CHECKING:  # a task sets values in its instance dict; this only tells the checker

        @overload  # type: ignore[override]  # None is a value of an optional parameter
        def __get__(self, instance: None, owner: type[Any]) -> Self: ...
        @overload
        def __get__(self, instance: object, owner: type[Any]) -> float | None: ...
        def __get__(self, instance: object, owner: type[Any]) -> Any:
            """On a task class: the Parameter; on a task: its value."""

    expected_type = (int, float)


class OptionalBoolParameter(_OptionalMixin, BoolParameter):  # type: ignore[override]
    """True, False or None."""

    if TYPE_CHECKING:  # a task sets values in its instance dict; this only tells the checker

        @overload  # type: ignore[override]  # None is a value of an optional parameter
        def __get__(self, instance: None, owner: type[Any]) -> Self: ...
        @overload
        def __get__(self, instance: object, owner: type[Any]) -> bool | None: ...
        def __get__(self, instance: object, owner: type[Any]) -> Any:
            """On a task class: the Parameter; on a task: its value."""

    expected_type = bool


_OP_BRACKETS: dict[Callable[[Any, Any], Any], tuple[str, str]] = {
    operator.le: ("[", "]"),
    operator.lt: ("(", ")"),
}
_NUMBER_CODECS: dict[type, tuple[Callable[[str], Any], Callable[[Any], Any]]] = {
    int: (_parse_int, _coerce_int),
    float: (_parse_float, _coerce_float),
}


class NumericalParameter(Parameter):
    """An int or float within a range: `left_op(min_value, x) and right_op(x, max_value)`."""

    def __init__(  # noqa: PLR0913 -- luigi's keyword names
        self,
        default: Any = _no_value,
        *,
        var_type: type = int,
        min_value: float,
        max_value: float,
        left_op: Callable[[Any, Any], Any] = operator.le,
        right_op: Callable[[Any, Any], Any] = operator.lt,
        **options: Unpack[ParameterOptions],
    ) -> None:
        super().__init__(default, **options)
        if var_type not in _NUMBER_CODECS:
            raise TypeError(f"NumericalParameter var_type must be int or float, not {var_type!r}")
        self.var_type, self.min_value, self.max_value = var_type, min_value, max_value
        self.left_op, self.right_op = left_op, right_op

    @property
    def type_name(self) -> str:  # type: ignore[override]
        left = _OP_BRACKETS.get(self.left_op, ("?", "?"))[0]
        right = _OP_BRACKETS.get(self.right_op, ("?", "?"))[1]
        return f"{self.var_type.__name__} in {left}{self.min_value}, {self.max_value}{right}"

    def _check(self, value: Any) -> Any:
        if self.left_op(self.min_value, value) and self.right_op(value, self.max_value):
            return value
        _fail(self.var_type.__name__, value, self.type_name)

    def parse(self, s: str) -> Any:
        return self._check(_NUMBER_CODECS[self.var_type][0](s))

    def serialize(self, value: Any) -> str:
        return repr(value)

    def _coerce(self, value: Any) -> Any:
        return self._check(_NUMBER_CODECS[self.var_type][1](value))

    def next_in_enumeration(self, value: Any) -> Any:
        if self.var_type is not int:
            return None
        following = value + 1
        return following if self.right_op(following, self.max_value) else None


class OptionalNumericalParameter(_OptionalMixin, NumericalParameter):
    """A number within a range, or None."""


# -- choices and enums ----------------------------------------------------------------------


class ChoiceParameter(Parameter):
    """One of a fixed list of values of `var_type`."""

    def __init__(
        self,
        default: Any = _no_value,
        *,
        choices: Iterable[Any],
        var_type: type = str,
        **options: Unpack[ParameterOptions],
    ) -> None:
        super().__init__(default, **options)
        self.choices = tuple(choices)
        self.var_type = var_type

    @property
    def type_name(self) -> str:  # type: ignore[override]
        return "one of " + "|".join(str(c) for c in self.choices)

    def parse(self, s: str) -> Any:
        try:
            value = self.var_type(s)
        except (TypeError, ValueError):
            _fail("choice", s, self.type_name)
        return self._coerce(value)

    def _coerce(self, value: Any) -> Any:
        if isinstance(value, self.var_type) and value in self.choices:
            return value
        _fail("choice", value, self.type_name)


class ChoiceListParameter(Parameter):
    """Several of a fixed list of values, written comma-separated; the value is a tuple."""

    def __init__(
        self,
        default: Any = _no_value,
        *,
        choices: Iterable[Any],
        var_type: type = str,
        **options: Unpack[ParameterOptions],
    ) -> None:
        self.choice = ChoiceParameter(choices=choices, var_type=var_type)
        super().__init__(default, **options)

    @property
    def type_name(self) -> str:  # type: ignore[override]
        return "comma-separated " + self.choice.type_name

    def parse(self, s: str) -> tuple[Any, ...]:
        return tuple(self.choice.parse(part.strip()) for part in s.split(",") if part.strip())

    def serialize(self, value: Any) -> str:
        return ",".join(self.choice.serialize(v) for v in value)

    def _coerce(self, value: Any) -> tuple[Any, ...]:
        if isinstance(value, str) or not isinstance(value, Iterable):
            _fail("choice list", value, self.type_name)
        return tuple(self.choice.normalize(v) for v in value)


class StrParameter(Parameter):
    """A string; other types are rejected (Luigi's StrParameter)."""

    if TYPE_CHECKING:  # a task sets values in its instance dict; this only tells the checker

        @overload
        def __get__(self, instance: None, owner: type[Any]) -> Self: ...
        @overload
        def __get__(self, instance: object, owner: type[Any]) -> str: ...
        def __get__(self, instance: object, owner: type[Any]) -> Any:
            """On a task class: the Parameter; on a task: its value."""

    def _coerce(self, value: Any) -> Any:
        if not isinstance(value, str):
            _fail("string", value, "a string")
        return value


class OptionalChoiceParameter(_OptionalMixin, ChoiceParameter):
    """One of a fixed list of values, or None."""


class EnumParameter(Parameter):
    """A member of `enum`, written by its name."""

    def __init__(
        self,
        default: Any = _no_value,
        *,
        enum: type[Enum],
        **options: Unpack[ParameterOptions],
    ) -> None:
        super().__init__(default, **options)
        self.enum = enum

    @property
    def type_name(self) -> str:  # type: ignore[override]
        return "one of " + "|".join(self.enum.__members__)

    def _member(self, name: str) -> Enum:
        try:
            return self.enum[name]
        except KeyError:
            _fail(self.enum.__name__, name, "one of " + "|".join(self.enum.__members__))

    def _check_member(self, value: Any) -> Enum:
        if isinstance(value, self.enum):
            return value
        _fail(self.enum.__name__, value, "a member of " + self.enum.__name__)

    def parse(self, s: str) -> Any:
        return self._member(s)

    def serialize(self, value: Any) -> str:
        name: str = value.name
        return name

    def _coerce(self, value: Any) -> Any:
        return self._check_member(value)


class EnumListParameter(EnumParameter):
    """A tuple of members of `enum`, written as comma-separated names (empty for none)."""

    @property
    def type_name(self) -> str:  # type: ignore[override]
        return "comma-separated " + "|".join(self.enum.__members__)

    def parse(self, s: str) -> tuple[Enum, ...]:
        return tuple(self._member(name.strip()) for name in s.split(",")) if s else ()

    def serialize(self, value: Any) -> str:
        return ",".join(member.name for member in value)

    def _coerce(self, value: Any) -> tuple[Enum, ...]:
        if not isinstance(value, Iterable):
            _fail(f"{self.enum.__name__} list", value, "an iterable of members")
        return tuple(self._check_member(member) for member in value)


# -- JSON structures -------------------------------------------------------------------------


class FrozenOrderedDict(Mapping[str, Any]):
    """An immutable, hashable mapping that keeps insertion order; equal to any equal mapping."""

    __slots__ = ("_data", "_hash")

    def __init__(
        self, items: Mapping[str, Any] | Iterable[tuple[str, Any]] = (), /, **more: Any
    ) -> None:
        self._data: dict[str, Any] = dict(items, **more)
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __repr__(self) -> str:
        return f"FrozenOrderedDict({self._data!r})"

    def get_wrapped(self) -> dict[str, Any]:
        """A plain dict copy of the top level (luigi's name for it)."""
        return dict(self._data)


def _freeze(value: Any) -> Hashable:
    """A deeply immutable copy of JSON-like `value`: lists to tuples, mappings frozen."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            _fail("JSON value", value, "a finite number")
        return value
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                _fail("JSON object key", key, "a string")
        return FrozenOrderedDict((k, _freeze(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    _fail("JSON value", value, "null, bool, number, string, list or object")


def _thaw(value: Any) -> Any:
    """The plain JSON-serialisable form of a frozen value."""
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def _loads(s: str, expected: str) -> Any:
    try:
        return json.loads(s)
    except ValueError:
        _fail("JSON", s, expected)


class _SchemaMixin(Parameter):
    """Luigi's schema=: a JSON Schema the value must match (needs the jsonschema package)."""

    def __init__(
        self,
        default: Any = _no_value,
        *,
        schema: Mapping[str, Any] | None = None,
        **options: Unpack[ParameterOptions],
    ) -> None:
        self.schema = schema
        self._validator: Any = None
        if schema is not None:
            try:
                import jsonschema  # optional: only parameters given a schema need it
            except ImportError as err:
                raise MissingExtra(
                    f"{type(self).__name__}(schema=...) needs the jsonschema package:"
                    " pip install jsonschema"
                ) from err
            validator_cls = jsonschema.validators.validator_for(schema)
            self._validator = validator_cls(schema)
        super().__init__(default, **options)

    def _validate(self, value: Any) -> None:
        if self._validator is None:
            return
        error = next(iter(self._validator.iter_errors(_thaw(value))), None)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "value"
            raise ParameterError(f"{where} does not match the schema: {error.message}")


class ListParameter(_SchemaMixin, Parameter):
    """A JSON list; the value is a tuple, with nested lists as tuples and objects frozen."""

    type_name = "JSON list"

    def parse(self, s: str) -> tuple[Any, ...]:
        return self._coerce(_loads(s, "a JSON list like [1, 2]"))

    def serialize(self, value: Any) -> str:
        # sort_keys makes equal values give equal strings, so task ids stay canonical
        return json.dumps(_thaw(value), separators=(",", ":"), sort_keys=True)

    def _coerce(self, value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            _fail("list", value, "a JSON list like [1, 2]")
        self._validate(value)
        return tuple(_freeze(v) for v in value)


class TupleParameter(ListParameter):
    """Like ListParameter; parse also reads Python tuple literals like `((1, 2), (3, 4))`."""

    def parse(self, s: str) -> tuple[Any, ...]:
        try:
            return self._coerce(json.loads(s))
        except ValueError:
            pass
        try:
            return self._coerce(ast.literal_eval(s))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            _fail("tuple", s, "a JSON list like [[1, 2], [3, 4]]")


class DictParameter(_SchemaMixin, Parameter):
    """A JSON object; the value is a FrozenOrderedDict with nested values frozen."""

    if TYPE_CHECKING:  # a task sets values in its instance dict; this only tells the checker

        @overload
        def __get__(self, instance: None, owner: type[Any]) -> Self: ...
        @overload
        def __get__(self, instance: object, owner: type[Any]) -> FrozenOrderedDict: ...
        def __get__(self, instance: object, owner: type[Any]) -> Any:
            """On a task class: the Parameter; on a task: its value."""

    type_name = "JSON object"

    def parse(self, s: str) -> FrozenOrderedDict:
        return self._coerce(_loads(s, 'a JSON object like {"a": 1}'))

    def serialize(self, value: Any) -> str:
        return json.dumps(_thaw(value), separators=(",", ":"), sort_keys=True)

    def _coerce(self, value: Any) -> FrozenOrderedDict:
        if not isinstance(value, Mapping):
            _fail("dict", value, 'a JSON object like {"a": 1}')
        self._validate(value)
        frozen = _freeze(value)
        assert isinstance(frozen, FrozenOrderedDict)
        return frozen


class OptionalListParameter(_OptionalMixin, ListParameter):  # type: ignore[override]
    """A JSON list or None."""

    expected_type = (list, tuple)


class OptionalTupleParameter(_OptionalMixin, TupleParameter):  # type: ignore[override]
    """A JSON list (or Python tuple literal) or None."""

    expected_type = (list, tuple)


class OptionalDictParameter(_OptionalMixin, DictParameter):  # type: ignore[override]
    """A JSON object or None."""

    if TYPE_CHECKING:  # a task sets values in its instance dict; this only tells the checker

        @overload  # type: ignore[override]  # None is a value of an optional parameter
        def __get__(self, instance: None, owner: type[Any]) -> Self: ...
        @overload
        def __get__(self, instance: object, owner: type[Any]) -> FrozenOrderedDict | None: ...
        def __get__(self, instance: object, owner: type[Any]) -> Any:
            """On a task class: the Parameter; on a task: its value."""

    expected_type = Mapping


# -- paths and tasks -------------------------------------------------------------------------


class PathParameter(Parameter):
    """A filesystem path; optionally made absolute, optionally required to exist."""

    type_name = "path"

    def __init__(
        self,
        default: Any = _no_value,
        *,
        absolute: bool = False,
        exists: bool = False,
        **options: Unpack[ParameterOptions],
    ) -> None:
        super().__init__(default, **options)
        self.absolute = absolute
        self.exists = exists

    def parse(self, s: str) -> Path:
        return self._coerce(Path(s))

    def _coerce(self, value: Any) -> Path:
        if not isinstance(value, Path):
            _fail("path", value, "a string or pathlib.Path")
        path = value.absolute() if self.absolute else value
        if self.exists and not path.exists():
            _fail("path", str(path), "an existing path")
        return path


class OptionalPathParameter(_OptionalMixin, PathParameter):  # type: ignore[override]
    """A filesystem path or None."""


class TaskParameter(Parameter):
    """A Task class, written by its family name."""

    if TYPE_CHECKING:  # a task sets values in its instance dict; this only tells the checker

        @overload
        def __get__(self, instance: None, owner: type[Any]) -> Self: ...
        @overload
        def __get__(self, instance: object, owner: type[Any]) -> type[Task]: ...
        def __get__(self, instance: object, owner: type[Any]) -> Any:
            """On a task class: the Parameter; on a task: its value."""

    type_name = "task family"

    def parse(self, s: str) -> type:
        from pipes.task_register import get_task_cls  # lazy: task_register imports this module

        return get_task_cls(s)

    def serialize(self, value: Any) -> str:
        family: str = value.get_task_family()
        return family

    def _coerce(self, value: Any) -> type:
        if isinstance(value, type) and hasattr(value, "get_task_family"):
            return value
        _fail("task", value, "a Task class or family name")


# -- dates, times and durations -------------------------------------------------------------


class _DateParameterBase(Parameter):
    """A date or datetime at one unit's granularity, on a grid of `interval` units from `start`."""

    _unit: ClassVar[dates.Unit] = dates.DAY

    def __init__(
        self,
        default: Any = _no_value,
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
            _fail(unit.kind, value, f"{unit.form} within years 0001-9999")

    def parse(self, s: str) -> Any:
        return self._snap(self._unit.parse(s))

    def serialize(self, value: Any) -> str:
        return self._unit.format(value)

    def _coerce(self, value: Any) -> Any:
        if not isinstance(value, dt.date):
            _fail(self._unit.kind, value, f"a date or datetime, or {self._unit.form}")
        if isinstance(value, dt.datetime) and value.utcoffset() is not None:
            _fail(self._unit.kind, value, "a naive datetime (no time zone)")
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


class DateParameter(_DateParameterBase):
    """A datetime.date, written YYYY-MM-DD; a datetime is truncated to its date."""

    _unit = dates.DAY


class MonthParameter(_DateParameterBase):
    """The first day of a month as a datetime.date, written YYYY-MM."""

    _unit = dates.MONTH


class YearParameter(_DateParameterBase):
    """January 1st of a year as a datetime.date, written YYYY."""

    _unit = dates.YEAR


class DateHourParameter(_DateParameterBase):
    """A datetime truncated to the hour, written YYYY-MM-DDTHH."""

    _unit = dates.HOUR


class DateMinuteParameter(_DateParameterBase):
    """A datetime truncated to the minute, written YYYY-MM-DDTHHMM (YYYY-MM-DDTHH:MM also read)."""

    _unit = dates.MINUTE


class DateSecondParameter(_DateParameterBase):
    """A datetime truncated to the second, written YYYY-MM-DDTHHMMSS."""

    _unit = dates.SECOND


class DateIntervalParameter(Parameter):
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
        _fail("date interval", value, date_interval.FORMS)


class TimeDeltaParameter(Parameter):
    """A datetime.timedelta, read from ISO 8601 (P1DT2H) or units ('1 d 2 h', '30m')."""

    type_name = "duration (P1DT2H or 1d 2h)"

    def parse(self, s: str) -> dt.timedelta:
        return dates.parse_timedelta(s)

    def serialize(self, value: Any) -> str:
        return dates.format_timedelta(value)

    def _coerce(self, value: Any) -> dt.timedelta:
        if isinstance(value, dt.timedelta):
            return value
        _fail("duration", value, dates.DURATION_FORMS)
