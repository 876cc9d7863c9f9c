"""The registry of task families, and the metaclass that caches task instances.

`T(a=1) is T(a=1)`: the metaclass resolves parameter values first, then returns the cached
instance for (class, values) if there is one. Families are looked up by name for the CLI.
"""

from __future__ import annotations

import abc
import difflib
import importlib
from typing import TYPE_CHECKING, Any

from pipes.exceptions import UnknownTaskError

if TYPE_CHECKING:
    from pipes.task import Task

_registry: dict[str, list[type[Task]]] = {}
_namespaces: dict[str, str | None] = {}
_cache = {"enabled": True}  # Register.disable_instance_cache() turns it off for the process


class TaskClassException(UnknownTaskError):
    """Luigi's name: no task class, or more than one, for a family name."""


class TaskClassNotFoundException(TaskClassException):
    """No task class is registered under the family name."""


class TaskClassAmbigiousException(TaskClassException):  # Luigi's spelling
    """More than one task class is registered under the family name."""


def namespace(name: str | None = None, scope: str = "") -> None:
    """Give task classes defined later in modules under `scope` the namespace `name`.

    None (or "") clears the setting for `scope`, so a wider scope's namespace applies again.
    """
    if name:
        _namespaces[scope] = name
    else:
        _namespaces.pop(scope, None)


_AUTO = "\0auto"  # auto_namespace(): the namespace is each class's module name


def auto_namespace(scope: str = "") -> None:
    """Give task classes defined later in modules under `scope` their module's name as namespace."""
    _namespaces[scope] = _AUTO


def _default_namespace(module: str) -> str | None:
    best: tuple[int, str | None] = (-1, None)
    for scope, name in _namespaces.items():
        inside = module == scope or module.startswith(scope + ".") or scope == ""
        if inside and len(scope) > best[0]:
            best = (len(scope), name)
    return module if best[1] == _AUTO else best[1]


class Register(abc.ABCMeta):
    """Metaclass of Task: registers each family and caches instances by parameter values."""

    def __new__(
        mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any
    ) -> Register:
        # Any: the class is a Task class, whose classmethods the metaclass cannot name
        cls: Any = super().__new__(mcs, name, bases, namespace, **kwargs)
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
        created: Register = cls
        return created

    def __call__(cls: Any, *args: Any, **kwargs: Any) -> Task:  # Any: a Task class
        values = cls.resolve_param_values(args, kwargs)
        key: tuple[Any, ...] | None = tuple(values.values())
        try:
            cached = cls._instance_cache.get(key)
        except TypeError:  # an unhashable value: no caching for this one
            cached, key = None, None
        if cached is not None and _cache["enabled"]:
            found: Task = cached
            return found
        instance: Task = cls.__new__(cls)
        instance._set_param_values(values)
        instance.__init__(*args, **kwargs)  # type: ignore[misc]  # as type.__call__ does
        if key is not None and _cache["enabled"]:
            cls._instance_cache[key] = instance
        return instance

    def clear_instance_cache(cls: Register | None = None) -> None:
        """Forget cached instances of this class, or, called on Register, of every class."""
        classes: list[Any] = [cls]
        if cls is None:
            classes = [c for cs in _registry.values() for c in cs]
        for klass in classes:
            klass._instance_cache = {}

    @staticmethod
    def disable_instance_cache() -> None:
        """Make every task instantiation build a new object, as Luigi's does."""
        _cache["enabled"] = False
        Register.clear_instance_cache()

    @staticmethod
    def get_task_cls(name: str) -> type[Task]:
        """The task class registered under `name` (see get_task_cls)."""
        return get_task_cls(name)

    @staticmethod
    def task_names() -> list[str]:
        """Every registered family name, sorted."""
        return task_names()


def _qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def task_names() -> list[str]:
    """Every registered family name, sorted."""
    return sorted(name for name, classes in _registry.items() if not _is_hidden(classes[-1]))


def _is_hidden(cls: type) -> bool:
    return cls.__dict__.get("_visible_in_registry", True) is False


def get_task_cls(name: str) -> type[Task]:
    """The task class registered under `name`; UnknownTaskError (with suggestions) otherwise."""
    classes = _registry.get(name)
    if not classes:
        close = difflib.get_close_matches(name, task_names(), n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        raise TaskClassNotFoundException(f"no task family named {name!r}{hint}")
    if len(classes) > 1:
        where = ", ".join(_qualname(c) for c in classes)
        raise TaskClassAmbigiousException(f"task family {name!r} is ambiguous: defined in {where}")
    return classes[0]


def load_task(module: str | None, task_name: str, params_str: dict[str, str]) -> Task:
    """The task of family task_name with serialised params, importing module first if given."""
    if module is not None:
        importlib.import_module(module)
    return get_task_cls(task_name).from_str_params(params_str)


def all_task_classes() -> list[type[Task]]:
    """The most recent class of every registered family."""
    return [classes[-1] for classes in _registry.values()]
