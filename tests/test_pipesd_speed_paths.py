"""The fast paths between a worker and pipesd: get_work batches that grow, and calls sent ahead."""

from __future__ import annotations

import os
import re
import signal

import pytest

import pipes
from pipes.exceptions import BadRequest
from pipes.worker.fetch import WorkFetcher
from pipes.worker.work_batch import WorkBatch


def test_work_batch_doubles_per_round_trip_while_tasks_finish_fast():
    batch = WorkBatch(least=4, seconds=0.1)
    assert batch.next(0, now=0.0) == 4  # nothing finished yet: no rate
    sizes = [batch.next(batch.size, now=0.001 * i) for i in range(1, 8)]
    assert sizes == [8, 16, 32, 64, 100, 100, 100]


def test_work_batch_takes_what_fits_in_its_seconds_then_least_when_tasks_are_slow():
    batch = WorkBatch(least=4, seconds=0.1)
    batch.next(0, now=0.0)
    assert batch.next(4, now=0.01) == 8  # 4 tasks in 10 ms: 40 fit, but at most double
    assert batch.next(8, now=0.03) == 16  # 8 in 20 ms: 40 fit
    assert batch.next(16, now=0.07) == 32
    assert batch.next(32, now=0.15) == 40  # 32 in 80 ms: 40 fit in 0.1 s
    assert batch.next(40, now=10.15) == 4  # 40 in 10 s: back to the least at once


def test_work_batch_keeps_its_size_on_a_round_trip_that_hands_in_nothing():
    batch = WorkBatch(least=2, seconds=0.1)
    batch.next(0, now=0.0)
    assert batch.next(2, now=0.001) == 4
    assert batch.next(0, now=50.0) == 4  # idle, or tasks still running: no new rate
    assert batch.next(4, now=50.001) == 8  # the rate counts from the last round trip


def test_work_batch_stays_at_least_when_seconds_is_zero():
    batch = WorkBatch(least=3, seconds=0.0)
    batch.next(0, now=0.0)
    assert [batch.next(3, now=0.001 * i) for i in range(1, 5)] == [3, 3, 3, 3]


def test_work_batch_least_is_clamped_to_what_pipesd_takes():
    assert WorkBatch(least=500).size == 100
    assert WorkBatch(least=0).size == 1


def test_work_batch_with_infinite_seconds_grows_by_doubling():
    batch = WorkBatch(least=1, seconds=float("inf"))
    batch.next(0, now=0.0)
    assert [batch.next(1, now=float(i)) for i in range(1, 4)] == [2, 4, 8]


class Trivial(pipes.Task):
    i = pipes.IntParameter()
    root = pipes.Parameter(significant=False)

    def output(self):
        return pipes.LocalTarget(f"{self.root}/{self.i}.txt")

    def run(self):
        with self.output().open("w") as out:
            out.write("x")


class Many(pipes.WrapperTask):
    n = pipes.IntParameter()
    root = pipes.Parameter(significant=False)

    def requires(self):
        return [Trivial(i=i, root=self.root) for i in range(self.n)]


def _get_work_calls(daemon) -> int:
    text = daemon.get("/metrics").body.decode()
    match = re.search(r'^pipes_rpc_seconds_count\{method="get_work"\} (\S+)$', text, re.M)
    assert match, text
    return int(float(match.group(1)))


@pytest.mark.parametrize(("seconds", "most_calls", "least_calls"), [("60", 10, 8), ("0", 80, 75)])
def test_worker_takes_more_tasks_per_get_work_when_batch_seconds_allow(
    pipesd, cfg, tmp_path, seconds, most_calls, least_calls
):
    cfg.set("worker", "get_work_batch", "4")
    cfg.set("worker", "get_work_batch_seconds", seconds)
    out = tmp_path / "out"
    out.mkdir()
    assert pipes.build([Many(n=300, root=str(out))], workers=1, scheduler_url=pipesd.url)
    assert len(list(out.iterdir())) == 300
    # 60 s: 4, 8, 16, 32, 64, 100, 76 tasks, then one call that finds none (and hands in the
    # last reports); 0 s: 300 / 4 calls, then that one.
    assert least_calls <= _get_work_calls(pipesd) <= most_calls
    assert pipesd.call("task_list", status="DONE")["total"] == 301


class Link(pipes.Task):
    i = pipes.IntParameter()
    root = pipes.Parameter(significant=False)

    def requires(self):
        return [Link(i=self.i - 1, root=self.root)] if self.i > 0 else []

    def output(self):
        return pipes.LocalTarget(f"{self.root}/link-{self.i}.txt")

    def run(self):
        with self.output().open("w") as out:
            out.write("x")


