"""MockTarget and MockFileSystem: the in-memory store users test their tasks with."""

from __future__ import annotations

import pytest

from pipes.exceptions import FileAlreadyExists, NotADirectory, TargetError
from pipes.format import Gzip, Nop
from pipes.mock import MockFileSystem, MockTarget


def read(target, mode="r"):
    with target.open(mode) as f:
        return f.read()


class Boom(Exception):
    pass


@pytest.fixture(autouse=True)
def clean_store():
    MockFileSystem().clear()
    yield
    MockFileSystem().clear()


def test_mock_target_round_trips_text_when_closed_cleanly():
    target = MockTarget("out/a.txt")
    with target.open("w") as f:
        f.write("héllo")
    assert target.exists()
    assert read(target) == "héllo"
    assert MockFileSystem().get_all_data() == {"out/a.txt": "héllo".encode()}


def test_mock_target_stores_nothing_when_block_raises():
    target = MockTarget("out/a.txt")
    with pytest.raises(Boom), target.open("w") as f:
        f.write("partial")
        raise Boom
    assert not target.exists()
    assert MockFileSystem().get_all_data() == {}


def test_mock_target_hides_data_until_close():
    target = MockTarget("a")
    f = target.open("w")
    f.write("x")
    assert not target.exists()
    f.close()
    assert target.exists()


def test_mock_target_keeps_old_data_when_rewrite_fails():
    target = MockTarget("a")
    with target.open("w") as f:
        f.write("old")
    with pytest.raises(Boom), target.open("w") as f:
        f.write("new")
        raise Boom
    assert read(target) == "old"


def test_mock_target_round_trips_bytes_through_gzip_and_nop():
    with MockTarget("g", format=Gzip).open("wb") as f:
        f.write(b"\x00" * 10)
    assert read(MockTarget("g", format=Gzip), "rb") == b"\x00" * 10
    assert MockFileSystem().get_all_data()["g"][:2] == b"\x1f\x8b"
    with MockTarget("n", format=Nop).open("w") as f:
        f.write(b"raw")
    assert read(MockTarget("n", format=Nop)) == b"raw"


def test_mock_target_open_r_raises_file_not_found_when_missing():
    with pytest.raises(FileNotFoundError):
        MockTarget("missing").open("r")


def test_mock_data_is_shared_between_filesystem_instances():
    with MockTarget("shared").open("w") as f:
        f.write("x")
    assert MockFileSystem().exists("shared")
    MockFileSystem().clear()
    assert not MockTarget("shared").exists()


def test_mock_target_mirrors_writes_on_stderr_when_asked(capsys):
    with MockTarget("loud", mirror_on_stderr=True).open("w") as f:
        f.write("hello\n")
    assert "loud: hello" in capsys.readouterr().err


def test_mock_temporary_path_publishes_on_success_and_drops_on_failure():
    fs = MockFileSystem()
    target = MockTarget("dir/out")
    with pytest.raises(Boom), target.temporary_path() as temp:
        with MockTarget(temp).open("w") as f:
            f.write("partial")
        raise Boom
    assert fs.get_all_data() == {}
    with target.temporary_path() as temp:
        assert temp.startswith("dir/out-pipes-tmp-")
        with MockTarget(temp).open("w") as f:
            f.write("done")
    assert fs.get_all_data() == {"dir/out": b"done"}


def test_mock_is_tmp_target_gets_a_name():
    target = MockTarget(is_tmp=True)
    assert target.path.startswith("pipes-mock-tmp-")
    with pytest.raises(TargetError):
        MockTarget()


def test_mock_move_raises_file_already_exists_when_destination_exists():
    fs = MockFileSystem()
    for name in ("a", "b"):
        with MockTarget(name).open("w") as f:
            f.write(name)
    with pytest.raises(FileAlreadyExists):
        MockTarget("a").move("b", raise_if_exists=True)
    MockTarget("a").move("b")
    assert fs.get_all_data() == {"b": b"a"}


def test_mock_move_copy_remove_work_on_directories():
    fs = MockFileSystem()
    for name in ("d/x", "d/sub/y", "dd/z"):
        with MockTarget(name).open("w") as f:
            f.write(name)
    assert fs.isdir("d")
    assert list(fs.listdir("d")) == ["d/sub/y", "d/x"]
    fs.copy("d", "e")
    fs.move("d", "f")
    assert sorted(fs.get_all_data()) == ["dd/z", "e/sub/y", "e/x", "f/sub/y", "f/x"]
    with pytest.raises(TargetError):
        fs.remove("e", recursive=False)
    fs.remove("e")
    assert sorted(fs.get_all_data()) == ["dd/z", "f/sub/y", "f/x"]


def test_mock_remove_and_move_raise_target_error_when_missing():
    fs = MockFileSystem()
    with pytest.raises(TargetError):
        fs.remove("nope")
    with pytest.raises(TargetError):
        fs.move("nope", "there")


def test_mock_mkdir_raises_when_file_in_the_way_or_exists():
    fs = MockFileSystem()
    with MockTarget("d/f").open("w") as f:
        f.write("x")
    fs.mkdir("new")
    with pytest.raises(NotADirectory):
        fs.mkdir("d/f")
    with pytest.raises(FileAlreadyExists):
        fs.mkdir("d", raise_if_exists=True)


def test_mock_exists_many_agrees_with_exists():
    fs = MockFileSystem()
    for name in ("a/b/c", "a/x", "top"):
        with MockTarget(name).open("w") as f:
            f.write("1")
    paths = ["a", "a/", "a/b", "a/b/c", "a/b/d", "top", "to", "missing", "a/x"]
    assert fs.exists_many(paths) == {p: fs.exists(p) for p in paths}
    assert fs.exists_many(paths)["a/b"] is True
    assert fs.exists_many(paths)["to"] is False


def test_rename_dont_move_refuses_existing_destination():
    fs = MockFileSystem()
    for name in ("a", "b"):
        with MockTarget(name).open("w") as f:
            f.write(name)
    with pytest.raises(FileAlreadyExists):
        fs.rename_dont_move("a", "b")
    assert fs.get_all_data() == {"a": b"a", "b": b"b"}
