"""Task model: instance caching, identity, parameter resolution, namespaces, nests, completion."""

import datetime as dt
import hashlib
import json
import re
import subprocess
import sys

import pytest

import pipes
from pipes import overrides
from pipes.exceptions import ParameterError, UnknownTaskError
from pipes.mock import MockTarget
from pipes.task import task_id_str
from pipes.task_register import get_task_cls


def expected_id(family, params, shown=None):
    canonical = json.dumps(params, separators=(",", ":"), sort_keys=True)
    digest = hashlib.md5(canonical.encode()).hexdigest()[:10]
    names = sorted(params if shown is None else shown)[:3]
    summary = "_".join(re.sub(r"\W+", "_", params[n][:16]) for n in names)
    return f"{family}_{summary}_{digest}"


# ----- instance caching, equality, hashing ---------------------------------------------------


def test_task_instance_is_cached_when_param_values_are_equal():
    class CacheT(pipes.Task):
        a = pipes.IntParameter()
        b = pipes.Parameter(default="x")

    assert CacheT(a=1) is CacheT(a=1)
    assert CacheT(1) is CacheT(a=1)
    assert CacheT(1, "x") is CacheT(a=1)
    assert CacheT("1") is CacheT(a=1)  # strings are parsed first
    assert CacheT(a=2) is not CacheT(a=1)
    assert CacheT(a=1, b="y") is not CacheT(a=1)


def test_task_equality_and_hash_follow_task_id_when_instances_differ():
    class EqT(pipes.Task):
        a = pipes.IntParameter()

    class EqOther(pipes.Task):
        a = pipes.IntParameter()

    first = EqT(a=1)
    EqT.clear_instance_cache()
    second = EqT(a=1)
    assert first is not second
    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second, EqT(a=2)}) == 2
    assert first != EqT(a=2)
    assert first != EqOther(a=1)
    assert first != first.task_id


def test_task_init_override_runs_once_per_instance_when_cached():
    calls = []

    class InitT(pipes.Task):
        a = pipes.IntParameter()

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            calls.append(self.a)

    InitT(a=5)
    InitT(a=5)
    InitT(5)
    assert calls == [5]


# ----- task ids ------------------------------------------------------------------------------


def test_task_id_is_family_summary_hash_when_params_given():
    class IdFormat(pipes.Task):
        name = pipes.Parameter()
        count = pipes.IntParameter()

    task = IdFormat(name="hello world", count=3)
    params = {"count": "3", "name": "hello world"}
    assert task.task_id == expected_id("IdFormat", params)
    assert task.task_id.startswith("IdFormat_3_hello_world_")
    assert task.task_family == "IdFormat"


def test_task_id_summary_keeps_three_params_truncated_when_many_or_long():
    class IdLong(pipes.Task):
        d = pipes.Parameter()
        c = pipes.Parameter()
        b = pipes.Parameter()
        a = pipes.Parameter()

    task = IdLong(a="x" * 40, b="b/b", c="c", d="never-shown")
    assert task.task_id.startswith(f"IdLong_{'x' * 16}_b_b_c_")
    assert "never" not in task.task_id
    params = {"a": "x" * 40, "b": "b/b", "c": "c", "d": "never-shown"}
    assert task.task_id.endswith(expected_id("IdLong", params)[-10:])


def test_task_id_has_empty_summary_when_task_has_no_params():
    class IdEmpty(pipes.Task):
        pass

    assert IdEmpty().task_id == expected_id("IdEmpty", {})
    assert IdEmpty().task_id.startswith("IdEmpty__")
    assert task_id_str("IdEmpty", {}) == IdEmpty().task_id


CROSS_PROCESS_MODULE = """
import datetime as dt
import pipes

class XprocTask(pipes.Task):
    day = pipes.DateParameter()
    options = pipes.DictParameter()
    items = pipes.ListParameter()
    label = pipes.Parameter(default="héllo wörld/ü")
    ratio = pipes.FloatParameter(default=0.1)

def make():
    return [
        XprocTask(day=dt.date(2024, 2, 29), options={"b": 1, "a": [1, {"z": 2, "y": None}]},
                  items=[3, 1, {"k": "v", "j": 1.5}]),
        XprocTask(day=dt.date(1999, 12, 31), options={}, items=[], label="", ratio=2.5),
        XprocTask(day="2030-01-01", options='{"x": "y"}', items='["a"]'),
    ]
"""


