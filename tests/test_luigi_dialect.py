"""pipesd serves Luigi 3.8.1 workers: real `luigi` workers and a real pipesd (issue 15).

Luigi runs from its own virtualenv (luigi_fixtures.luigi_venv); pipes never imports it.
Every task run appends "<task_id> <pid>" to runs.log, so a test counts runs per task.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
import urllib.parse
from pathlib import Path

from luigi_fixtures import luigi_summary_ok
from pipesd_fixtures import WORKER_CONFIG, clean_environment, http_request, run_counts, wait_for

LUIGI_FLOWS = '''
import datetime as dt
import os
import time

import luigi

SHARED = [(dt.date(2024, 3, day), region) for day in (1, 2) for region in ("eu-west/1 a", "us")]


def log_run(task):
    with open("runs.log", "a") as out:
        out.write(f"{task.task_id} {os.getpid()}\\n")


class Done(luigi.Task):
    def write(self):
        log_run(self)
        with self.output().open("w") as out:
            out.write("x")


class Leaf(Done):
    n = luigi.IntParameter()
    pause = luigi.FloatParameter(default=0.0, significant=False)
    resources = {"db": 1}

    def output(self):
        return luigi.LocalTarget(f"out/leaf-{self.n}")

    def run(self):
        time.sleep(self.pause)
        self.write()


class Mid(Done):
    mid = luigi.IntParameter()
    pause = luigi.FloatParameter(default=0.0, significant=False)

    def requires(self):
        return [Leaf(n=self.mid * 6 + i, pause=self.pause) for i in range(6)]

    def output(self):
        return luigi.LocalTarget(f"out/mid-{self.mid}")

    def run(self):
        self.write()


class Top(Done):
    """1 Top + 7 Mid + 42 Leaf = 50 tasks."""

    pause = luigi.FloatParameter(default=0.0, significant=False)

    def requires(self):
        return [Mid(mid=m, pause=self.pause) for m in range(7)]

    def output(self):
        return luigi.LocalTarget("out/top")

    def run(self):
        self.set_status_message("all 49 inputs there")
        self.set_progress_percentage(100)
        self.write()


class Shared(Done):
    day = luigi.DateParameter()
    region = luigi.Parameter()

    def output(self):
        return luigi.LocalTarget(f"out/shared-{self.day}-{self.region.replace('/', '_')}")

    def run(self):
        time.sleep(0.3)  # on purpose: the other worker asks for it while it runs
        self.write()


class LuigiOnly(Done):
    i = luigi.IntParameter()

    def requires(self):
        return [Shared(day=d, region=r) for d, r in SHARED]

    def output(self):
        return luigi.LocalTarget(f"out/luigi-only-{self.i}")

    def run(self):
        self.write()


class LuigiRoot(luigi.WrapperTask):
    def requires(self):
        return [LuigiOnly(i=i) for i in range(3)]


class Part(Done):
    i = luigi.IntParameter()

    def output(self):
        return luigi.LocalTarget(f"out/part-{self.i}")

    def run(self):
        self.write()


class Dynamic(Done):
    def output(self):
        return luigi.LocalTarget("out/dynamic")

    def run(self):
        yield [Part(i=i) for i in range(3)]
        self.write()


class Boom(luigi.Task):
    def output(self):
        return luigi.LocalTarget("out/boom")

    def run(self):
        log_run(self)
        raise ValueError("boom went the task")
'''

PIPES_FLOWS = """
import datetime as dt
import os
import time

import pipes

SHARED = [(dt.date(2024, 3, day), region) for day in (1, 2) for region in ("eu-west/1 a", "us")]


def log_run(task):
    with open("runs.log", "a") as out:
        out.write(f"{task.task_id} {os.getpid()}\\n")


class Shared(pipes.Task):
    day = pipes.DateParameter()
    region = pipes.Parameter()

    def output(self):
        return pipes.LocalTarget(f"out/shared-{self.day}-{self.region.replace('/', '_')}")

    def run(self):
        time.sleep(0.3)  # on purpose: the other worker asks for it while it runs
        log_run(self)
        with self.output().open("w") as out:
            out.write("x")


