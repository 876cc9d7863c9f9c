"""The registry of task families, and the metaclass that caches task instances.

`T(a=1) is T(a=1)`: the metaclass resolves parameter values first, then returns the cached
instance for (class, values) if there is one. Families are looked up by name for the CLI.
"""

from __future__ import annotations

import abc
import difflib
from typing import TYPE_CHECKING, Any

from pipes.exceptions import UnknownTaskError

if TYPE_CHECKING:
    from pipes.task import Task

_registry: dict[str, list[type]] = {}
_namespaces: dict[str, str | None] = {}


def namespace(name: str | None = None, scope: str = "") -> None:
    """Give task classes defined later in modules under `scope` the namespace `name`.

    None (or "") clears the setting for `scope`, so a wider scope's namespace applies again.
    """
    if name:
        _namespaces[scope] = name
    else:
        _namespaces.pop(scope, None)


def _default_namespace(module: str) -> str | None:
    best: tuple[int, str | None] = (-1, None)
    for scope, name in _namespaces.items():
        inside = module == scope or module.startswith(scope + ".") or scope == ""
        if inside and len(scope) > best[0]:
            best = (len(scope), name)
    return best[1]


class Register(abc.ABCMeta):
    """Metaclass of Task: registers each family and caches instances by parameter values."""

    def __new__(
        mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> Register:
        cls = super().__new__(mcs, name, bases, namespace, **kwargs)
        if "task_namespace" not in namespace:
            cls._namespace_at_class_time = _default_namespace(cls.__module__)
        cls._instance_cache = {}
        cls._params_cache = None
        if namespace.get("_visible_in_registry", True) is not False:
            # a class that hides itself in its body (Config, externalize's copies) is never
            # looked up by name, so it must not make its family ambiguous either
            family = cls.get_task_family()
            same = [c for c in _registry.get(family, []) if _qualname(c) != _qualname(cls)]
            _registry[family] = [*same, cls]
        return cls

    def __call__(cls, *args: Any, **kwargs: Any) -> Task:
        values = cls.resolve_param_values(args, kwargs)
        key = tuple(values.values())
        try:
            cached = cls._instance_cache.get(key)
        except TypeError:  # an unhashable value: no caching for this one
            cached, key = None, None
        if cached is not None:
            return cached
        instance = cls.__new__(cls)
        instance._set_param_values(values)
        instance.__init__(*args, **kwargs)
        if key is not None:
            cls._instance_cache[key] = instance
        return instance

    def clear_instance_cache(cls) -> None:
        """Forget cached instances of this class (tests and long-lived processes)."""
        cls._instance_cache = {}


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def task_names() -> list[str]:
    """Every registered family name, sorted."""
    return sorted(name for name, classes in _registry.items() if not _is_hidden(classes[-1]))


def _is_hidden(cls: type) -> bool:
    return cls.__dict__.get("_visible_in_registry", True) is False


def get_task_cls(name: str) -> type:
    """The task class registered under `name`; UnknownTaskError (with suggestions) otherwise."""
    classes = _registry.get(name)
    if not classes:
        close = difflib.get_close_matches(name, task_names(), n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise UnknownTaskError(f"no task family named {name!r}{hint}")
    if len(classes) > 1:
        where = ", ".join(_qualname(c) for c in classes)
        raise UnknownTaskError(f"task family {name!r} is ambiguous: defined in {where}")
    return classes[0]


def all_task_classes() -> list[type]:
    """The most recent class of every registered family."""
    return [classes[-1] for classes in _registry.values()]