def test_task_id_is_same_in_another_process_when_params_are_equal(tmp_path, monkeypatch):
    module = "xproc_ids_mod"
    (tmp_path / f"{module}.py").write_text(CROSS_PROCESS_MODULE, encoding="utf-8")
    script = f"import json, {module}; print(json.dumps([t.task_id for t in {module}.make()]))"
    env = {"PYTHONHASHSEED": "12345", "PYTHONDONTWRITEBYTECODE": "1", "PATH": ""}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout)

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, module, raising=False)
    mod = __import__(module)
    ours = [t.task_id for t in mod.make()]
    assert ours == theirs
    assert len(set(ours)) == 3
    assert ours[0].startswith("XprocTask_2024_02_29_")


def test_task_id_is_same_when_dict_param_keys_are_given_in_other_order():
    class IdDictOrder(pipes.Task):
        options = pipes.DictParameter()

    assert IdDictOrder(options={"a": 1, "b": 2}).task_id == IdDictOrder(
        options={"b": 2, "a": 1}
    ).task_id


def test_task_id_ignores_insignificant_param_when_only_it_differs():
    class Insig(pipes.Task):
        a = pipes.IntParameter()
        note = pipes.Parameter(default="", significant=False)

    one, two = Insig(a=1, note="first"), Insig(a=1, note="second")
    assert one is not two
    assert one.task_id == two.task_id
    assert one == two
    assert "first" not in one.task_id
    assert one.to_str_params(only_significant=True) == {"a": "1"}
    assert one.to_str_params() == {"a": "1", "note": "first"}
    assert "note" not in repr(one)


# ----- visibility -----------------------------------------------------------------------------


def test_private_and_hidden_params_stay_out_of_public_views_when_set():
    class Vis(pipes.Task):
        user = pipes.Parameter()
        token = pipes.Parameter(visibility=pipes.ParameterVisibility.PRIVATE)
        region = pipes.Parameter(visibility=pipes.ParameterVisibility.HIDDEN)

    task = Vis(user="ann", token="s3cr3t", region="eu")
    assert task.to_str_params(only_public=True) == {"user": "ann"}
    assert repr(task) == "Vis(user=ann)"
    assert "s3cr3t" not in task.task_id
    assert "eu" not in task.task_id
    assert task.task_id.startswith("Vis_ann_")
    # still part of the identity, and of the full serialisation used to clone a task
    assert Vis(user="ann", token="other", region="eu") != task
    assert task.to_str_params()["token"] == "s3cr3t"
    assert task.token == "s3cr3t"


# ----- value precedence and errors -------------------------------------------------------------


def test_param_value_comes_from_constructor_then_cmdline_then_config_then_default(cfg):
    class Prec(pipes.Task):
        level = pipes.IntParameter(default=1)

    assert Prec().level == 1
    cfg.set("Prec", "level", "2")
    assert Prec().level == 2
    with overrides.cmdline_values({"Prec": {"level": "3"}}):
        assert Prec().level == 3
        assert Prec(level=4).level == 4
        assert Prec(4).level == 4
    assert Prec().level == 2


def test_param_value_is_read_from_config_path_when_family_section_lacks_it(cfg):
    class PrecPath(pipes.Task):
        bucket = pipes.Parameter(config_path={"section": "storage", "name": "bucket_name"})

    cfg.set("storage", "bucket_name", "lake")
    assert PrecPath().bucket == "lake"
    cfg.set("PrecPath", "bucket", "own")
    assert PrecPath().bucket == "own"


def test_param_value_is_read_from_dashed_config_option_when_param_has_underscore(cfg):
    class PrecDash(pipes.Task):
        max_rows = pipes.IntParameter()

    cfg.set("PrecDash", "max-rows", "10")
    assert PrecDash().max_rows == 10


def test_config_value_that_does_not_parse_raises_naming_task_param_and_place(cfg):
    class PrecBad(pipes.Task):
        level = pipes.IntParameter()

    cfg.set("PrecBad", "level", "high")
    with pytest.raises(ParameterError) as err:
        PrecBad()
    message = str(err.value)
    assert "parameter level of task PrecBad" in message
    assert "'high'" in message
    assert "[PrecBad] level" in message


def test_cmdline_value_that_does_not_parse_raises_parameter_error():
    class PrecCmdBad(pipes.Task):
        level = pipes.IntParameter()

    with overrides.cmdline_values({"PrecCmdBad": {"level": "x"}}):
        with pytest.raises(ParameterError, match="parameter level of task PrecCmdBad"):
            PrecCmdBad()