class PipesOnly(pipes.Task):
    i = pipes.IntParameter()

    def requires(self):
        return [Shared(day=d, region=r) for d, r in SHARED]

    def output(self):
        return pipes.LocalTarget(f"out/pipes-only-{self.i}")

    def run(self):
        log_run(self)
        with self.output().open("w") as out:
            out.write("x")


class PipesRoot(pipes.WrapperTask):
    def requires(self):
        return [PipesOnly(i=i) for i in range(3)]
"""

ON = "[scheduler]\nluigi_api = true\n"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def write_flows(tmp_path: Path) -> None:
    (tmp_path / "lflows.py").write_text(LUIGI_FLOWS)
    (tmp_path / "pflows.py").write_text(PIPES_FLOWS)
    (tmp_path / "pipes.cfg").write_text(WORKER_CONFIG)


def form(data) -> bytes:
    """A Luigi request body: form field `data` holding the JSON arguments."""
    return urllib.parse.urlencode({"data": json.dumps(data)}).encode()


def luigi_call(daemon, method, data, headers=None, verb="POST"):
    """One call in Luigi's dialect, POSTed form-encoded or sent as a GET query string."""
    if verb == "GET":
        query = form(data).decode()
        return http_request(daemon.port, "GET", f"/api/{method}?{query}", None, headers)
    return http_request(
        daemon.port, "POST", f"/api/{method}", form(data), {**FORM, **(headers or {})}
    )


def all_tasks(daemon) -> dict[str, dict]:
    reply = daemon.call("task_list", limit=1000)
    return {task["task_id"]: task for task in reply["tasks"]}


# ----- real Luigi workers ----------------------------------------------------------------------


def test_two_luigi_workers_run_each_of_50_tasks_once_and_exit_0(
    pipesd_factory, start_luigi, tmp_path
):
    write_flows(tmp_path)
    daemon = pipesd_factory(ON + "[resources]\ndb = 2\n")
    workers = [start_luigi("Top", "--pause", "0.2", url=daemon.url) for _ in range(2)]

    codes = [worker.wait() for worker in workers]

    assert codes == [0, 0], [w.output[-3000:] for w in workers]
    # As against luigid: each summary counts the tasks the other worker ran as "not granted
    # run permission" (a smiley of :|), and none failed.
    assert all("Scheduled 50 tasks" in w.output and ":(" not in w.output for w in workers)
    runs = run_counts(tmp_path / "runs.log")
    assert len(runs) == 50
    assert all(len(pids) == 1 for pids in runs.values()), runs
    assert len({pid for pids in runs.values() for pid in pids}) == 2  # both workers ran tasks
    tasks = all_tasks(daemon)
    assert {t["status"] for t in tasks.values()} == {"DONE"} and set(tasks) == set(runs)
    top = daemon.call("task_detail", task_id="Top__99914b932b")
    assert (top["status_message"], top["progress_percentage"]) == ("all 49 inputs there", 100)
    workers_seen = daemon.call("worker_list")["workers"]
    assert sum(bool(w["info"].get("luigi")) for w in workers_seen) == 2


def test_luigi_and_pipes_workers_run_shared_tasks_once(
    pipesd_factory, start_luigi, start_worker, tmp_path
):
    write_flows(tmp_path)
    daemon = pipesd_factory(ON)
    luigi_worker = start_luigi("LuigiRoot", url=daemon.url)
    pipes_worker = start_worker("PipesRoot", url=daemon.url, module="pflows")

    assert pipes_worker.wait(90) == 0, pipes_worker.stderr
    assert luigi_worker.wait() == 0, luigi_worker.output[-3000:]

    runs = run_counts(tmp_path / "runs.log")
    shared = {task_id: pids for task_id, pids in runs.items() if task_id.startswith("Shared_")}
    assert len(shared) == 4, runs  # equal ids: one entry per (day, region), not two
    assert all(len(pids) == 1 for pids in shared.values()), shared
    assert len(runs) == 4 + 3 + 3
    # Both workers added every shared task (as PENDING, or DONE once it was there): with
    # unequal ids pipesd would hold 8 Shared entries, not 4.
    tasks = all_tasks(daemon)
    assert sorted(t for t in tasks if t.startswith("Shared_")) == sorted(shared)
    assert len(tasks) == 4 + 3 + 3 + 2 and {t["status"] for t in tasks.values()} == {"DONE"}
    assert "Shared_2024_03_01_eu_west_1_a_" in " ".join(shared)


