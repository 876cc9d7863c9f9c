"""Real Luigi 3.8.1 workers for the Luigi-dialect tests (issue 15).

`luigi_venv` makes (once, then reuses) a separate virtualenv with luigi==3.8.1 from the
package registry under the pytest cache dir, with this same python3.13. pipes never imports
luigi: Luigi runs only as `<venv>/bin/luigi` and `<venv>/bin/python` subprocesses.
`start_luigi` runs `luigi --module MODULE TASK --scheduler-url URL` with cwd=tmp_path, where
the test wrote its Luigi task module; tmp_path/luigi.cfg holds fast worker settings.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pipesd_fixtures import clean_environment

LUIGI_VERSION = "3.8.1"

# Fast, patient Luigi workers: short waits and, while pipesd restarts, many 1 s RPC retries.
# keep_alive: a worker waits for pending tasks run by others, as a shared fleet needs.
LUIGI_CONFIG = """\
[core]
rpc-retry-attempts = 60
rpc-retry-wait = 1
rpc-connect-timeout = 5
no_lock = true
log_level = INFO

[worker]
keep_alive = {keep_alive}
wait_interval = 0.1
wait_jitter = 0.1
ping_interval = 0.5
"""


@dataclass(frozen=True)
class LuigiVenv:
    """The test virtualenv holding Luigi."""

    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def luigi(self) -> Path:
        return self.root / "bin" / "luigi"

    def run_script(self, code: str, cwd: Path, timeout: float = 60.0) -> Any:
        """Run Python code with Luigi's python in cwd; returns the JSON it prints last."""
        done = subprocess.run(
            [str(self.python), "-c", code],
            cwd=cwd,
            env=clean_environment({"PYTHONPATH": str(cwd), "LUIGI_CONFIG_PATH": ""}),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            pytest.fail(f"luigi script failed ({done.returncode}):\n{done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def _installed(venv: LuigiVenv) -> bool:
    if not venv.luigi.exists():
        return False
    probe = subprocess.run(
        [str(venv.python), "-c", "import importlib.metadata as m; print(m.version('luigi'))"],
        capture_output=True,
        text=True,
    )
    return probe.stdout.strip() == LUIGI_VERSION


@pytest.fixture(scope="session")
def luigi_venv(pytestconfig: pytest.Config) -> LuigiVenv:
    """A virtualenv with luigi==3.8.1 under .pytest_cache, made on first use.

    A lock file keeps parallel test processes (pytest -n) from building it twice.
    """
    cache = Path(str(pytestconfig.rootpath)) / ".pytest_cache"
    cache.mkdir(exist_ok=True)
    venv = LuigiVenv(cache / "luigi-venv")
    with open(cache / "luigi-venv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _installed(venv):
            steps = [
                [sys.executable, "-m", "venv", "--clear", str(venv.root)],
                [str(venv.python), "-m", "pip", "install", "--quiet", f"luigi=={LUIGI_VERSION}"],
            ]
            for step in steps:
                done = subprocess.run(step, capture_output=True, text=True, timeout=600)
                if done.returncode != 0:
                    pytest.fail(
                        f"cannot make the Luigi test venv ({' '.join(step)}): needs PyPI "
                        f"access for luigi=={LUIGI_VERSION}\n{done.stderr[-2000:]}"
                    )
    return venv


@dataclass
class LuigiWorker:
    """A `luigi` command running in the background, its output going to a file."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def wait(self, timeout: float = 90.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            pytest.fail(f"luigi worker still running after {timeout}s:\n{self.output[-4000:]}")

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def start_luigi(luigi_venv: LuigiVenv, tmp_path: Path) -> Iterator[Callable[..., LuigiWorker]]:
    """start(TASK, *args, url=URL, module="lflows", keep_alive=True) -> LuigiWorker.

    Writes tmp_path/luigi.cfg (Luigi also reads ./luigi.cfg) and runs the real `luigi`
    command there. Workers still running at teardown are killed.
    """
    started: list[LuigiWorker] = []

    def start(
        task: str, *args: str, url: str, module: str = "lflows", keep_alive: bool = True
    ) -> LuigiWorker:
        config = tmp_path / "luigi.cfg"
        config.write_text(LUIGI_CONFIG.format(keep_alive=str(keep_alive).lower()))
        log_path = tmp_path / f"luigi-{len(started)}.log"
        env = clean_environment({"PYTHONPATH": str(tmp_path), "LUIGI_CONFIG_PATH": str(config)})
        command = [str(luigi_venv.luigi), "--module", module, task, *args, "--scheduler-url", url]
        with log_path.open("wb") as log:
            proc = subprocess.Popen(
                command,
                cwd=tmp_path,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        worker = LuigiWorker(proc, log_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(10)


def luigi_summary_ok(output: str) -> bool:
    """True when Luigi's execution summary says the run went well."""
    return "This progress looks :) because there were no failed tasks" in output