def test_unknown_param_raises_with_did_you_mean_when_name_is_close():
    class Typo(pipes.Task):
        date = pipes.DateParameter()

    with pytest.raises(ParameterError) as err:
        Typo(dat="2024-01-01")
    assert str(err.value) == "unknown parameter dat for task Typo (did you mean date?)"
    with pytest.raises(ParameterError, match=r"^unknown parameter zzz for task Typo$"):
        Typo(date="2024-01-01", zzz=1)


def test_missing_param_raises_naming_flag_and_config_section(cfg):
    class Needs(pipes.Task):
        input_path = pipes.Parameter()

    with pytest.raises(ParameterError) as err:
        Needs()
    message = str(err.value)
    assert "missing parameter input_path of task Needs" in message
    assert "--Needs-input-path" in message
    assert "[Needs] input_path" in message


def test_constructor_raises_when_too_many_positionals_or_param_given_twice():
    class Pos(pipes.Task):
        a = pipes.Parameter()
        b = pipes.Parameter(default="b", positional=False)

    with pytest.raises(ParameterError, match="takes 1 positional parameters, got 2"):
        Pos("x", "y")
    with pytest.raises(ParameterError, match="parameter a of task Pos given twice"):
        Pos("x", a="x")
    assert Pos("x", b="c").b == "c"


def test_constructor_value_that_does_not_normalize_raises_parameter_error():
    class BadValue(pipes.Task):
        n = pipes.IntParameter()

    with pytest.raises(ParameterError, match="parameter n of task BadValue"):
        BadValue(n="seven")


# ----- namespaces ------------------------------------------------------------------------------


def test_task_namespace_attribute_prefixes_family_and_is_inherited():
    class Spaced(pipes.Task):
        task_namespace = "etl"

    class SpacedChild(Spaced):
        pass

    class Unspaced(Spaced):
        task_namespace = None

    assert Spaced.get_task_family() == "etl.Spaced"
    assert Spaced().task_id.startswith("etl.Spaced_")
    assert SpacedChild.get_task_family() == "etl.SpacedChild"
    assert Unspaced.get_task_family() == "Unspaced"
    assert get_task_cls("etl.Spaced") is Spaced


def test_namespace_applies_to_classes_defined_later_in_scope_only():
    class BeforeNs(pipes.Task):
        pass

    pipes.namespace("scoped", scope=__name__)
    try:

        class InNs(pipes.Task):
            pass

        class OwnNs(pipes.Task):
            task_namespace = "mine"

        pipes.namespace("elsewhere", scope="some_other_module")

        class StillInNs(pipes.Task):
            pass

    finally:
        pipes.namespace(None, scope=__name__)
        pipes.namespace(None, scope="some_other_module")

    class AfterNs(pipes.Task):
        pass

    assert BeforeNs.get_task_family() == "BeforeNs"
    assert InNs.get_task_family() == "scoped.InNs"
    assert OwnNs.get_task_family() == "mine.OwnNs"
    assert StillInNs.get_task_family() == "scoped.StillInNs"
    assert AfterNs.get_task_family() == "AfterNs"


def test_namespace_without_scope_applies_to_every_module_until_reset():
    pipes.namespace("everywhere")
    try:

        class Global(pipes.Task):
            pass

    finally:
        pipes.namespace(None)

    class NoLongerGlobal(pipes.Task):
        pass

    assert Global.get_task_family() == "everywhere.Global"
    assert NoLongerGlobal.get_task_family() == "NoLongerGlobal"


def test_namespace_reset_for_a_scope_lets_wider_namespace_apply_again():
    pipes.namespace("narrow", scope=__name__)
    pipes.namespace(None, scope=__name__)
    pipes.namespace("wide")
    try:

        class AfterReset(pipes.Task):
            pass

    finally:
        pipes.namespace(None)
    assert AfterReset.get_task_family() == "wide.AfterReset"


# ----- params: order, inheritance, clone, round trip ------------------------------------------


def test_get_params_lists_parents_first_in_declaration_order():
    class ParamBase(pipes.Task):
        b = pipes.Parameter()
        a = pipes.Parameter()

    class ParamChild(ParamBase):
        d = pipes.Parameter(default="d", significant=False)
        c = pipes.Parameter(default="c")

    assert [n for n, _ in ParamBase.get_params()] == ["b", "a"]
    assert [n for n, _ in ParamChild.get_params()] == ["b", "a", "d", "c"]
    assert ParamChild.get_param_names() == ["b", "a", "c"]
    assert ParamChild.get_param_names(include_significant=True) == ["b", "a", "d", "c"]
    child = ParamChild("1", "2")
    assert (child.b, child.a, child.d, child.c) == ("1", "2", "d", "c")