def test_luigi_worker_finishes_after_pipesd_kill_9_and_restart(
    pipesd_factory, start_luigi, tmp_path
):
    write_flows(tmp_path)
    daemon = pipesd_factory(ON + "[resources]\ndb = 1\n")
    worker = start_luigi("Top", "--pause", "0.1", url=daemon.url)
    log = tmp_path / "runs.log"
    wait_for(lambda: len(run_counts(log)) >= 10, 60, "10 Luigi tasks done")

    daemon.kill()
    done_before = set(run_counts(log))
    daemon.start()

    assert worker.wait() == 0, worker.output[-3000:]
    assert luigi_summary_ok(worker.output)
    runs = run_counts(log)
    assert len(runs) == 50 and all(len(pids) == 1 for pids in runs.values()), runs
    tasks = all_tasks(daemon)
    assert all(tasks[t]["status"] == "DONE" for t in done_before)
    assert {t["status"] for t in tasks.values()} == {"DONE"} and len(tasks) == 50


def test_failing_luigi_task_shows_its_error_in_task_detail_and_fetch_error(
    pipesd_factory, start_luigi, luigi_venv, tmp_path
):
    write_flows(tmp_path)
    daemon = pipesd_factory(ON)
    worker = start_luigi("Boom", url=daemon.url, keep_alive=False)

    assert worker.wait() == 0  # Luigi's default [retcode] task_failed is 0
    assert "This progress looks :( because there were failed tasks" in worker.output
    detail = daemon.call("task_detail", task_id="Boom__99914b932b")
    assert detail["status"] == "FAILED"
    assert "ValueError: boom went the task" in detail["error"]
    overview = daemon.call("overview")  # what the status page's front shows
    assert overview["recent_failures"][0]["error_line"] == "ValueError: boom went the task"
    assert daemon.get("/tasks/Boom__99914b932b").status == 200
    script = f"""
import json
from luigi.rpc import RemoteScheduler
s = RemoteScheduler({daemon.url!r})
print(json.dumps(s.fetch_error("Boom__99914b932b")))
"""
    fetched = luigi_venv.run_script(script, tmp_path)
    assert fetched["taskFamily"] == "Boom"
    assert "ValueError: boom went the task" in fetched["error"]


def test_luigi_dynamic_dependencies_run_with_two_worker_processes(
    pipesd_factory, start_luigi, tmp_path
):
    write_flows(tmp_path)
    daemon = pipesd_factory(ON)

    worker = start_luigi("Dynamic", "--workers", "2", url=daemon.url)

    assert worker.wait() == 0, worker.output[-3000:]
    assert luigi_summary_ok(worker.output)
    assert sorted(run_counts(tmp_path / "runs.log")) == [
        "Dynamic__99914b932b", "Part_0_d010c9c495", "Part_1_64a8d99e05", "Part_2_a9facda7c5",
    ]  # fmt: skip
    detail = daemon.call("task_detail", task_id="Dynamic__99914b932b")
    assert detail["status"] == "DONE" and len(detail["deps"]) == 3


def test_luigi_task_failures_follow_pipesd_retry_policy(pipesd_factory, start_luigi, tmp_path):
    write_flows(tmp_path)
    daemon = pipesd_factory(ON + "retry_delay = 0\nretry_count = 2\n")

    worker = start_luigi("Boom", url=daemon.url)  # keep_alive: it waits for the retry

    assert worker.wait() == 0, worker.output[-3000:]
    assert len(run_counts(tmp_path / "runs.log")["Boom__99914b932b"]) == 2
    detail = daemon.call("task_detail", task_id="Boom__99914b932b")
    assert detail["status"] == "DISABLED" and detail["failures"] == 2


