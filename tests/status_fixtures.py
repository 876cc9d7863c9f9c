"""A real pipesd fed by real `pipes` workers, and headless Chromium, for the status page tests.

`status_site` (module-scoped) starts pipesd and three workers on STATUS_FLOWS, then waits
until the run has settled into a known state: 60 leaves and most of a small DAG done,
failed and disabled tasks, pending tasks behind failed ones, and one task blocked RUNNING
(its worker is killed at teardown) with one PENDING behind it. `browser` is Playwright's
Chromium from /usr/bin/chromium; `page` is a fresh context per test that fails the test on
any JavaScript error.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pipesd_fixtures import (
    PIPES_SCRIPT,
    WORKER_CONFIG,
    Daemon,
    clean_environment,
    new_daemon,
    wait_for,
)

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
DOCS = Path(__file__).parent.parent / "docs"
# Set to 1 to also write the screenshots the README shows (docs/status-*.png).
DOCS_SCREENSHOTS = os.environ.get("PIPES_DOCS_SCREENSHOTS") == "1"

SCRIPT_LABEL = "<script>window.__pwned=1</script>"
LEAVES = 60

# Task families of the run. Ops is the long-lived worker's root: it ends blocked in Blocker.
STATUS_FLOWS = '''
import os
import sys
import time

import pipes


class Leaf(pipes.Task):
    n = pipes.IntParameter()

    def output(self):
        return pipes.LocalTarget(f"out/leaf-{self.n}.txt")

    def run(self):
        with self.output().open("w") as out:
            out.write("ok")


class Boom(pipes.Task):
    """Prints a few lines, then fails, in the worker's own process (Troubles runs in-process)."""

    def output(self):
        return pipes.LocalTarget("out/boom.txt")

    def run(self):
        for step in range(3):
            print(f"boom step {step}: reading rows", flush=True)
        print("boom: giving up on row 17", file=sys.stderr, flush=True)
        raise ValueError("bad row 17 in input.csv")


class Report(pipes.Task):
    """Waits on Boom, which failed: upstream failed."""

    def requires(self):
        return Boom()

    def output(self):
        return pipes.LocalTarget("out/report.txt")

    def run(self):
        pass


class Label(pipes.Task):
    text = pipes.Parameter()

    def output(self):
        return pipes.LocalTarget("out/label.txt")

    def run(self):
        with self.output().open("w") as out:
            out.write(self.text)


class Blocker(pipes.Task):
    """Runs until release.flag exists (it never does): RUNNING for the whole module."""

    priority = -10
    resources = {"db": 1}

    def output(self):
        return pipes.LocalTarget("out/blocker.txt")

    def run(self):
        self.set_status_message("waiting for release.flag")
        self.set_progress_percentage(40)
        self.set_tracking_url("http://jobs.example/17")
        while not os.path.exists("release.flag"):
            time.sleep(0.2)


class AfterBlock(pipes.Task):
    def requires(self):
        return Blocker()

    def output(self):
        return pipes.LocalTarget("out/after.txt")

    def run(self):
        pass


class Ops(pipes.WrapperTask):
    def requires(self):
        yield [Leaf(n=n) for n in range(LEAVES)]
        yield Label(text=SCRIPT_LABEL)
        yield AfterBlock()


class Source(pipes.Task):
    name = pipes.Parameter()

    def output(self):
        return pipes.LocalTarget(f"out/source-{self.name}.txt")

    def run(self):
        with self.output().open("w") as out:
            out.write(self.name)


class Part(pipes.Task):
    name = pipes.Parameter()

    def requires(self):
        needs = [Source(name="raw")]
        if self.name == "c":
            needs.append(Source(name="lookup"))
        return needs

    def output(self):
        return pipes.LocalTarget(f"out/part-{self.name}.txt")

    def run(self):
        if self.name == "c":  # runs in a child process: its output goes to the log tail
            for n in range(1, 4):
                print(f"part c: read lookup file {n} of 3", flush=True)
            print("part c: key 'c' not found", file=sys.stderr, flush=True)
            raise KeyError("lookup table has no key 'c'")
        with self.output().open("w") as out:
            out.write(self.name)


class Merge(pipes.Task):
    """The graph test's DAG: 6 tasks, 8 edges, one of them skipping a layer; Part c fails."""

    def requires(self):
        return [Part(name=n) for n in "abc"] + [Source(name="lookup")]

    def output(self):
        return pipes.LocalTarget("out/merge.txt")

    def run(self):
        with self.output().open("w") as out:
            out.write("merged")


class Flaky(pipes.Task):
    """Disabled after its first failure."""

    retry_count = 1

    def output(self):
        return pipes.LocalTarget("out/flaky.txt")

    def run(self):
        raise RuntimeError("flaky service timed out")


class Fragile(pipes.Task):
    def output(self):
        return pipes.LocalTarget("out/fragile.txt")

    def run(self):
        raise OSError("disk full")


class Troubles(pipes.WrapperTask):
    def requires(self):
        return [Flaky(), Fragile(), Report()]
