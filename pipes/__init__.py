"""pipes: target-based batch workflows in the style of Luigi, fast and durable."""

import importlib
from typing import TYPE_CHECKING

from pipes import configuration as configuration
from pipes import event as event
from pipes import local_target as local_target
from pipes import parameter as parameter
from pipes import target as target
from pipes import task as task
from pipes.event import Event as Event
from pipes.exceptions import ConfigError as ConfigError
from pipes.exceptions import ParameterError as ParameterError
from pipes.exceptions import PipesError as PipesError
from pipes.exceptions import RPCError as RPCError
from pipes.exceptions import TargetError as TargetError
from pipes.exceptions import UnknownTaskError as UnknownTaskError
from pipes.exceptions import UsageError as UsageError
from pipes.exit_codes import ExitCode as ExitCode
from pipes.local import LocalFileSystem as LocalFileSystem
from pipes.local import LocalTarget as LocalTarget
from pipes.parameter import BoolParameter as BoolParameter
from pipes.parameter import ChoiceListParameter as ChoiceListParameter
from pipes.parameter import ChoiceParameter as ChoiceParameter
from pipes.parameter import DateHourParameter as DateHourParameter
from pipes.parameter import DateIntervalParameter as DateIntervalParameter
from pipes.parameter import DateMinuteParameter as DateMinuteParameter
from pipes.parameter import DateParameter as DateParameter
from pipes.parameter import DateSecondParameter as DateSecondParameter
from pipes.parameter import DictParameter as DictParameter
from pipes.parameter import EnumListParameter as EnumListParameter
from pipes.parameter import EnumParameter as EnumParameter
from pipes.parameter import FloatParameter as FloatParameter
from pipes.parameter import IntParameter as IntParameter
from pipes.parameter import ListParameter as ListParameter
from pipes.parameter import MonthParameter as MonthParameter
from pipes.parameter import NumericalParameter as NumericalParameter
from pipes.parameter import OptionalBoolParameter as OptionalBoolParameter
from pipes.parameter import OptionalChoiceParameter as OptionalChoiceParameter
from pipes.parameter import OptionalDictParameter as OptionalDictParameter
from pipes.parameter import OptionalFloatParameter as OptionalFloatParameter
from pipes.parameter import OptionalIntParameter as OptionalIntParameter
from pipes.parameter import OptionalListParameter as OptionalListParameter
from pipes.parameter import OptionalNumericalParameter as OptionalNumericalParameter
from pipes.parameter import OptionalParameter as OptionalParameter
from pipes.parameter import OptionalPathParameter as OptionalPathParameter
from pipes.parameter import OptionalStrParameter as OptionalStrParameter
from pipes.parameter import OptionalTupleParameter as OptionalTupleParameter
from pipes.parameter import Parameter as Parameter
from pipes.parameter import ParameterVisibility as ParameterVisibility
from pipes.parameter import PathParameter as PathParameter
from pipes.parameter import StrParameter as StrParameter
from pipes.parameter import TaskParameter as TaskParameter
from pipes.parameter import TimeDeltaParameter as TimeDeltaParameter
from pipes.parameter import TupleParameter as TupleParameter
from pipes.parameter import YearParameter as YearParameter
from pipes.target import FileSystem as FileSystem
from pipes.target import FileSystemTarget as FileSystemTarget
from pipes.target import Target as Target
from pipes.task import Config as Config
from pipes.task import DynamicRequirements as DynamicRequirements
from pipes.task import ExternalTask as ExternalTask
from pipes.task import Task as Task
from pipes.task import WrapperTask as WrapperTask
from pipes.task import externalize as externalize
from pipes.task import flatten as flatten
from pipes.task import getpaths as getpaths
from pipes.task_register import auto_namespace as auto_namespace
from pipes.task_register import namespace as namespace

if TYPE_CHECKING:  # the lazy names below, for type checkers
    from pipes import interface as interface
    from pipes.cli import run as run
    from pipes.execution_summary import LuigiStatusCode as LuigiStatusCode
    from pipes.interface import build as build
    from pipes.rpc import RemoteScheduler as RemoteScheduler
    from pipes.summary import RunResult as RunResult
    from pipes.version import __version__ as __version__

# Defining tasks needs only the eager names above. Running them (build, the worker, the
# scheduler, the RPC client with http.client and ssl) costs ~70 ms of imports, so those
# names load on first use (PEP 562): the one exception to "re-export lines only".
_LAZY: dict[str, tuple[str, str | None]] = {
    "__version__": ("pipes.version", "__version__"),  # importlib.metadata alone is ~10 ms
    "interface": ("pipes.interface", None),
    "build": ("pipes.interface", "build"),
    "run": ("pipes.cli", "run"),
    "RemoteScheduler": ("pipes.rpc", "RemoteScheduler"),
    "RunResult": ("pipes.summary", "RunResult"),
    "LuigiStatusCode": ("pipes.execution_summary", "LuigiStatusCode"),
}


def __getattr__(name: str) -> object:
    """Import a running-machinery name on first use, then keep it as a plain attribute."""
    if name not in _LAZY:
        raise AttributeError(f"module 'pipes' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """Every public name, the lazy ones included."""
    return sorted({*globals(), *_LAZY})


__all__ = [
    "__version__",
    "task",
    "target",
    "parameter",
    "configuration",
    "interface",
    "local_target",
    "event",
    "Task",
    "DynamicRequirements",
    "auto_namespace",
    "StrParameter",
    "ChoiceListParameter",
    "LuigiStatusCode",
    "RemoteScheduler",
    "RPCError",
    "WrapperTask",
    "ExternalTask",
    "Config",
    "flatten",
    "externalize",
    "getpaths",
    "namespace",
    "Event",
    "Parameter",
    "ParameterVisibility",
    "IntParameter",
    "FloatParameter",
    "BoolParameter",
    "DateParameter",
    "MonthParameter",
    "YearParameter",
    "DateHourParameter",
    "DateMinuteParameter",
    "DateSecondParameter",
    "DateIntervalParameter",
    "TimeDeltaParameter",
    "ListParameter",
    "TupleParameter",
    "DictParameter",
    "EnumParameter",
    "EnumListParameter",
    "ChoiceParameter",
    "NumericalParameter",
    "TaskParameter",
    "PathParameter",
    "OptionalParameter",
    "OptionalStrParameter",
    "OptionalIntParameter",
    "OptionalFloatParameter",
    "OptionalBoolParameter",
    "OptionalListParameter",
    "OptionalTupleParameter",
    "OptionalDictParameter",
    "OptionalChoiceParameter",
    "OptionalNumericalParameter",
    "OptionalPathParameter",
    "Target",
    "FileSystem",
    "FileSystemTarget",
    "LocalTarget",
    "LocalFileSystem",
    "build",
    "run",
    "RunResult",
    "ExitCode",
    "PipesError",
    "UsageError",
    "ConfigError",
    "ParameterError",
    "UnknownTaskError",
    "TargetError",
]
