"""Parameter types, gathered in the one public module Luigi users import them from.

Each family lives in a module of its own, one job each: the base type and strings in
`parameter_base`, single values in `parameter_scalar`, JSON structures in `parameter_json`,
and dates, times and durations in `parameter_dates`. Import names from here or from `pipes`.
"""

from pipes.parameter_base import DuplicateParameterException as DuplicateParameterException
from pipes.parameter_base import MissingParameterException as MissingParameterException
from pipes.parameter_base import OptionalParameter as OptionalParameter
from pipes.parameter_base import OptionalParameterMixin as OptionalParameterMixin
from pipes.parameter_base import OptionalParameterTypeWarning as OptionalParameterTypeWarning
from pipes.parameter_base import OptionalStrParameter as OptionalStrParameter
from pipes.parameter_base import Parameter as Parameter
from pipes.parameter_base import ParameterException as ParameterException
from pipes.parameter_base import ParameterOptions as ParameterOptions
from pipes.parameter_base import ParameterVisibility as ParameterVisibility
from pipes.parameter_base import StrParameter as StrParameter
from pipes.parameter_base import UnconsumedParameterWarning as UnconsumedParameterWarning
from pipes.parameter_base import UnknownParameterException as UnknownParameterException
from pipes.parameter_dates import DateHourParameter as DateHourParameter
from pipes.parameter_dates import DateIntervalParameter as DateIntervalParameter
from pipes.parameter_dates import DateMinuteParameter as DateMinuteParameter
from pipes.parameter_dates import DateParameter as DateParameter
from pipes.parameter_dates import DateSecondParameter as DateSecondParameter
from pipes.parameter_dates import MonthParameter as MonthParameter
from pipes.parameter_dates import TimeDeltaParameter as TimeDeltaParameter
from pipes.parameter_dates import YearParameter as YearParameter
from pipes.parameter_json import DictParameter as DictParameter
from pipes.parameter_json import FrozenOrderedDict as FrozenOrderedDict
from pipes.parameter_json import ListParameter as ListParameter
from pipes.parameter_json import OptionalDictParameter as OptionalDictParameter
from pipes.parameter_json import OptionalListParameter as OptionalListParameter
from pipes.parameter_json import OptionalTupleParameter as OptionalTupleParameter
from pipes.parameter_json import TupleParameter as TupleParameter
from pipes.parameter_scalar import BoolParameter as BoolParameter
from pipes.parameter_scalar import ChoiceListParameter as ChoiceListParameter
from pipes.parameter_scalar import ChoiceParameter as ChoiceParameter
from pipes.parameter_scalar import EnumListParameter as EnumListParameter
from pipes.parameter_scalar import EnumParameter as EnumParameter
from pipes.parameter_scalar import FloatParameter as FloatParameter
from pipes.parameter_scalar import IntParameter as IntParameter
from pipes.parameter_scalar import NumericalParameter as NumericalParameter
from pipes.parameter_scalar import OptionalBoolParameter as OptionalBoolParameter
from pipes.parameter_scalar import OptionalChoiceParameter as OptionalChoiceParameter
from pipes.parameter_scalar import OptionalFloatParameter as OptionalFloatParameter
from pipes.parameter_scalar import OptionalIntParameter as OptionalIntParameter
from pipes.parameter_scalar import OptionalNumericalParameter as OptionalNumericalParameter
from pipes.parameter_scalar import OptionalPathParameter as OptionalPathParameter
from pipes.parameter_scalar import PathParameter as PathParameter
from pipes.parameter_scalar import TaskParameter as TaskParameter