def test_luigi_remote_scheduler_reads_tasks_workers_resources_and_graphs(
    pipesd_factory, start_luigi, luigi_venv, tmp_path
):
    write_flows(tmp_path)
    daemon = pipesd_factory(ON + "[resources]\ndb = 3\n")
    assert start_luigi("Mid", "--mid", "0", url=daemon.url).wait() == 0
    script = f"""
import json
from luigi.rpc import RemoteScheduler
s = RemoteScheduler({daemon.url!r})
print(json.dumps({{
    "task_list": s.task_list("DONE", ""),
    "too_many": s.task_list("DONE", "", max_shown_tasks=2),
    "search": s.task_search("Leaf_3"),
    "workers": s.worker_list(),
    "resources": s.resource_list(),
    "graph": s.graph(),
    "dep_graph": s.dep_graph("Mid_0_49cdd7d06a"),
    "paused": s.is_paused(),
}}))
"""
    read = luigi_venv.run_script(script, tmp_path)

    assert len(read["task_list"]) == 7
    assert read["task_list"]["Mid_0_49cdd7d06a"]["name"] == "Mid"
    assert read["too_many"] == {"num_tasks": 7}
    assert list(read["search"]) == ["DONE"] and len(read["search"]["DONE"]) == 1
    assert len(read["workers"]) == 1 and read["workers"][0]["name"].startswith("Worker(")
    assert read["resources"] == [{"name": "db", "num_total": 3, "num_used": 0}]
    assert set(read["graph"]) == set(read["task_list"])
    assert set(read["dep_graph"]) == set(read["task_list"])
    assert len(read["dep_graph"]["Mid_0_49cdd7d06a"]["deps"]) == 6
    assert read["paused"] == {"paused": False}


def test_luigi_worker_with_token_in_url_runs_when_pipesd_has_a_token(
    pipesd_factory, start_luigi, tmp_path
):
    write_flows(tmp_path)
    daemon = pipesd_factory(ON + "auth_token = s3cret\n", token="s3cret")
    url = daemon.url.replace("http://", "http://s3cret@")

    worker = start_luigi("Mid", "--mid", "1", url=url)

    assert worker.wait() == 0, worker.output[-3000:]
    assert luigi_summary_ok(worker.output)
    assert len(run_counts(tmp_path / "runs.log")) == 7


def test_task_ids_equal_luigi_ids_for_shared_parameter_types(luigi_venv, tmp_path):
    """The same family and parameters give the same id in Luigi 3.8.1 and in pipes."""
    same, differ = _task_ids(luigi_venv, tmp_path)
    assert same["luigi"] == same["pipes"]
    # The documented differences (docs/migrating-from-luigid.md): still different.
    assert all(differ["luigi"][k] != differ["pipes"][k] for k in differ["luigi"]), differ


