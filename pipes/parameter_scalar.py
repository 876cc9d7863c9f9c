"""Parameters whose value is one scalar: a number, flag, choice, enum member, path or task class.

Each type parses its text form and checks values given in code; Optional variants also take None.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Unpack

from pipes.parameter_base import (
    NO_VALUE,
    OptionalParameterMixin,
    Parameter,
    ParameterOptions,
    fail,
)

if TYPE_CHECKING:
    from pipes.task import Task

type _TaskClass = type[Task]  # lazy: pipes.task imports this module

# -- numbers ------------------------------------------------------------------------------


def _parse_int(s: str) -> int:
    try:
        return int(s)
    except ValueError:
        fail("int", s, "an integer")


def _coerce_int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    fail("int", value, "an integer")


def _check_float(value: float, shown: object) -> float:
    if math.isnan(value):
        fail("float", shown, "a number, not NaN")
    return value


def _parse_float(s: str) -> float:
    try:
        return _check_float(float(s), s)
    except ValueError:
        fail("float", s, "a number")


def _coerce_float(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _check_float(float(value), value)
    fail("float", value, "a number")


class IntParameter[V: int | None = int](Parameter[V]):
    """An integer."""

    type_name = "int"

    def parse(self, s: str) -> int:
        return _parse_int(s)

    def _coerce(self, value: Any) -> int:
        return _coerce_int(value)

    def next_in_enumeration(self, value: Any) -> int:
        following: int = value + 1
        return following


class FloatParameter[V: float | None = float](Parameter[V]):
    """A float; NaN is rejected because it is not equal to itself."""

    type_name = "float"

    def parse(self, s: str) -> float:
        return _parse_float(s)

    def serialize(self, value: Any) -> str:
        return repr(float(value))

    def _coerce(self, value: Any) -> float:
        return _coerce_float(value)


class BoolParameter[V: bool | None = bool](Parameter[V]):
    """True or False; `--flag` alone on a command line means True."""

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
            fail("bool", s, "true|false|1|0|yes|no")

    def serialize(self, value: Any) -> str:
        return "true" if value else "false"

    def _coerce(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        fail("bool", value, "True or False")


class OptionalIntParameter(OptionalParameterMixin[int | None], IntParameter[int | None]):  # type: ignore[override]
    """An integer or None."""

    expected_type = int


class OptionalFloatParameter(OptionalParameterMixin[float | None], FloatParameter[float | None]):  # type: ignore[override]
    """A float or None."""

    expected_type = (int, float)


class OptionalBoolParameter(OptionalParameterMixin[bool | None], BoolParameter[bool | None]):  # type: ignore[override]
    """True, False or None."""

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
        default: Any = NO_VALUE,
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
        fail(self.var_type.__name__, value, self.type_name)

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


class OptionalNumericalParameter(OptionalParameterMixin, NumericalParameter):
    """A number within a range, or None."""


# -- choices and enums ----------------------------------------------------------------------


class ChoiceParameter(Parameter):
    """One of a fixed list of values of `var_type`."""

    def __init__(
        self,
        default: Any = NO_VALUE,
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
            fail("choice", s, self.type_name)
        return self._coerce(value)

    def _coerce(self, value: Any) -> Any:
        if isinstance(value, self.var_type) and value in self.choices:
            return value
        fail("choice", value, self.type_name)


class ChoiceListParameter(Parameter[tuple[Any, ...]]):
    """Several of a fixed list of values, written comma-separated; the value is a tuple."""

    def __init__(
        self,
        default: Any = NO_VALUE,
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
            fail("choice list", value, self.type_name)
        return tuple(self.choice.normalize(v) for v in value)


class OptionalChoiceParameter(OptionalParameterMixin, ChoiceParameter):
    """One of a fixed list of values, or None."""


class EnumParameter(Parameter):
    """A member of `enum`, written by its name."""

    def __init__(
        self,
        default: Any = NO_VALUE,
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
            fail(self.enum.__name__, name, "one of " + "|".join(self.enum.__members__))

    def _check_member(self, value: Any) -> Enum:
        if isinstance(value, self.enum):
            return value
        fail(self.enum.__name__, value, "a member of " + self.enum.__name__)

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
            fail(f"{self.enum.__name__} list", value, "an iterable of members")
        return tuple(self._check_member(member) for member in value)


# -- paths and tasks -------------------------------------------------------------------------


class PathParameter[V: Path | None = Path](Parameter[V]):
    """A filesystem path; optionally made absolute, optionally required to exist."""

    type_name = "path"

    def __init__(
        self,
        default: Any = NO_VALUE,
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
            fail("path", value, "a string or pathlib.Path")
        path = value.absolute() if self.absolute else value
        if self.exists and not path.exists():
            fail("path", str(path), "an existing path")
        return path


class OptionalPathParameter(OptionalParameterMixin[Path | None], PathParameter[Path | None]):  # type: ignore[override]
    """A filesystem path or None."""


class TaskParameter(Parameter[_TaskClass]):
    """A Task class, written by its family name."""

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
        fail("task", value, "a Task class or family name")
