"""The in-process log tail: output still reaches the terminal, and its end is kept."""

import logging
import sys

from pipes.worker.capture import Tail, captured_tail, last_lines


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