def _task_ids(luigi_venv, tmp_path):
    module = textwrap.dedent("""
        import datetime, enum, json, sys
        lib = __import__(sys.argv[1])
        V = lib.parameter.ParameterVisibility

        class Color(enum.Enum):
            red = 1
            blue = 2

        SAME = {
            "Text": (lambda: lib.Parameter(), "eu-west/1 a--b"),
            "Unicode": (lambda: lib.Parameter(), "héllo wörld"),
            "Long": (lambda: lib.Parameter(), "abcdefghijklmnopqrstuvwxyz"),
            "Int": (lambda: lib.IntParameter(), 42),
            "Float": (lambda: lib.FloatParameter(), 1.5),
            "Date": (lambda: lib.DateParameter(), datetime.date(2024, 3, 1)),
            "Hour": (lambda: lib.DateHourParameter(), datetime.datetime(2024, 3, 1, 7)),
            "Minute": (lambda: lib.DateMinuteParameter(), datetime.datetime(2024, 3, 1, 7, 5)),
            "Month": (lambda: lib.MonthParameter(), datetime.date(2024, 3, 1)),
            "Enum": (lambda: lib.EnumParameter(enum=Color), Color.blue),
            "Choice": (lambda: lib.ChoiceParameter(choices=["x", "y"]), "y"),
            "NoneValue": (lambda: lib.OptionalIntParameter(), None),
            "Insignificant": (lambda: lib.Parameter(significant=False), "x"),
        }
        DIFFER = {
            "Flag": (lambda: lib.BoolParameter(), True),
            "Items": (lambda: lib.ListParameter(), [1, 2]),
            "Mapping": (lambda: lib.DictParameter(), {"b": 1, "a": 2}),
            "Span": (lambda: lib.TimeDeltaParameter(), datetime.timedelta(days=1)),
            "Private": (lambda: lib.Parameter(visibility=V.PRIVATE), "secret"),
        }

        def ids(cases):
            out = {}
            for name, (param, value) in cases.items():
                cls = type(name, (lib.Task,), {"__module__": "ids", "p": param()})
                out[name] = cls(p=value).task_id
            return out

        class Multi(lib.Task):
            b = lib.Parameter()
            a = lib.IntParameter()
            c = lib.DateParameter()
            d = lib.Parameter()

        same = ids(SAME)
        same["Multi"] = Multi(a=1, b="two", c=datetime.date(2024, 1, 2), d="four").task_id
        print(json.dumps({"same": same, "differ": ids(DIFFER)}))
    """)
    (tmp_path / "ids.py").write_text(module)
    done = subprocess.run(
        [sys.executable, str(tmp_path / "ids.py"), "pipes"],
        capture_output=True,
        text=True,
        env=clean_environment(),
        cwd=tmp_path,
        check=True,
    )
    pipes_ids = json.loads(done.stdout)
    luigi_ids = luigi_venv.run_script(
        "import runpy, sys; sys.argv = ['ids.py', 'luigi']; runpy.run_path('ids.py')", tmp_path
    )
    same = {"luigi": luigi_ids["same"], "pipes": pipes_ids["same"]}
    differ = {"luigi": luigi_ids["differ"], "pipes": pipes_ids["differ"]}
    return same, differ


# ----- the dialect's HTTP rules ------------------------------------------------------------------


def test_luigi_path_gets_404_naming_the_switch_when_dialect_is_off(pipesd):
    reply = luigi_call(pipesd, "ping", {"worker": "w"})

    assert reply.status == 404
    assert "luigi_api = true" in reply.json["error"] and "--luigi-api" in reply.json["error"]


def test_luigi_dialect_is_on_with_pipesd_section_or_flag(pipesd_factory):
    by_section = pipesd_factory("[pipesd]\nluigi_api = true\n", name="section")
    by_flag = pipesd_factory(args=("--luigi-api",), name="flag")

    for daemon in (by_section, by_flag):
        reply = luigi_call(daemon, "ping", {"worker": "w"})
        assert (reply.status, reply.json) == (200, {"response": {"rpc_messages": []}})


def test_luigi_add_task_and_get_work_use_luigi_shapes(pipesd_factory):
    daemon = pipesd_factory(ON)
    task = {"task_id": "A_1_x", "worker": "w", "family": "A", "module": "m",
            "params": {"n": "1"}, "status": "PENDING", "deps": None, "priority": 0,
            "runnable": True, "expl": None, "owners": [], "batchable": False,
            "retry_policy_dict": {"retry_count": 2}, "param_visibilities": {"n": 0},
            "resources": {}, "assistant": False, "tracking_url": None,
            "accepts_messages": False, "new_deps": None, "batch_id": None}  # fmt: skip
    assert luigi_call(daemon, "add_task", task).json == {"response": None}

    work = luigi_call(daemon, "get_work", {"worker": "w", "host": "h", "assistant": False,
                                           "current_tasks": []}).json["response"]  # fmt: skip

    assert work["task_id"] == "A_1_x" and work["task_family"] == "A"
    assert (work["task_module"], work["task_params"]) == ("m", {"n": "1"})
    assert work["n_pending_tasks"] == 0 and work["running_tasks"] == []
    failed = {"task_id": "A_1_x", "worker": "w", "status": "FAILED",
              "expl": json.dumps("Traceback ...\nKeyError: 'n'")}  # fmt: skip
    assert luigi_call(daemon, "add_task", failed).status == 200
    detail = daemon.call("task_detail", task_id="A_1_x")
    assert detail["status"] == "FAILED" and detail["error"] == "Traceback ...\nKeyError: 'n'"


