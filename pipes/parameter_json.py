"""JSON parameters: lists, tuples and objects, frozen so task values stay hashable.

A value is written as compact JSON with sorted keys, so equal values give equal task ids.
"""

from __future__ import annotations

import json
import math
from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any, Unpack

from pipes.exceptions import MissingExtra, ParameterError
from pipes.parameter_base import NO_VALUE, OptionalParameterMixin, Parameter, ParameterOptions, fail


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
            fail("JSON value", value, "a finite number")
        return value
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                fail("JSON object key", key, "a string")
        return FrozenOrderedDict((k, _freeze(v)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    fail("JSON value", value, "null, bool, number, string, list or object")


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
        fail("JSON", s, expected)


class _SchemaMixin[V](Parameter[V]):
    """Luigi's schema=: a JSON Schema the value must match (needs the jsonschema package)."""

    def __init__(
        self,
        default: Any = NO_VALUE,
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


class ListParameter[V: tuple[Any, ...] | None = tuple[Any, ...]](_SchemaMixin[V]):
    """A JSON list; the value is a tuple, with nested lists as tuples and objects frozen."""

    type_name = "JSON list"

    def parse(self, s: str) -> tuple[Any, ...]:
        return self._coerce(_loads(s, "a JSON list like [1, 2]"))

    def serialize(self, value: Any) -> str:
        # sort_keys makes equal values give equal strings, so task ids stay canonical
        return json.dumps(_thaw(value), separators=(",", ":"), sort_keys=True)

    def _coerce(self, value: Any) -> tuple[Any, ...]:
        if not isinstance(value, list | tuple):
            fail("list", value, "a JSON list like [1, 2]")
        self._validate(value)
        return tuple(_freeze(v) for v in value)


class TupleParameter[V: tuple[Any, ...] | None = tuple[Any, ...]](ListParameter[V]):
    """Like ListParameter; parse also reads Python tuple literals like `((1, 2), (3, 4))`."""

    def parse(self, s: str) -> tuple[Any, ...]:
        try:
            return self._coerce(json.loads(s))
        except ValueError:  # not a JSON list: read it as a Python tuple literal
            return self._from_literal(s)

    def _from_literal(self, s: str) -> tuple[Any, ...]:
        import ast  # here: import pipes stays small

        try:
            return self._coerce(ast.literal_eval(s))
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            fail("tuple", s, "a JSON list like [[1, 2], [3, 4]]")


class DictParameter[V: FrozenOrderedDict | None = FrozenOrderedDict](_SchemaMixin[V]):
    """A JSON object; the value is a FrozenOrderedDict with nested values frozen."""

    type_name = "JSON object"

    def parse(self, s: str) -> FrozenOrderedDict:
        return self._coerce(_loads(s, 'a JSON object like {"a": 1}'))

    def serialize(self, value: Any) -> str:
        return json.dumps(_thaw(value), separators=(",", ":"), sort_keys=True)

    def _coerce(self, value: Any) -> FrozenOrderedDict:
        if not isinstance(value, Mapping):
            fail("dict", value, 'a JSON object like {"a": 1}')
        self._validate(value)
        frozen = _freeze(value)
        assert isinstance(frozen, FrozenOrderedDict)
        return frozen


class OptionalListParameter(  # type: ignore[override]
    OptionalParameterMixin[tuple[Any, ...] | None], ListParameter[tuple[Any, ...] | None]
):
    """A JSON list or None."""

    expected_type = (list, tuple)


class OptionalTupleParameter(  # type: ignore[override]
    OptionalParameterMixin[tuple[Any, ...] | None], TupleParameter[tuple[Any, ...] | None]
):
    """A JSON list (or Python tuple literal) or None."""

    expected_type = (list, tuple)


class OptionalDictParameter(  # type: ignore[override]
    OptionalParameterMixin[FrozenOrderedDict | None], DictParameter[FrozenOrderedDict | None]
):
    """A JSON object or None."""

    expected_type = Mapping
