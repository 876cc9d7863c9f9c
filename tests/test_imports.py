"""`import pipes` loads only what defining tasks needs (click's tests/test_imports.py, for pipes).

Running machinery (build, the worker, the RPC client, the in-process scheduler and its
sqlite3) loads on first use; each test runs a fresh interpreter so nothing is loaded yet.
"""

from __future__ import annotations

import json
import subprocess
import sys

# What `import pipes` may load: the task, parameter, target and config modules and their helpers.
ALLOWED = {
    "pipes",
    "pipes.config",
    "pipes.configuration",
    "pipes.date_interval",
    "pipes.event",
    "pipes.exceptions",
    "pipes.exit_codes",
    "pipes.format",
    "pipes.local",
    "pipes.local_target",
    "pipes.overrides",
    "pipes.parameter",  # a face over the four below, one family of types each
    "pipes.parameter_base",
    "pipes.parameter_dates",
    "pipes.parameter_json",
    "pipes.parameter_scalar",
    "pipes.target",
    "pipes.task",
    "pipes.task_register",
}
# Heavy or I/O modules that only running tasks needs.
NOT_LOADED = [
    "sqlite3",
    "http.client",
    "ssl",
    "socket",
    "tornado",
    "multiprocessing",
    "importlib.metadata",
    "pipes.worker",
    "pipes.scheduler",
    "pipes.interface",
    "pipes.rpc",
    "pipes.cli",
]


def _loaded_after(code: str) -> set[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout))


def test_import_pipes_loads_only_the_allowed_pipes_modules():
    loaded = _loaded_after("import pipes")
    assert {name for name in loaded if name.split(".")[0] == "pipes"} == ALLOWED


def test_import_pipes_loads_no_running_machinery():
    loaded = _loaded_after("import pipes")
    assert [name for name in NOT_LOADED if name in loaded] == []


def test_import_pipes_loads_no_slow_stdlib_module_it_does_not_need():
    loaded = _loaded_after("import pipes")
    # dataclasses (and the inspect it loads) and tomllib cost ~10 ms of a 40 ms budget;
    # shutil, tempfile, secrets and ast ~8 ms more, and load where they are used
    slow = ("dataclasses", "inspect", "tomllib", "shutil", "tempfile", "secrets", "ast")
    assert [name for name in slow if name in loaded] == []


def test_defining_a_task_loads_no_running_machinery():
    code = (
        "import pipes\n"
        "class Hello(pipes.Task):\n"
        "    day = pipes.DateParameter()\n"
        "    def output(self):\n"
        "        return pipes.LocalTarget(f'out/{self.day}.txt')\n"
        "Hello(day='2026-01-02').output().exists()\n"
    )
    loaded = _loaded_after(code)
    assert [name for name in NOT_LOADED if name in loaded] == []


def test_lazy_names_load_on_first_use():
    code = (
        "import pipes\n"
        "from pipes import build\n"
        "import pipes.interface\n"
        "assert build is pipes.interface.build\n"
        "assert pipes.run is __import__('pipes.cli').cli.run\n"
        "assert isinstance(pipes.__version__, str)\n"
        "assert {'build', 'run', 'RemoteScheduler', 'RunResult'} <= set(dir(pipes))\n"
    )
    assert "pipes.worker" in _loaded_after(code)


def test_unknown_attribute_of_pipes_raises_attribute_error():
    code = (
        "import pipes\n"
        "try:\n"
        "    pipes.no_such_name\n"
        "except AttributeError as err:\n"
        "    assert 'no_such_name' in str(err), err\n"
        "else:\n"
        "    raise SystemExit('no AttributeError')\n"
    )
    assert "pipes.worker" not in _loaded_after(code)


def test_in_process_scheduler_never_loads_sqlite3():
    loaded = _loaded_after("from pipes import build\nimport pipes.scheduler.local")
    assert "pipes.scheduler.local" in loaded
    assert "sqlite3" not in loaded


def test_a_local_run_loads_no_http_alerting_or_fork_machinery_it_does_not_use(tmp_path):
    code = (
        "import os, pipes\n"
        f"os.chdir({str(tmp_path)!r})\n"
        "class Hello(pipes.Task):\n"
        "    def output(self):\n"
        "        return pipes.LocalTarget('hello.txt')\n"
        "    def run(self):\n"
        "        with self.output().open('w') as out:\n"
        "            out.write('hi')\n"
        "assert pipes.build([Hello()], local_scheduler=True)\n"
    )
    loaded = _loaded_after(code)
    unused = ["http.client", "pipes.rpc", "pipes.notifications", "pipes.worker.pool", "ctypes"]
    assert "pipes.worker.runner" in loaded
    assert [name for name in unused if name in loaded] == []
