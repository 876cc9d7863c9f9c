"""Claims (pipes/worker/claims.py): a task is started by the child or taken back, never both."""

import os

import pytest

from pipes.worker.claims import Claims


def test_a_task_taken_back_is_never_started_and_one_started_is_never_taken_back():
    claims = Claims()
    try:
        assert claims.claim(1)
        assert claims.revoke(below=5) == 1  # 1 runs; 2, 3 and 4 are taken back
        assert not claims.claim(2)
        assert not claims.claim(4)
        assert claims.claim(5)  # sent after the take-back
        assert claims.snapshot()[0] == 5
    finally:
        claims.close()


def test_after_stop_no_task_is_started():
    claims = Claims()
    try:
        assert claims.claim(1)
        claims.stop()
        assert not claims.claim(2)
        assert claims.snapshot()[0] == 1
    finally:
        claims.close()


# the child touches only the claims and exits: no lock another thread holds can bite it
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_the_worker_reads_what_a_forked_child_claimed_finished_and_logged():
    claims = Claims()
    try:
        pid = os.fork()
        if pid == 0:  # the child: claim 1 and 2, finish 1, note where 2's log starts
            code = 0 if claims.claim(1) and claims.claim(2) else 1
            claims.finished(1)
            claims.log_start(123)
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert claims.snapshot() == (2, 1, 123)
        assert claims.finished_so_far() == 1
        assert claims.revoke(below=4) == 2
    finally:
        claims.close()
