"""The in-process log tail: output still reaches the terminal, and its end is kept."""

import logging
import sys

import pipes
from pipes.worker.capture import Tail, TailCapture, captured_tail, last_lines


def test_tail_keeps_the_end_from_a_line_start():
    tail = Tail(limit=20)
    for i in range(100):
        tail.add(f"line {i}\n")
    assert tail.text() == "line 98\nline 99\n"
    assert Tail().text() is None


def test_last_lines_cuts_at_a_line_start_only_when_there_is_one():
    assert last_lines("abcdef", 3) == "def"
    assert last_lines("ab\ncdef", 5) == "cdef"
    assert last_lines("", 5) is None


def test_captured_tail_tees_print_and_logging(capsys):
    logger = logging.getLogger("test_capture.task")
    logger.setLevel(logging.INFO)
    with captured_tail() as tail:
        print("to stdout")
        print("to stderr", file=sys.stderr)
        logger.info("a log record <b>")
    assert sys.stdout is not None and not hasattr(sys.stdout, "_tail")  # restored
    out, err = capsys.readouterr()
    assert out == "to stdout\n" and "to stderr\n" in err
    text = tail.text()
    assert "to stdout\nto stderr\n" in text
    assert "INFO test_capture.task: a log record <b>" in text
    assert not any(type(h).__name__ == "_TailHandler" for h in logging.root.handlers)


def test_one_capture_keeps_each_task_its_own_tail_and_nothing_between_tasks(capsys):
    capture = TailCapture()
    stdout = sys.stdout
    first = capture.start()
    print("task one")
    capture.stop()
    print("the worker, between tasks")
    logging.getLogger("test_capture.worker").warning("a worker record")
    second = capture.start()
    print("task two")
    capture.stop()
    capture.uninstall()
    assert first.text() == "task one\n"
    assert second.text() == "task two\n"
    assert sys.stdout is stdout
    assert not any(type(h).__name__ == "_TailHandler" for h in logging.root.handlers)
    assert "the worker, between tasks" in capsys.readouterr().out  # still written through


def test_a_build_of_inline_tasks_gives_the_streams_and_handlers_back(tmp_path):
    class Printer(pipes.Task):
        n = pipes.IntParameter()

        def output(self):
            return pipes.LocalTarget(tmp_path / f"{self.n}.txt")

        def run(self):
            print(f"printing {self.n}")
            with self.output().open("w") as out:
                out.write("x")

    stdout, stderr, handlers = sys.stdout, sys.stderr, list(logging.root.handlers)
    assert pipes.build([Printer(n=1), Printer(n=2)], local_scheduler=True)
    assert (sys.stdout, sys.stderr) == (stdout, stderr)
    assert logging.root.handlers == handlers