def test_worker_on_a_chain_sends_nothing_ahead_and_never_waits(pipesd, cfg, tmp_path):
    # Each link becomes ready only once the one before is reported: a reply sent ahead would
    # come back empty. A worker that took an empty reply as "no work" would ask outlook and
    # sleep wait_interval (an hour here) instead of asking again with its reports.
    cfg.set("worker", "get_work_batch", "1")
    cfg.set("worker", "get_work_batch_seconds", "60")
    cfg.set("worker", "wait_interval", "3600")
    out = tmp_path / "out"
    out.mkdir()
    assert pipes.build([Link(i=29, root=str(out))], workers=1, scheduler_url=pipesd.url)
    assert len(list(out.iterdir())) == 30
    # One call per link and one that finds none: no call was sent ahead for a batch of one.
    assert _get_work_calls(pipesd) == 31


def _add_independent(daemon, worker: str, count: int) -> set[str]:
    remote = daemon.scheduler()
    remote.add_worker(worker, {"host": "h"})
    ids = {f"T_{i}" for i in range(count)}
    remote.add_tasks(worker, [{"task_id": t, "family": "T"} for t in sorted(ids)])
    return ids


def test_fetcher_sends_the_next_get_work_ahead_and_drain_returns_its_tasks(pipesd):
    ids = _add_independent(pipesd, "w", 20)
    remote = pipesd.scheduler()
    fetcher = WorkFetcher(remote, "w", WorkBatch(least=1, seconds=60), lambda r: [r["task_id"]])
    first, unsent = fetcher.fetch([], [])
    assert len(first) == 1 and unsent == []  # a batch of `least`: nothing sent ahead
    done = [{"task_id": first[0]["task_id"], "status": "DONE"}]
    second, unsent = fetcher.fetch([], done)
    assert len(second) == 2 and unsent == []
    # The second batch came full at a size past `least`, so the third was asked for ahead;
    # taking it sends the fourth ahead, with these reports.
    done = [{"task_id": t["task_id"], "status": "DONE"} for t in second]
    third, unsent = fetcher.fetch([], done)
    assert len(third) == 2 and unsent == []
    in_flight = fetcher.drain()
    assert len(in_flight) == 4 and fetcher.drain() == []
    handed = [t["task_id"] for t in first + second + third + in_flight]
    assert len(set(handed)) == 9 and set(handed) <= ids
    running = {t["task_id"] for t in pipesd.call("task_list", status="RUNNING")["tasks"]}
    assert running == {t["task_id"] for t in third + in_flight}


def test_call_sent_ahead_while_pipesd_is_down_is_made_again_when_read(pipesd):
    _add_independent(pipesd, "w", 3)
    remote = pipesd.scheduler()
    pipesd.stop()
    pending = remote.begin_call("get_work", worker="w", running=[], max_tasks=3)
    pipesd.start()  # the same state file: the worker and its tasks are back
    reply = pending.result()
    assert sorted(t["task_id"] for t in reply["tasks"]) == ["T_0", "T_1", "T_2"]


def test_call_sent_ahead_reads_a_400_as_bad_request(pipesd):
    pending = pipesd.scheduler().begin_call("get_work", worker="w", max_tasks=0)
    with pytest.raises(BadRequest, match="max_tasks"):
        pending.result()


class Stopper(Trivial):
    def run(self):
        super().run()
        if len(os.listdir(self.root)) == 150:  # the run is well into batches sent ahead
            os.kill(os.getpid(), signal.SIGUSR1)  # runs inline: the worker takes the signal


class ManyStoppers(pipes.WrapperTask):
    root = pipes.Parameter(significant=False)

    def requires(self):
        return [Stopper(i=i, root=self.root) for i in range(400)]


def test_sigusr1_hands_back_the_tasks_of_a_get_work_sent_ahead(pipesd, cfg, tmp_path):
    cfg.set("worker", "get_work_batch_seconds", "60")  # batches of 4, 8, 16, 32, 64, 100
    out = tmp_path / "out"
    out.mkdir()
    pipes.build([ManyStoppers(root=str(out))], workers=1, scheduler_url=pipesd.url)
    ran = {p.stem for p in out.iterdir()}
    assert 150 <= len(ran) < 400
    statuses = {}
    for status in ("DONE", "RUNNING", "FAILED", "PENDING"):
        listing = pipesd.call("task_list", status=status, family="Stopper", limit=1000)
        statuses[status] = {t["params"]["i"] for t in listing["tasks"]}
    # Nothing was left RUNNING on the stopped worker (its end would fail it): the queue and
    # the reply in flight were handed back, and every task that ran was reported.
    assert statuses["RUNNING"] == statuses["FAILED"] == set()
    assert statuses["DONE"] == ran
    assert len(statuses["PENDING"]) == 400 - len(ran)