def test_bad_luigi_call_gets_400_one_line_and_changes_nothing(pipesd_factory):
    daemon = pipesd_factory(ON)
    task = {"task_id": "T", "worker": "w"}
    cases = [
        (b"data=%7Bnot+json", "malformed JSON body"),
        (form({**task, "colour": 1}), "add_task: unknown argument 'colour'"),
        (form({**task, "priority": "high"}), "add_task: argument 'priority' has the wrong type"),
        (form({**task, "status": "RUNNING!"}), "add_task: unknown status 'RUNNING!'"),
        (form({"worker": "w"}), "add_task: missing argument 'task_id'"),
    ]
    for body, message in cases:
        reply = http_request(daemon.port, "POST", "/api/add_task", body, FORM)
        assert reply.status == 400 and message in reply.json["error"], reply.json
        assert "\n" not in reply.json["error"]
    assert daemon.call("task_list")["total"] == 0
    reply = luigi_call(daemon, "no_such_method", {})
    assert reply.status == 400 and reply.json["error"].startswith("unknown Luigi method")


def test_luigi_call_from_foreign_origin_gets_403_and_changes_nothing(pipesd_factory):
    daemon = pipesd_factory(ON)
    task = {"task_id": "T", "worker": "w"}

    reply = luigi_call(daemon, "add_task", task, {"Origin": "http://evil.example"})

    assert reply.status == 403 and "cross-origin" in reply.json["error"]
    assert daemon.call("task_list")["total"] == 0
    same = luigi_call(daemon, "add_task", task, {"Origin": daemon.url})
    assert same.status == 200


def test_luigi_get_may_only_read(pipesd_factory):
    daemon = pipesd_factory(ON)

    write = luigi_call(daemon, "add_task", {"task_id": "T", "worker": "w"}, verb="GET")
    read = luigi_call(daemon, "task_list", {}, verb="GET")

    assert write.status == 405 and write.headers["Allow"] == "POST"
    assert daemon.call("task_list")["total"] == 0
    assert (read.status, read.json) == (200, {"response": {}})


def test_json_api_still_refuses_form_bodies_with_luigi_dialect_on(pipesd_factory):
    daemon = pipesd_factory(ON)
    body = urllib.parse.urlencode({"data": "{}"}).encode()

    reply = http_request(daemon.port, "POST", "/api/v1/add_worker", body, FORM)
    json_body = http_request(
        daemon.port, "POST", "/api/add_worker", b'{"worker":"w","info":{}}',
        {"Content-Type": "application/json"},
    )  # fmt: skip

    assert reply.status == 415
    assert json_body.status == 415 and "form-encoded" in json_body.json["error"]


def test_luigi_call_needs_the_token_when_pipesd_has_one(pipesd_factory):
    daemon = pipesd_factory(ON + "auth_token = s3cret\n", token="s3cret")
    ping = {"worker": "w"}

    def basic(user, password=""):
        pair = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}

    assert luigi_call(daemon, "ping", ping).status == 401
    assert luigi_call(daemon, "ping", ping, basic("wrong")).status == 401
    assert luigi_call(daemon, "task_list", {}, verb="GET").status == 401
    assert luigi_call(daemon, "ping", ping, basic("s3cret")).status == 200
    assert luigi_call(daemon, "ping", ping, basic("luigi", "s3cret")).status == 200
    assert luigi_call(daemon, "ping", ping, {"Authorization": "Bearer s3cret"}).status == 200
