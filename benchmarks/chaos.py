"""Chaos run: a real pipesd and real `pipes` workers under kill -9s and a full disk.

    python benchmarks/chaos.py [--n 1000] [--workers 4] [--daemon-kills 5] [--worker-kills 4]
                               [--seed 1] [--task-ms 20] [--disk-full-seconds 3]

Writes a pipeline module (`chaosflow.py`) into a temp dir and runs N `Item` tasks in a DAG:
of each ten, nine leaves and one "mid" task needing those nine; every hundredth task also
needs the nine mid tasks of its hundred. A WrapperTask `Root` needs them all. Each run of
an `Item` appends "<task_id> <pid> <worker> start" to runs.log, reads its inputs, sleeps
about --task-ms, writes its output through LocalTarget in two halves with a pause between
(so a kill can land mid-write), then appends the same line with "end". The output holds
the task's index, 40 fixed lines and the SHA-256 of its inputs' contents, so a partial or
stale file is caught.

It starts pipesd (this venv's console script) and M `pipes --module chaosflow Root
--workers 1` processes (each its own worker, all stakeholders of every task; config:
keep_alive, force_multiprocessing so a task runs in a child that dies with its worker,
rpc_retry_seconds 120). Then, at random points of progress (outputs on disk) drawn from
--seed, it:

* kills pipesd with SIGKILL K times and restarts it on the same port and state file after
  a random 0.2-1.5 s;
* SIGKILLs a random worker process --worker-kills times and starts a replacement;
* once (as root), fills the tmpfs (8 MB) holding the state file until ENOSPC, waits for
  /health to answer 503, keeps it full --disk-full-seconds more, then deletes the filler
  and waits for /health to answer 200 again. Not root: no episode, and a note says so.

A worker that exits while outputs are missing is started again (its exit code is shown).
At the end it checks, and prints as figures:

* every Item's output exists with exactly the expected content;
* no `*-pipes-tmp-*` file is left anywhere under the temp dir;
* runs: every task has exactly one run that finished (an "end" line), or none when its
  last attempt was cut off by a worker kill after the output was in place. An attempt
  without an "end" line is *interrupted*; it is explained when its worker was one of the
  killed ones (the task child dies with the worker). Tasks with more than one attempt are
  counted twice: re-run after a worker kill (acceptable) and unexplained (any other extra
  attempt, or two finished runs: a real double execution);
* task_list over the JSON API (POST /api/v1/task_list, paged by 1000, the daemon's page
  cap) lists every Item and Root as DONE, and the same Item ids that ran;
* the wall time.

Exits 1 when a check fails. pipesd's settings: worker_disconnect_delay 5 s (how soon a
killed worker's RUNNING task is failed and handed to another) and retry_delay 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import daemons  # benchmarks/ is not a package: imported from sys.path

PIPES = Path(sys.executable).parent / "pipes"

# Pure functions shared by the pipeline module and the checks below (exec'd in both).
SHAPE = '''
import hashlib


def deps(i):
    """Indexes Item(i) needs: a mid task (i % 10 == 9) needs the nine before it; a top task
    (i % 100 == 99) also needs the nine mid tasks of its hundred."""
    if i % 10 != 9:
        return []
    needs = list(range(i - 9, i))
    if i % 100 == 99:
        needs += range(i - 90, i - 9, 10)
    return needs


def body(i, inputs):
    """What Item(i) writes, given the bytes of its inputs in deps(i) order."""
    lines = "".join(f"item {i} line {k}\\n" for k in range(40))
    return f"item {i}\\n{lines}inputs {hashlib.sha256(inputs).hexdigest()}\\n"
'''

FLOW = (
    """
import os
import random
import time

import pipes

"""
    + SHAPE
    + """

def log(line):
    with open("runs.log", "a") as out:  # one short O_APPEND write: lines do not interleave
        out.write(line + "\\n")


