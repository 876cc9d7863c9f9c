"""The Parameter base type: how a task parameter value is parsed, normalized and serialised.

Pure value types: looking values up in config or on the command line is the Task's job.
Contract: `p.parse(p.serialize(v)) == p.normalize(v)` for every value `p` accepts.
`Parameter[T]` tells type checkers that a task's attribute holds a `T`. The typed families
live in `parameter_scalar`, `parameter_json` and `parameter_dates`; `pipes.parameter` gathers them.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable, Iterator
from enum import IntEnum
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Self, TypedDict, overload

from pipes.exceptions import ParameterError


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
    """Type of the `NO_VALUE` sentinel: "no default given", distinct from None."""

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE: Any = _NoValue()


class ParameterOptions(TypedDict, total=False):
    """The keyword options every Parameter takes, so subclasses can pass them on typed."""

    significant: bool
    description: str | None
    positional: bool
    always_in_help: bool
    batch_method: Callable[[Iterable[Any]], Any] | None
    visibility: ParameterVisibility
    config_path: dict[str, str] | None


def fail(kind: str, value: object, expected: str) -> NoReturn:
    """Raise the one-line error every parse and normalize failure uses."""
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    raise ParameterError(f"invalid {kind} {shown} (expected {expected})")


class Parameter[T = Any]:
    """A string-valued task parameter; subclasses add types. Values are kept as given.

    `T` is what a task's attribute holds for type checkers: `Parameter()` alone gives Any.
    """

    _counter: ClassVar[Iterator[int]] = itertools.count()
    type_name: str = "str"
    takes_value: bool = True

    if TYPE_CHECKING:  # a task sets values in its instance dict; this only tells the checker

        @overload
        def __get__(self, instance: None, owner: type[Any]) -> Self: ...
        @overload
        def __get__(self, instance: object, owner: type[Any]) -> T: ...
        def __get__(self, instance: object, owner: type[Any]) -> Any:
            """On a task class: the Parameter; on a task: its value."""

    def __init__(  # noqa: PLR0913 -- luigi's keyword names, kept so pipelines port unchanged
        self,
        default: Any = NO_VALUE,
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
        return self._default is not NO_VALUE

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


class OptionalParameterMixin[T = Any](Parameter[T]):
    """Also accepts None, written as the empty string (Luigi's name, for custom Optional... types).

    First in the bases, parameterised with the base type's `T | None`, as the Optional types are.
    """

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


class OptionalParameter(OptionalParameterMixin[str | None]):
    """A string parameter that may be None (the empty string on a command line)."""

    expected_type = str


class OptionalStrParameter(OptionalParameter):
    """A string or None; other types are rejected."""

    def _coerce(self, value: Any) -> Any:
        fail("string", value, "a string or None")


class StrParameter(Parameter[str]):
    """A string; other types are rejected (Luigi's StrParameter)."""

    def _coerce(self, value: Any) -> Any:
        if not isinstance(value, str):
            fail("string", value, "a string")
        return value