def test_subclass_param_overrides_parent_default_when_redeclared():
    class OverBase(pipes.Task):
        x = pipes.IntParameter(default=1)

    class OverChild(OverBase):
        x = pipes.IntParameter(default=2)

    assert OverBase().x == 1
    assert OverChild().x == 2


def test_clone_copies_shared_params_and_applies_overrides():
    class CloneSrc(pipes.Task):
        day = pipes.DateParameter()
        n = pipes.IntParameter(default=1)
        extra = pipes.Parameter(default="e")

    class CloneDst(pipes.Task):
        day = pipes.DateParameter()
        n = pipes.IntParameter(default=9)

    src = CloneSrc(day=dt.date(2024, 1, 2), n=5)
    assert src.clone() is src
    assert src.clone(n=6) is CloneSrc(day=dt.date(2024, 1, 2), n=6)
    dst = src.clone(CloneDst)
    assert isinstance(dst, CloneDst)
    assert (dst.day, dst.n) == (dt.date(2024, 1, 2), 5)
    assert src.clone(CloneDst, n=7).n == 7


def test_from_str_params_returns_same_task_when_given_to_str_params():
    class RoundTrip(pipes.Task):
        day = pipes.DateParameter()
        n = pipes.IntParameter()
        items = pipes.ListParameter()
        options = pipes.DictParameter()
        ratio = pipes.FloatParameter(default=0.5)
        quiet = pipes.BoolParameter(default=False)
        note = pipes.Parameter(default="", significant=False)

    task = RoundTrip(
        day=dt.date(2024, 3, 1), n=3, items=[1, [2, 3]], options={"a": {"b": 1}},
        quiet=True, note="hi",
    )
    text = task.to_str_params()
    assert all(isinstance(v, str) for v in text.values())
    assert RoundTrip.from_str_params(text) is task
    assert RoundTrip.from_str_params({k: text[k] for k in ("day", "n", "items", "options")}) == (
        RoundTrip(day=dt.date(2024, 3, 1), n=3, items=[1, [2, 3]], options={"a": {"b": 1}})
    )


def test_task_parameter_parses_family_via_registry_and_round_trips():
    class TpTarget(pipes.Task):
        pass

    class TpUser(pipes.Task):
        other = pipes.TaskParameter()

    param = pipes.TaskParameter()
    assert param.parse("TpTarget") is TpTarget
    user = TpUser(other=TpTarget)
    assert user.to_str_params() == {"other": "TpTarget"}
    assert TpUser.from_str_params({"other": "TpTarget"}) is user
    assert TpUser(other="TpTarget") is user
    with pytest.raises(UnknownTaskError, match="TpTarge.*did you mean TpTarget"):
        param.parse("TpTarge")


# ----- requires / input / output nests ----------------------------------------------------------


def test_input_has_shape_of_requires_when_requires_is_a_nest():
    class NestLeaf(pipes.Task):
        n = pipes.IntParameter()

        def output(self):
            return MockTarget(f"/nest/{self.n}")

    class NestRoot(pipes.Task):
        def requires(self):
            return {"one": NestLeaf(1), "more": [NestLeaf(2), (NestLeaf(3),)]}

    root = NestRoot()
    inputs = root.input()
    assert set(inputs) == {"one", "more"}
    assert inputs["one"].path == "/nest/1"
    assert [t.path for t in inputs["more"][:1]] == ["/nest/2"]
    assert isinstance(inputs["more"][1], tuple)
    assert inputs["more"][1][0].path == "/nest/3"
    assert root.deps() == [NestLeaf(1), NestLeaf(2), NestLeaf(3)]


def test_flatten_and_getpaths_handle_nests_and_edge_values():
    class FlatLeaf(pipes.Task):
        n = pipes.IntParameter()

        def output(self):
            return {"data": MockTarget(f"/flat/{self.n}")}

    assert pipes.flatten(None) == []
    assert pipes.flatten("abc") == ["abc"]
    assert pipes.flatten(7) == [7]
    assert pipes.flatten({"a": [1, (2, {"b": 3})], "c": []}) == [1, 2, 3]
    paths = pipes.getpaths({"x": [FlatLeaf(1)], "y": FlatLeaf(2)})
    assert paths["x"][0]["data"].path == "/flat/1"
    assert paths["y"]["data"].path == "/flat/2"
    with pytest.raises(TypeError, match="not a Task"):
        pipes.getpaths([FlatLeaf(1), "nope"])


def test_default_requires_and_output_are_empty():
    class Bare(pipes.Task):
        pass

    assert Bare().deps() == []
    assert Bare().input() == []
    assert pipes.flatten(Bare().output()) == []


