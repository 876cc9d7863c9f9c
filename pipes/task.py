"""Task: the unit of work, defined by what it requires, what it outputs and how it runs.

Differs from luigi: a parameter value from the command line or config that does not parse is a
ParameterError naming the task, parameter and value, raised before anything runs.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from pipes import overrides
from pipes.config import get_config
from pipes.exceptions import ParameterError, TaskDefinitionError
from pipes.parameter import (
    DuplicateParameterException,
    MissingParameterException,
    Parameter,
    ParameterVisibility,
    UnknownParameterException,
)
from pipes.task_register import Register
from pipes.task_register import auto_namespace as auto_namespace
from pipes.task_register import namespace as namespace

TASK_ID_INCLUDE_PARAMS = 3
TASK_ID_TRUNCATE_PARAMS = 16
TASK_ID_TRUNCATE_HASH = 10
_NON_WORD = re.compile(r"[^A-Za-z0-9_]")  # per character, as Luigi: ids match across fleets

logger = logging.getLogger("pipes.task")

_callbacks: dict[type, dict[str, list[Callable[..., Any]]]] = {}
_CANONICAL_JSON = json.JSONEncoder(separators=(",", ":"), sort_keys=True)  # json.dumps's output


def task_id_str(family: str, params: dict[str, str], shown: Iterable[str] | None = None) -> str:
    """Stable id from the family and the significant serialised params, the same on every machine.

    Every param feeds the hash; only those named in `shown` (default: all) appear in the readable
    summary, so a private or hidden value never shows in ids on the status page or in logs.
    """
    canonical = _CANONICAL_JSON.encode(params)
    digest = hashlib.md5(canonical.encode("utf-8"), usedforsecurity=False).hexdigest()
    visible = sorted(params if shown is None else set(shown) & params.keys())
    summary = "_".join(
        _NON_WORD.sub("_", params[name][:TASK_ID_TRUNCATE_PARAMS])
        for name in visible[:TASK_ID_INCLUDE_PARAMS]
    )
    return f"{family}_{summary}_{digest[:TASK_ID_TRUNCATE_HASH]}"


class BulkCompleteNotImplementedError(TaskDefinitionError, NotImplementedError):
    """Luigi's name: raise it from bulk_complete() to have each task checked one by one."""


def flatten_output(task: Task) -> list[Any]:
    """The task's outputs; for a task without outputs (a wrapper), its requirements' outputs."""
    outputs = flatten(task.output())
    if outputs:
        return outputs
    return [target for dep in flatten(task.requires()) for target in flatten_output(dep)]


class DynamicRequirements:
    """Tasks a run() yields, with an optional cheaper completeness check for all of them.

    custom_complete(complete_fn) answers whether every requirement is complete; complete_fn
    checks one task (the default check is each task's complete()).
    """

    def __init__(
        self,
        requirements: Any,
        custom_complete: Callable[[Callable[[Task], bool]], bool] | None = None,
    ) -> None:
        self.requirements = requirements
        self.custom_complete = custom_complete

    @property
    def flat_requirements(self) -> list[Task]:
        """The required tasks, flattened."""
        return flatten(self.requirements)

    @property
    def paths(self) -> Any:
        """The outputs of the requirements, in their nest's shape."""
        return getpaths(self.requirements)

    def complete(self, complete_fn: Callable[[Task], bool] | None = None) -> bool:
        """True when every requirement is complete, by custom_complete if given."""
        check = complete_fn or (lambda task: task.complete())
        if self.custom_complete is not None:
            return bool(self.custom_complete(check))
        return all(check(task) for task in self.flat_requirements)


def flatten(struct: Any) -> list[Any]:
    """Every leaf of a nest of dicts, lists and tuples (None gives [], a string is one leaf)."""
    if struct is None:
        return []
    if isinstance(struct, DynamicRequirements):
        return flatten(struct.requirements)
    if isinstance(struct, dict):
        struct = struct.values()
    elif isinstance(struct, (str, bytes)) or getattr(type(struct), "__iter__", None) is None:
        return [struct]  # what isinstance(struct, Iterable) tells, without an ABC check per leaf
    flat: list[Any] = []
    for item in struct:
        flat.extend(flatten(item))
    return flat


def getpaths(struct: Any) -> Any:
    """The outputs of every task in a nest of tasks, keeping the nest's shape."""
    if isinstance(struct, Task):
        return struct.output()
    if isinstance(struct, DynamicRequirements):
        return struct.paths
    if isinstance(struct, dict):
        return {key: getpaths(value) for key, value in struct.items()}
    if isinstance(struct, (list, tuple)):
        return type(struct)(getpaths(item) for item in struct)
    raise TypeError(f"cannot take the outputs of {struct!r}: not a Task or a nest of tasks")