'''.replace("LEAVES", str(LEAVES)).replace("SCRIPT_LABEL", repr(SCRIPT_LABEL))

# The Merge DAG as (dependent family+name, dependency family+name) pairs, for the graph test.
MERGE_EDGES = 8
MERGE_FAMILIES = {"Merge": 1, "Part": 3, "Source": 2}


@dataclass
class Site:
    """The running daemon, its workers and ids of the interesting tasks."""

    daemon: Daemon
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.daemon.url

    def call(self, method: str, **body: Any) -> dict[str, Any]:
        return self.daemon.call(method, **body)

    def task(self, family: str) -> dict[str, Any]:
        """The one task of a family (fails if there are several)."""
        tasks = self.call("task_list", family=family)["tasks"]
        assert len(tasks) == 1, tasks
        return tasks[0]

    def status(self, task_id: str) -> str:
        return self.call("task_detail", task_id=task_id)["status"]


def start_pipes(workdir: Path, task: str, url: str, *args: str) -> subprocess.Popen[bytes]:
    """A `pipes` worker for TASK of statusflows in workdir, output to files there."""
    name = task.lower()
    with (workdir / f"{name}.out").open("wb") as out, (workdir / f"{name}.err").open("wb") as err:
        return subprocess.Popen(
            [str(PIPES_SCRIPT), "--module", "statusflows", task, "--scheduler-url", url, *args],
            cwd=workdir,
            env=clean_environment(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )


def _settled(site: Site) -> bool:
    counts = site.call("counts")
    return (
        counts.get("RUNNING") == 1
        and counts.get("DISABLED") == 1
        and counts.get("FAILED") == 3
        and counts.get("DONE") == LEAVES + 1 + 4  # leaves, Label, the Merge DAG but Part c, Merge
    )


@pytest.fixture(scope="module")
def status_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """pipesd after a real run: done, failed, disabled, running and pending tasks."""
    if not PIPES_SCRIPT.exists():
        pytest.fail(f"no pipes console script at {PIPES_SCRIPT}: run `pip install -e .`")
    workdir = tmp_path_factory.mktemp("status")
    (workdir / "statusflows.py").write_text(STATUS_FLOWS)
    (workdir / "pipes.cfg").write_text(WORKER_CONFIG + "task_log_dir = logs\n")
    daemon = new_daemon(workdir / "pipesd", "[resources]\ndb = 2\n")
    site = Site(daemon)
    try:
        daemon.start()
        # Ops runs its tasks in child processes, Troubles in its own process: the log tail
        # of Boom (Troubles) is the in-process capture.
        for task, workers in (("Ops", "2"), ("Merge", "2"), ("Troubles", "1")):
            site.workers.append(start_pipes(workdir, task, daemon.url, "--workers", workers))
        wait_for(lambda: _settled(site), timeout=60, what="the status run to settle")
        for family in ("Boom", "Report", "Label", "Blocker", "AfterBlock", "Merge", "Flaky"):
            site.ids[family] = site.task(family)["task_id"]
        site.ids["Fragile"] = site.task("Fragile")["task_id"]
        (part_c,) = site.call("task_list", family="Part", search="Part_c_")["tasks"]
        site.ids["PartC"] = part_c["task_id"]
        yield site
    finally:
        stop_workers(site.workers)
        daemon.cleanup()


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM, so each worker stops its child processes too (SIGKILL would orphan them)."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium driven by Playwright; fails (never skips) when either is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the status page tests need Playwright: pip install -e '.[test]'")
    if not CHROMIUM.exists():
        pytest.fail(
            f"the status page tests need Chromium at {CHROMIUM}: "
            "apt-get install chromium (no `playwright install` needed)"
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh context and page (empty sessionStorage); a JavaScript error fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda err: errors.append(str(err)))
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield tab
    context.close()
    # 401s are expected in the token test; the browser logs each failed fetch as an error.
    unexpected = [e for e in errors if "401" not in e]
    assert not unexpected, f"JavaScript errors on the page: {unexpected}"


def screenshot(tab: Any, name: str, full_page: bool = False, selector: str | None = None) -> Path:
    """Save tests/artifacts/<name>.png (and docs/status-<name>.png when asked for).

    With `selector`, only that element is shot; otherwise the viewport (or the full page).
    """
    ARTIFACTS.mkdir(exist_ok=True)
    paths = [ARTIFACTS / f"{name}.png"] + (
        [DOCS / f"status-{name}.png"] if DOCS_SCREENSHOTS else []
    )
    for path in paths:
        if selector:
            tab.locator(selector).screenshot(path=str(path))
        else:
            tab.screenshot(path=str(path), full_page=full_page)
    return paths[0]


def accept_dialogs(tab: Any) -> list[str]:
    """Accept every confirm() from now on; returns the list their messages are added to."""
    messages: list[str] = []

    def accept(dialog: Any) -> None:
        messages.append(dialog.message)
        dialog.accept()

    tab.on("dialog", accept)
    return messages


__all__ = [
    "LEAVES",
    "MERGE_EDGES",
    "MERGE_FAMILIES",
    "SCRIPT_LABEL",
    "Site",
    "accept_dialogs",
    "browser",
    "page",
    "screenshot",
    "status_site",
    "wait_for",
]