# ----- complete() ---------------------------------------------------------------------------------


def test_task_is_never_complete_when_it_has_no_outputs():
    class NoOut(pipes.Task):
        def run(self):
            pass

    task = NoOut()
    assert not task.complete()
    task.run()
    assert not task.complete()


def test_task_is_complete_only_when_every_output_exists(tmp_path):
    class TwoOut(pipes.Task):
        def output(self):
            return [pipes.LocalTarget(tmp_path / "a"), {"b": pipes.LocalTarget(tmp_path / "b")}]

    task = TwoOut()
    assert not task.complete()
    (tmp_path / "a").write_text("a")
    assert not task.complete()
    (tmp_path / "b").write_text("b")
    assert task.complete()


def test_wrapper_task_is_complete_when_all_requirements_are(tmp_path):
    class Part(pipes.Task):
        n = pipes.IntParameter()

        def output(self):
            return pipes.LocalTarget(tmp_path / f"part{self.n}")

    class Whole(pipes.WrapperTask):
        def requires(self):
            return [Part(1), Part(2)]

    class EmptyWhole(pipes.WrapperTask):
        pass

    assert EmptyWhole().complete()
    assert not Whole().complete()
    (tmp_path / "part1").write_text("")
    assert not Whole().complete()
    (tmp_path / "part2").write_text("")
    assert Whole().complete()


def test_external_task_is_not_runnable_and_complete_when_output_exists(tmp_path):
    class Raw(pipes.ExternalTask):
        def output(self):
            return pipes.LocalTarget(tmp_path / "raw.csv")

    assert Raw.run is None
    assert not Raw().complete()
    (tmp_path / "raw.csv").write_text("x")
    assert Raw().complete()


def test_externalize_class_keeps_family_and_task_id_but_not_run():
    class Producer(pipes.Task):
        task_namespace = "ext"
        day = pipes.DateParameter()

        def run(self):
            return "ran"

        def output(self):
            return MockTarget(f"/ext/{self.day}")

    External = pipes.externalize(Producer)
    task = External(day="2024-01-01")
    original = Producer(day="2024-01-01")
    assert External.get_task_family() == "ext.Producer"
    assert task.task_id == original.task_id
    assert task == original
    assert task.run is None
    assert original.run() == "ran"
    assert task.output().path == "/ext/2024-01-01"
    assert get_task_cls("ext.Producer") is Producer


def test_externalize_instance_gives_equal_task_that_is_not_runnable():
    class ProducerInst(pipes.Task):
        n = pipes.IntParameter()

        def run(self):
            return "ran"

    original = ProducerInst(n=3)
    external = pipes.externalize(original)
    assert external == original
    assert external is not original
    assert external.run is None
    assert isinstance(external, ProducerInst)
    assert original.run() == "ran"
    assert get_task_cls("ProducerInst") is ProducerInst


def test_bulk_complete_returns_complete_subset_when_given_values_and_tuples():
    class Bulk(pipes.Task):
        n = pipes.IntParameter()
        m = pipes.IntParameter(default=0)

        def output(self):
            return MockTarget(f"/bulk/{self.n}-{self.m}")

    MockTarget("/bulk/2-0").open("w").close()
    MockTarget("/bulk/3-1").open("w").close()
    try:
        assert Bulk.bulk_complete([1, 2, 3]) == [2]
        assert Bulk.bulk_complete([(3, 1), (3, 0), (2, 0)]) == [(3, 1), (2, 0)]
        assert Bulk.bulk_complete([]) == []
    finally:
        MockTarget("/bulk/2-0").remove()
        MockTarget("/bulk/3-1").remove()


def test_get_task_cls_suggests_close_family_when_name_is_unknown():
    class RegisteredFamilyName(pipes.Task):
        pass

    assert get_task_cls("RegisteredFamilyName") is RegisteredFamilyName
    with pytest.raises(UnknownTaskError, match="did you mean RegisteredFamilyName"):
        get_task_cls("RegisteredFamilyNam")


def test_subclass_attribute_that_is_not_a_parameter_replaces_inherited_param():
    class Pinned(pipes.Task):
        day = pipes.DateParameter()
        n = pipes.IntParameter(default=1)

    class PinnedChild(Pinned):
        day = dt.date(2024, 1, 1)

    assert [n for n, _ in PinnedChild.get_params()] == ["n"]
    child = PinnedChild(n=2)
    assert child.day == dt.date(2024, 1, 1)
    assert child.to_str_params() == {"n": "2"}
    with pytest.raises(ParameterError, match="unknown parameter day"):
        PinnedChild(day="2024-02-02")