class Task(metaclass=Register):
    """A unit of work: complete when its outputs exist, run only after its requirements."""

    task_namespace: ClassVar[str | None] = None
    priority: ClassVar[int] = 0
    resources: ClassVar[dict[str, int]] = {}
    retry_count: ClassVar[int | None] = None
    retry_delay: ClassVar[float | None] = None
    disable_window: ClassVar[float | None] = None
    worker_timeout: ClassVar[float | None] = None
    accepts_messages: ClassVar[bool] = False
    max_batch_size: ClassVar[float] = math.inf  # with batch_method parameters: tasks per batch
    owner_email: ClassVar[str | list[str] | None] = None  # failure alerts also go here
    disabled: bool = False  # True: scheduled but never run (a class attribute or a property)
    disable_hard_timeout: ClassVar[float | None] = None  # Luigi's name; not read by pipes yet
    batchable: ClassVar[bool] = True  # batching also needs a parameter with batch_method

    _namespace_at_class_time: ClassVar[str | None] = None
    _instance_cache: ClassVar[dict[tuple[Any, ...], Task]]
    _params_cache: ClassVar[list[tuple[str, Parameter]] | None]

    # ----- identity -------------------------------------------------------------------------

    @classmethod
    def get_task_namespace(cls) -> str | None:
        """The namespace prefixed to the family name, if any."""
        if "task_namespace" in cls.__dict__:
            declared: str | None = cls.__dict__["task_namespace"]
            return declared
        if cls._namespace_at_class_time is not None:
            return cls._namespace_at_class_time
        return cls.task_namespace

    @classmethod
    def get_task_family(cls) -> str:
        """The family name: the class name, prefixed by its namespace."""
        namespace = cls.get_task_namespace()
        return f"{namespace}.{cls.__name__}" if namespace else cls.__name__

    @classmethod
    def get_params(cls) -> list[tuple[str, Parameter]]:
        """(name, Parameter) pairs in declaration order, parents' first.

        As in luigi, a subclass attribute that is not a Parameter (a constant, a property)
        replaces the inherited parameter of that name.
        """
        if cls.__dict__.get("_params_cache") is None:
            names = {
                name
                for klass in cls.__mro__
                for name, value in vars(klass).items()
                if isinstance(value, Parameter)
            }
            found = {name: getattr(cls, name, None) for name in names}
            params = [(n, p) for n, p in found.items() if isinstance(p, Parameter)]
            cls._params_cache = sorted(params, key=lambda item: item[1]._order)
        return cls._params_cache  # type: ignore[return-value]

    @classmethod
    def get_param_names(cls, include_significant: bool = False) -> list[str]:
        """Names of the parameters (only significant ones unless include_significant)."""
        return [n for n, p in cls.get_params() if include_significant or p.significant]

    @classmethod
    def resolve_param_values(cls, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Values by precedence: constructor > command line > config [Family] > default."""
        params = cls.get_params()
        family = cls.get_task_family()
        given = _bind_positional(family, params, args, kwargs) if args else kwargs
        known = {name for name, _ in params}
        for name in sorted(given.keys() - known):
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UnknownParameterException(f"unknown parameter {name} for task {family}{hint}")
        return {name: _resolve_one(family, name, param, given) for name, param in params}

    def _set_param_values(self, values: dict[str, Any]) -> None:
        self.param_kwargs = values
        for name, value in values.items():
            setattr(self, name, value)
        # each value serialised once: the id, the scheduler and clones all read these strings
        params = self.get_params()
        self._serialized = {name: param.serialize(values[name]) for name, param in params}
        significant = {name: self._serialized[name] for name, param in params if param.significant}
        public = [
            name
            for name, param in params
            if param.significant and param.visibility == ParameterVisibility.PUBLIC
        ]
        self.task_family = self.get_task_family()
        self.task_id = task_id_str(self.task_family, significant, shown=public)
        self._hash = hash(self.task_id)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Values are already set by the metaclass; subclasses may override and call super()."""

    def to_str_params(
        self, only_significant: bool = False, only_public: bool = False
    ) -> dict[str, str]:
        """Parameter values serialised to strings, e.g. for the scheduler or a clone elsewhere."""
        return {
            name: self._serialized[name]
            for name, param in self.get_params()
            if (param.significant or not only_significant)
            and (param.visibility == ParameterVisibility.PUBLIC or not only_public)
        }

    @classmethod
    def from_str_params(cls, params: dict[str, str]) -> Task:
        """The task whose serialised parameters are `params` (inverse of to_str_params)."""
        values = {}
        for name, param in cls.get_params():
            if name in params:
                values[name] = param.parse(params[name])
        return cls(**values)

    def clone(self, cls: type[Task] | None = None, **kwargs: Any) -> Task:
        """A task of `cls` (default: this class) sharing every parameter the two have in common."""
        target_cls = cls or type(self)
        names = {name for name, _ in target_cls.get_params()}
        values = {k: v for k, v in self.param_kwargs.items() if k in names}
        values.update(kwargs)
        return target_cls(**values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and self.task_id == other.task_id

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        shown = [
            f"{name}={param.serialize(self.param_kwargs[name])}"
            for name, param in self.get_params()
            if param.significant and param.visibility == ParameterVisibility.PUBLIC
        ]
        return f"{self.task_family}({', '.join(shown)})"

    # ----- the user's contract -------------------------------------------------------------

    def owner_addresses(self) -> tuple[str, ...]:
        """owner_email as addresses: a string (comma or space separated) or a list."""
        owners = self.owner_email
        if isinstance(owners, str):
            return tuple(owners.replace(",", " ").split())
        return tuple(owners or ())

    def requires(self) -> Any:
        """The tasks this one needs: a task, or a list/dict nest of tasks."""
        return []

    def output(self) -> Any:
        """The targets this task produces: a target, or a list/dict nest of targets."""
        return []

    def run(self) -> Any:
        """Do the work; may `yield` tasks as dynamic dependencies (their outputs come back)."""

    def complete(self) -> bool:
        """True when every output exists. A task with no outputs is never complete."""
        outputs = flatten(self.output())
        return bool(outputs) and all(target.exists() for target in outputs)

    @classmethod
    def bulk_complete(cls, parameter_tuples: Iterable[Any]) -> list[Any]:
        """The subset of parameter_tuples whose tasks are complete (override to batch checks)."""
        done = []
        for value in parameter_tuples:
            args = value if isinstance(value, tuple) else (value,)
            if cls(*args).complete():
                done.append(value)
        return done

    def deps(self) -> list[Task]:
        """The flattened list of required tasks."""
        return flatten(self.requires())

    def input(self) -> Any:
        """The outputs of requires(), in the same nest shape."""
        return getpaths(self.requires())

    def on_success(self) -> str | None:
        """Called after run() succeeds; the returned text is reported to the scheduler."""
        return None

    def on_failure(self, exception: BaseException) -> str | None:
        """Called after run() raises; the returned text is the error reported to the scheduler."""
        return None

    def process_resources(self) -> dict[str, int]:
        """Resources this instance uses while running (default: the class's `resources`)."""
        return dict(self.resources)

    # ----- feedback from run() -------------------------------------------------------------

    _status_reporter: Callable[[str, Any], None] | None = None

    def set_status_message(self, message: str) -> None:
        """Show a short message for this task in the scheduler while it runs."""
        self._report("status_message", message)

    def set_progress_percentage(self, percentage: float) -> None:
        """Show progress (0-100) for this task in the scheduler while it runs."""
        self._report("progress_percentage", percentage)

    def set_tracking_url(self, url: str) -> None:
        """Link this task to an external job page (e.g. a Spark UI) in the scheduler."""
        self._report("tracking_url", url)

    def _report(self, field: str, value: Any) -> None:
        self.__dict__.setdefault("_reported", {})[field] = value
        if self._status_reporter is not None:
            self._status_reporter(field, value)

    # ----- events -------------------------------------------------------------------------

    @classmethod
    def event_handler(cls, event: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: call the function when `event` fires on a task of this class."""

        def register(callback: Callable[..., Any]) -> Callable[..., Any]:
            _callbacks.setdefault(cls, {}).setdefault(event, []).append(callback)
            return callback

        return register

    @classmethod
    def remove_event_handler(cls, event: str, callback: Callable[..., Any]) -> None:
        """Stop calling `callback` for `event` on tasks of this class; KeyError if not set."""
        callbacks = _callbacks.get(cls, {}).get(event, [])
        if callback not in callbacks:
            raise KeyError(f"{callback!r} is not a handler of {event} on {cls.__name__}")
        callbacks.remove(callback)

    def trigger_event(self, event: str, *args: Any, **kwargs: Any) -> None:
        """Call every handler registered for `event` on this class or a parent, with args as given.

        As in Luigi, the caller passes the task itself: `task.trigger_event(Event.PROGRESS,
        task, data)`. A handler that raises is logged and skipped.
        """
        if not _callbacks:  # the usual case: no handler anywhere, four times per task
            return
        callbacks = [
            callback
            for klass, events in list(_callbacks.items())
            if isinstance(self, klass)
            for callback in events.get(event, ())
        ]
        for callback in callbacks:
            try:
                callback(*args, **kwargs)
            except Exception:
                logger.exception("%s handler %r of %s raised; ignored", event, callback, self)

    # ----- Luigi's names for parameter access ----------------------------------------------

    @property
    def param_args(self) -> tuple[Any, ...]:
        """The parameter values in declaration order."""
        return tuple(self.param_kwargs[name] for name, _ in self.get_params())

    @classmethod
    def get_param_values(
        cls, params: list[tuple[str, Parameter]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> list[tuple[str, Any]]:
        """(name, value) for every parameter, resolved as a constructor call would."""
        del params  # Luigi passes get_params(); pipes always uses the class's own
        return list(cls.resolve_param_values(args, kwargs).items())


class MixinNaiveBulkComplete:
    """Luigi's mixin: bulk_complete asks each task's complete(), one by one (Task's default)."""

    @classmethod
    def bulk_complete(cls, parameter_tuples: Iterable[Any]) -> list[Any]:
        """The subset of parameter_tuples whose tasks are complete."""
        done: list[Any] = Task.bulk_complete.__func__(cls, parameter_tuples)  # type: ignore[attr-defined]
        return done


class WrapperTask(Task):
    """A task that only groups others: complete when all its requirements are."""

    def complete(self) -> bool:
        """True when every required task is complete."""
        return all(task.complete() for task in self.deps())


class ExternalTask(Task):
    """Data made outside pipes: never run, only checked for existence."""

    run = None  # type: ignore[assignment]


def externalize(task_or_class: Any) -> Any:
    """A copy of a task class (or a task of such a copy) that pipes never runs.

    The copy keeps the family (namespace included), so its tasks have the original's task ids,
    and it stays out of the registry, so the CLI still finds the runnable original by name.
    """
    if isinstance(task_or_class, Task):
        return task_or_class.clone(externalize(type(task_or_class)))
    body = {
        "run": None,
        "task_namespace": task_or_class.get_task_namespace(),
        "_visible_in_registry": False,
        "__module__": task_or_class.__module__,
        "__qualname__": task_or_class.__qualname__,
        "__doc__": task_or_class.__doc__,
    }
    return type(task_or_class)(task_or_class.__name__, (task_or_class,), body)


class Config(Task):
    """Parameters read from a config section named after the class; never run."""

    _visible_in_registry = False


def is_external(task: Task) -> bool:
    """True when the task cannot be run by pipes (its run is None)."""
    return getattr(task, "run", None) is None


Task._visible_in_registry = False  # type: ignore[attr-defined]
WrapperTask._visible_in_registry = False  # type: ignore[attr-defined]
ExternalTask._visible_in_registry = False  # type: ignore[attr-defined]


def _bind_positional(
    family: str, params: list[tuple[str, Parameter]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    positional = [name for name, param in params if param.positional]
    if len(args) > len(positional):
        raise ParameterError(
            f"task {family} takes {len(positional)} positional parameters, got {len(args)}"
        )
    given = dict(zip(positional, args, strict=False))
    for name in kwargs:
        if name in given:
            raise DuplicateParameterException(f"parameter {name} of task {family} given twice")
    given.update(kwargs)
    return given


def _resolve_one(family: str, name: str, param: Parameter, given: dict[str, Any]) -> Any:
    try:
        if name in given:
            return param.normalize(given[name])
        text = overrides.lookup(family, name)
        if text is not None:
            return param.parse(text)
    except ParameterError as err:
        raise ParameterError(f"parameter {name} of task {family}: {err}") from None
    where = f"parameter {name} of task {family}"
    config = get_config()
    section, option = family, name
    if config.get(section, option) is None and param.config_path:
        section, option = param.config_path["section"], param.config_path["name"]
    text = config.get(section, option)
    if text is not None:
        try:
            return param.parse(text)
        except ParameterError as err:
            place = config.where(section, option)
            raise ParameterError(f"{where}: {err}, set in {place}") from None
    if param.has_default:
        try:
            return param.default
        except ParameterError as err:
            raise ParameterError(f"{where}: bad default: {err}") from None
    flag = name.replace("_", "-")
    raise MissingParameterException(
        f"missing {where} (give --{family}-{flag} or set [{family}] {name})"
    )