class Item(pipes.Task):
    i = pipes.IntParameter()
    ms = pipes.IntParameter(default=20)

    def requires(self):
        return [Item(i=j, ms=self.ms) for j in deps(self.i)]

    def output(self):
        return pipes.LocalTarget(f"out/item-{self.i:05d}.txt")

    def run(self):
        me = f"{self.task_id} {os.getpid()} {os.environ.get('CHAOS_WORKER', '?')}"
        log(me + " start")
        inputs = b"".join(open(target.path, "rb").read() for target in self.input())
        time.sleep(self.ms / 1000 * random.uniform(0.5, 1.5))
        text = body(self.i, inputs)
        with self.output().open("w") as out:
            out.write(text[: len(text) // 2])
            out.flush()
            time.sleep(self.ms / 4000)
            out.write(text[len(text) // 2 :])
        log(me + " end")


class Root(pipes.WrapperTask):
    count = pipes.IntParameter()
    ms = pipes.IntParameter(default=20)

    def requires(self):
        return [Item(i=i, ms=self.ms) for i in range(self.count)]
"""
)

WORKER_CONFIG = """\
[core]
log_level = WARNING
rpc_retry_seconds = 120
rpc_connect_seconds = 60

[worker]
keep_alive = true
force_multiprocessing = true
wait_interval = 0.1
ping_interval = 0.5
"""

DAEMON_CONFIG = """\
[scheduler]
worker_disconnect_delay = 5
retry_delay = 1
retry_count = 1000
remove_delay = 3600
"""


@dataclass
class Worker:
    """One `pipes` process."""

    label: str
    proc: subprocess.Popen[bytes]
    err_path: Path
    killed: bool = False
    reaped: bool = False


@dataclass
class Chaos:
    """The run: its temp dir, the daemon, the workers and what happened."""

    args: argparse.Namespace
    work: Path
    state_dir: Path
    disk_episode: bool
    rng: random.Random
    port: int = field(default_factory=daemons.free_port)
    daemon: subprocess.Popen[bytes] | None = None
    daemon_starts: int = 0
    workers: list[Worker] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    exits: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    health: dict[str, object] = field(default_factory=dict)

    # ----- pipesd --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start_daemon(self) -> float:
        """Start pipesd on the same port and state file; seconds until /health answers."""
        t0 = time.monotonic()
        self.daemon_starts += 1
        log = self.work / f"pipesd-{self.daemon_starts}.log"
        argv = [
            str(daemons.PIPESD),
            "--address", "127.0.0.1",
            "--port", str(self.port),
            "--state-path", str(self.state_dir / "state.sqlite"),
            "--config", str(self.work / "pipesd.cfg"),
            "--log-level", "warning",
        ]  # fmt: skip
        with log.open("wb") as out:
            self.daemon = subprocess.Popen(
                argv, cwd=self.work, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        give_up = time.monotonic() + 30
        while time.monotonic() < give_up:
            if self.daemon.poll() is not None:
                raise SystemExit(f"pipesd exited {self.daemon.returncode}:\n{log.read_text()}")
            if self.health_status() is not None:
                return time.monotonic() - t0
            time.sleep(0.02)
        raise SystemExit(f"pipesd did not answer /health within 30 s:\n{log.read_text()}")

    def health_status(self) -> int | None:
        """HTTP status of GET /health, None when nothing answers."""
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                conn.request("GET", "/health")
                return conn.getresponse().status
            finally:
                conn.close()
        except OSError:
            return None

    def kill_daemon(self) -> None:
        """kill -9 pipesd, wait a random moment, start it again."""
        assert self.daemon is not None
        self.daemon.kill()
        self.daemon.wait()
        down = self.rng.uniform(0.2, 1.5)
        self.wait(down)
        ready = self.start_daemon()
        self.note(f"pipesd kill -9, down {down:.2f} s, answering {ready:.2f} s after restart")

    def post(self, method: str, body: dict) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = {"Content-Type": "application/json"}
            conn.request("POST", f"/api/v1/{method}", json.dumps(body).encode(), headers)
            reply = conn.getresponse()
            data = reply.read()
        finally:
            conn.close()
        if reply.status != 200:
            raise SystemExit(f"{method} answered HTTP {reply.status}: {data[:300]!r}")
        return json.loads(data)

    def task_list(self) -> list[dict]:
        """Every task the daemon knows, paged (the daemon serves at most 1000 a page)."""
        tasks: list[dict] = []
        limit = min(self.args.n + 10, 1000)
        while True:
            page = self.post("task_list", {"limit": limit, "offset": len(tasks), "sort": "task_id"})
            tasks += page["tasks"]
            if not page["tasks"] or len(tasks) >= page["total"]:
                return tasks

    # ----- workers -------------------------------------------------------------------------

    def start_worker(self) -> Worker:
        label = f"w{len(self.workers)}"
        err_path = self.work / f"worker-{label}.err"
        argv = [
            str(PIPES), "--module", "chaosflow", "Root",
            "--count", str(self.args.n), "--ms", str(self.args.task_ms),
            "--scheduler-url", self.url, "--workers", "1",
            "--no-lock",  # identical workers on purpose: pipesd is what de-duplicates here
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("PIPES_")}
        env |= {"CHAOS_WORKER": label, "PYTHONDONTWRITEBYTECODE": "1"}
        with err_path.open("wb") as err:
            proc = subprocess.Popen(
                argv, cwd=self.work, env=env, stdin=subprocess.DEVNULL, stdout=err, stderr=err
            )
        worker = Worker(label, proc, err_path)
        self.workers.append(worker)
        return worker

    def live_workers(self) -> list[Worker]:
        return [w for w in self.workers if w.proc.poll() is None]

    def kill_worker(self) -> None:
        """SIGKILL a random live worker process and start a replacement."""
        live = self.live_workers()
        if not live:
            return
        victim = self.rng.choice(live)
        victim.killed = True
        victim.proc.kill()
        victim.proc.wait()
        new = self.start_worker()
        self.note(f"worker {victim.label} (pid {victim.proc.pid}) kill -9, replaced by {new.label}")

    def reap(self, replace: bool) -> None:
        """Note workers that ended; start another for each when `replace`."""
        for worker in self.workers:
            code = worker.proc.poll()
            if code is None or worker.killed or worker.reaped:
                continue
            worker.reaped = True
            self.exits[str(code)] += 1
            if code != 0:
                last = worker.err_path.read_text(errors="replace").strip().splitlines()[-1:]
                self.note(f"worker {worker.label} exited {code}: {' '.join(last)[:200]}")
            if replace:
                new = self.start_worker()
                self.note(f"worker {worker.label} ended with outputs missing; started {new.label}")

    # ----- helpers -------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def note(self, text: str) -> None:
        line = f"  t={self.elapsed():6.2f}s done={self.progress():4d}  {text}"
        self.events.append(line)
        print(line, flush=True)

    def progress(self) -> int:
        """Outputs in place."""
        with os.scandir(self.work / "out") as entries:
            return sum(1 for e in entries if e.name.endswith(".txt") and "pipes-tmp" not in e.name)

    def wait(self, seconds: float, replace: bool = True) -> None:
        """Sleep, still replacing workers that end."""
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.reap(replace and self.progress() < self.args.n)
            time.sleep(min(0.05, max(0.0, until - time.monotonic())))

    # ----- the disk-full episode -----------------------------------------------------------

    def disk_full(self) -> None:
        """Fill the state file's tmpfs, watch /health go 503, free it, watch it heal."""
        filler = self.state_dir / "filler"
        fill(filler)
        filled = time.monotonic()
        self.note(f"disk full: filler {filler.stat().st_size / 2**20:.1f} MiB, ENOSPC")
        seen: Counter[str] = Counter()
        unhealthy_at = None
        while time.monotonic() - filled < 15:
            status = self.watch_health(seen)
            if status == 503 and unhealthy_at is None:
                unhealthy_at = time.monotonic()
                self.note(f"/health 503 {unhealthy_at - filled:.2f} s after the disk filled")
            if (
                unhealthy_at is not None
                and time.monotonic() - unhealthy_at > self.args.disk_full_seconds
            ):
                break
        if unhealthy_at is None:
            self.note("/health never answered 503 in 15 s of full disk")
        filler.unlink()
        freed = time.monotonic()
        healthy_at = None
        while time.monotonic() - freed < 30:
            if self.watch_health(seen) == 200:
                healthy_at = time.monotonic()
                break
        after = f"{healthy_at - freed:.2f} s" if healthy_at else "NOT within 30 s"
        self.note(f"space freed; /health 200 again after {after}; statuses seen {dict(seen)}")
        self.health = {
            "unhealthy": unhealthy_at is not None,
            "healthy_after": healthy_at is not None,
            "seen": dict(seen),
        }

    def watch_health(self, seen: Counter[str]) -> int | None:
        """One /health poll during the episode (restarting pipesd if it died), then 0.1 s."""
        assert self.daemon is not None
        if self.daemon.poll() is not None:
            self.note(f"pipesd exited {self.daemon.returncode} during the disk-full episode")
            self.start_daemon()
        status = self.health_status()
        seen[str(status)] += 1
        self.wait(0.1)
        return status

    # ----- the run ---------------------------------------------------------------------------

    def schedule(self) -> list[tuple[int, str]]:
        """(outputs done, event) pairs, in order."""
        n, args = self.args.n, self.args
        events = [
            (int(n * self.rng.uniform(0.03, 0.95)), "daemon") for _ in range(args.daemon_kills)
        ]
        events += [
            (int(n * self.rng.uniform(0.03, 0.9)), "worker") for _ in range(args.worker_kills)
        ]
        if self.disk_episode:
            events.append((int(n * self.rng.uniform(0.35, 0.6)), "disk"))
        return sorted(events)

    def run(self) -> None:
        self.start_daemon()
        for _ in range(self.args.workers):
            self.start_worker()
        actions: dict[str, Callable[[], None]] = {
            "daemon": self.kill_daemon,
            "worker": self.kill_worker,
            "disk": self.disk_full,
        }
        pending = self.schedule()
        print(f"  events at outputs done: {[f'{what}@{at}' for at, what in pending]}", flush=True)
        deadline = time.monotonic() + self.args.timeout
        while self.progress() < self.args.n or pending:
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"timed out after {self.args.timeout} s at {self.progress()} outputs"
                )
            while pending and self.progress() >= pending[0][0]:
                self.wait(self.rng.uniform(0.0, 0.05))  # a random moment, not the poll's edge
                actions[pending.pop(0)[1]]()
            self.wait(0.02)
        self.note("every output is on disk")
        # Workers end once the daemon has every task DONE; one that ended early with tasks
        # still RUNNING on a killed worker is started again until task_list is all DONE.
        while True:
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out after {self.args.timeout} s waiting for workers")
            self.reap(replace=False)
            if not self.live_workers():
                statuses = Counter(t["status"] for t in self.task_list())
                if set(statuses) == {"DONE"}:
                    break
                new = self.start_worker()
                self.note(f"workers all ended with task_list {dict(statuses)}; started {new.label}")
            time.sleep(0.1)
        self.note("every worker has ended")

    def stop(self) -> None:
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait()
        if self.daemon is not None and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(20)
            except subprocess.TimeoutExpired:
                self.daemon.kill()
                self.daemon.wait()


# ----- the checks ------------------------------------------------------------------------------


def verify(chaos: Chaos, wall: float) -> list[str]:
    """Print the figures; return the failed checks."""
    failed: list[str] = []
    check_outputs(chaos.work, chaos.args.n, failed)
    ran = check_runs(chaos, failed)
    check_task_list(chaos, ran, failed)
    logs = [w.err_path.read_text(errors="replace") for w in chaos.workers]
    print(
        f"  pipesd: {chaos.daemon_starts} starts; workers: {len(chaos.workers)} started, "
        f"{len([w for w in chaos.workers if w.killed])} killed, exit codes of the others "
        f"{dict(chaos.exits)}; worker log lines: {sum(t.count('retrying') for t in logs)} "
        f"'retrying', {sum(t.count(' 503') for t in logs)} mentioning 503"
    )
    tracebacks = sum(
        p.read_text(errors="replace").count("Traceback") for p in chaos.work.glob("pipesd-*.log")
    )
    print(f"  pipesd logs: {tracebacks} tracebacks")
    if tracebacks:
        failed.append(f"{tracebacks} tracebacks in pipesd's logs")
    if chaos.disk_episode:
        h = chaos.health
        print(
            f"  disk-full episode: /health went unhealthy: {h.get('unhealthy')}, healthy "
            f"after: {h.get('healthy_after')}, /health answers seen {h.get('seen')}"
        )
        if not h.get("unhealthy") or not h.get("healthy_after"):
            failed.append("disk-full episode: /health did not go 503 and back to 200")
    print(f"  wall time: {wall:.1f} s")
    return failed


def check_outputs(work: Path, n: int, failed: list[str]) -> None:
    """Every output present, with exactly what a full run over complete inputs writes."""
    shape: dict = {}
    exec(SHAPE, shape)  # the same deps() and body() the tasks used
    expected: dict[int, bytes] = {}
    present = right = 0
    for i in range(n):
        inputs = b"".join(expected[j] for j in shape["deps"](i))
        expected[i] = shape["body"](i, inputs).encode()
        path = work / "out" / f"item-{i:05d}.txt"
        if path.exists():
            present += 1
            right += path.read_bytes() == expected[i]
    print(f"  outputs: {present}/{n} present, {right}/{n} with the expected content")
    if present != n or right != n:
        failed.append(f"outputs: {n - present} missing, {present - right} wrong")
    leftovers = [str(p.relative_to(work)) for p in work.rglob("*-pipes-tmp-*")]
    print(f"  temporary files left (*-pipes-tmp-*): {len(leftovers)} {leftovers[:5]}")
    if leftovers:
        failed.append(f"{len(leftovers)} temporary files left")


def check_runs(chaos: Chaos, failed: list[str]) -> set[str]:
    """Attempts per task from runs.log, classified; returns the ids that ran."""
    killed = {w.label for w in chaos.workers if w.killed}
    attempts: dict[str, list[tuple[str, str]]] = {}
    ends: Counter[tuple[str, str]] = Counter()
    for line in (chaos.work / "runs.log").read_text().splitlines():
        task_id, pid, label, what = line.split()
        if what == "start":
            attempts.setdefault(task_id, []).append((pid, label))
        else:
            ends[(task_id, pid)] += 1
    cut_by_kill = cut_other = rerun_after_kill = twice_finished = 0
    unexplained: list[str] = []
    for task_id, tries in attempts.items():
        finished = sum(ends[(task_id, pid)] for pid, _ in tries)
        cut = [label for pid, label in tries if not ends[(task_id, pid)]]
        by_kill = sum(1 for label in cut if label in killed)
        cut_by_kill += by_kill
        cut_other += len(cut) - by_kill
        twice_finished += finished > 1
        # Explained: at most one finished run, and every other attempt died with its killed
        # worker (none finished: the last attempt was cut after its output was in place).
        if finished <= 1 and by_kill == len(cut):
            rerun_after_kill += len(tries) > 1
        else:
            unexplained.append(task_id)
    n = chaos.args.n
    print(
        f"  runs: {sum(len(a) for a in attempts.values())} attempts of {len(attempts)}/{n} "
        f"tasks; {cut_by_kill} cut short by a worker kill, {cut_other} cut short otherwise; "
        f"{twice_finished} tasks finished twice"
    )
    print(
        f"  tasks run more than once: {rerun_after_kill + len(unexplained)} "
        f"({rerun_after_kill} re-run after a worker kill, {len(unexplained)} unexplained "
        f"{unexplained[:3]})"
    )
    if len(attempts) != n:
        failed.append(f"{len(attempts)} tasks ran, expected {n}")
    if unexplained:
        failed.append(f"{len(unexplained)} tasks with unexplained extra runs")
    return set(attempts)


def check_task_list(chaos: Chaos, ran: set[str], failed: list[str]) -> None:
    """The daemon's task_list: every Item and the Root DONE, and the Items are those that ran."""
    tasks = chaos.task_list()
    statuses = Counter(t["status"] for t in tasks)
    families = Counter(t["family"] for t in tasks)
    agree = {t["task_id"] for t in tasks if t["family"] == "Item"} == ran
    print(
        f"  task_list: {len(tasks)} tasks {dict(families)}, statuses {dict(statuses)}; "
        f"Item ids {'match' if agree else 'DIFFER from'} the ids that ran"
    )
    n = chaos.args.n
    if statuses != Counter({"DONE": n + 1}) or families["Item"] != n or not agree:
        failed.append("task_list disagrees with the disk")


def fill(filler: Path) -> None:
    """Write `filler` until its filesystem has no space left (ENOSPC)."""
    with filler.open("wb", buffering=0) as out:  # unbuffered: each write hits the disk
        for chunk in (65536, 4096, 512):
            try:
                while True:
                    out.write(b"\0" * chunk)
            except OSError as err:
                if err.errno != errno.ENOSPC:
                    raise


@contextlib.contextmanager
def state_fs(work: Path, size_mb: int) -> Iterator[tuple[Path, bool]]:
    """(dir for the state file, disk-full episode possible): a small tmpfs when root."""
    where = work / "statefs"
    where.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        print("  note: not root (or no mount(8)): no tmpfs, so no disk-full episode")
        yield where, False
        return
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        print(f"  note: mount failed ({done.stderr.strip()}): no disk-full episode")
        yield where, False
        return
    try:
        yield where, True
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="Item tasks")
    parser.add_argument("--workers", type=int, default=4, help="worker processes at a time")
    parser.add_argument("--daemon-kills", type=int, default=5)
    parser.add_argument("--worker-kills", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--task-ms", type=int, default=20, help="about how long a task runs")
    parser.add_argument("--disk-full-seconds", type=float, default=3.0)
    parser.add_argument("--tmpfs-mb", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and print it")
    args = parser.parse_args()
    if not PIPES.exists() or not daemons.PIPESD.exists():
        raise SystemExit(f"no pipes/pipesd console scripts beside {sys.executable}")

    print(
        f"chaos: n={args.n} Items (+1 Root), {args.workers} workers, {args.daemon_kills} pipesd "
        f"kill -9s, {args.worker_kills} worker kill -9s, seed {args.seed}, ~{args.task_ms} ms/task"
    )
    tmp = tempfile.mkdtemp(prefix="pipes-chaos-")
    work = Path(tmp)
    (work / "chaosflow.py").write_text(FLOW)
    (work / "pipes.cfg").write_text(WORKER_CONFIG)
    (work / "pipesd.cfg").write_text(DAEMON_CONFIG)
    (work / "out").mkdir()
    (work / "runs.log").touch()
    failed: list[str] = []
    try:
        with state_fs(work, args.tmpfs_mb) as (state_dir, episode):
            chaos = Chaos(args, work, state_dir, episode, random.Random(args.seed))
            try:
                chaos.run()
                wall = chaos.elapsed()
                failed = verify(chaos, wall)
            finally:
                chaos.stop()
    finally:
        if args.keep:
            print(f"  kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if failed:
        print("FAILED: " + "; ".join(failed))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
