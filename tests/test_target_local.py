"""LocalTarget and LocalFileSystem against a real temporary directory."""

from __future__ import annotations

import gc
import os
import pathlib
import subprocess
import sys
import tempfile

import pytest

from pipes.exceptions import (
    FileAlreadyExists,
    MissingParentDirectory,
    NotADirectory,
    TargetError,
)
from pipes.format import Gzip, Nop
from pipes.local import LocalFileSystem, LocalTarget
from pipes.target import TEMP_MARKER, FileSystemTarget, Target, targets_exist, temp_path_beside


def read(target, mode="r"):
    with target.open(mode) as f:
        return f.read()


class Boom(Exception):
    pass


@pytest.fixture
def fs() -> LocalFileSystem:
    return LocalFileSystem()


def write(path: pathlib.Path, text: str = "x") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# --- atomic writes -----------------------------------------------------------------------


def test_open_w_writes_text_and_creates_parents_when_closed_cleanly(tmp_path):
    target = LocalTarget(tmp_path / "a" / "b" / "out.txt")
    with target.open("w") as f:
        f.write("héllo\n")
    assert target.exists()
    assert (tmp_path / "a" / "b" / "out.txt").read_bytes() == "héllo\n".encode()
    assert os.listdir(tmp_path / "a" / "b") == ["out.txt"]


def test_open_w_leaves_no_file_and_no_temp_when_block_raises(tmp_path):
    target = LocalTarget(tmp_path / "out.txt")
    with pytest.raises(Boom), target.open("w") as f:
        f.write("partial")
        f.flush()
        raise Boom
    assert not target.exists()
    assert os.listdir(tmp_path) == []


def test_open_w_keeps_old_content_when_rewrite_fails(tmp_path):
    target = LocalTarget(tmp_path / "out.txt")
    with target.open("w") as f:
        f.write("old")
    with pytest.raises(Boom), target.open("w") as f:
        f.write("new")
        raise Boom
    assert read(target) == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_open_w_hides_data_until_close_when_written_without_with(tmp_path):
    target = LocalTarget(tmp_path / "out.txt")
    f = target.open("w")
    f.write("data")
    f.flush()
    assert not target.exists()
    f.close()
    assert read(target) == "data"


def test_open_w_discards_temp_when_stream_is_dropped_unclosed(tmp_path):
    target = LocalTarget(tmp_path / "out.txt")
    f = target.open("w")
    f.write("data")
    del f
    gc.collect()
    assert os.listdir(tmp_path) == []


def test_open_w_discards_temp_when_encoding_fails_at_close(tmp_path):
    from pipes.format import TextFormat

    target = LocalTarget(tmp_path / "out.txt", format=TextFormat("ascii"))
    with pytest.raises(UnicodeEncodeError), target.open("w") as f:
        f.write("é")
    assert os.listdir(tmp_path) == []


def test_open_wb_leaves_nothing_when_gzip_block_raises(tmp_path):
    target = LocalTarget(tmp_path / "out.gz", format=Gzip)
    with pytest.raises(Boom), target.open("wb") as f:
        f.write(b"x" * 100_000)
        raise Boom
    assert os.listdir(tmp_path) == []


def test_open_w_raises_target_error_and_cleans_up_when_path_is_a_directory(tmp_path):
    (tmp_path / "d").mkdir()
    target = LocalTarget(tmp_path / "d")
    with pytest.raises(TargetError), target.open("w") as f:
        f.write("x")
    assert os.listdir(tmp_path) == ["d"]


def test_open_rejects_unsupported_mode(tmp_path):
    with pytest.raises(TargetError, match="unsupported mode 'a'"):
        LocalTarget(tmp_path / "x").open("a")


def test_open_r_raises_file_not_found_when_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        LocalTarget(tmp_path / "missing").open("r")


def test_open_r_and_w_round_trip_bytes_when_format_is_nop(tmp_path):
    target = LocalTarget(tmp_path / "blob", format=Nop)
    with target.open("w") as f:
        f.write(b"\x00\xff")
    with target.open("r") as f:
        assert f.read() == b"\x00\xff"


def test_open_w_writes_gzip_text_when_format_is_gzip(tmp_path):
    target = LocalTarget(tmp_path / "x.gz", format=Gzip)
    with target.open("w") as f:
        f.write("line 1\nline 2\n")
    assert (tmp_path / "x.gz").read_bytes()[:2] == b"\x1f\x8b"
    with target.open("r") as f:
        assert list(f) == ["line 1\n", "line 2\n"]


# --- temporary_path ----------------------------------------------------------------------


def test_temporary_names_never_repeat_and_a_forked_child_draws_its_own_prefix():
    names = {temp_path_beside("out.csv") for _ in range(1000)}
    assert len(names) == 1000
    # the fork happens in a fresh, single-threaded interpreter (pytest's may run threads)
    code = (
        "import os\n"
        "from pipes.target import temp_path_beside\n"
        "read_end, write_end = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.write(write_end, temp_path_beside('out.csv').encode())\n"
        "    os._exit(0)\n"
        "os.close(write_end)\n"
        "os.wait()\n"
        "print(os.read(read_end, 1000).decode(), temp_path_beside('out.csv'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    child_name, parent_name = done.stdout.split()

    def prefix(name: str) -> str:
        return name.split(TEMP_MARKER)[1].rsplit("-", 1)[0]

    assert prefix(child_name) != prefix(parent_name)
    assert child_name != parent_name  # the same counter value: only the prefix tells them apart


def test_temporary_path_moves_into_place_when_block_succeeds(tmp_path):
    target = LocalTarget(tmp_path / "sub" / "out.csv")
    with target.temporary_path() as temp:
        assert os.path.dirname(temp) == str(tmp_path / "sub")
        assert os.path.basename(temp).startswith("out.csv-pipes-tmp-")
        pathlib.Path(temp).write_text("a,b\n")
        assert not target.exists()
    assert read(target) == "a,b\n"
    assert os.listdir(tmp_path / "sub") == ["out.csv"]


def test_temporary_path_removes_temp_and_reraises_when_block_raises(tmp_path):
    target = LocalTarget(tmp_path / "out.csv")
    with pytest.raises(Boom), target.temporary_path() as temp:
        pathlib.Path(temp).write_text("partial")
        raise Boom
    assert os.listdir(tmp_path) == []


def test_temporary_path_removes_temp_directory_when_block_raises(tmp_path):
    target = LocalTarget(tmp_path / "parts")
    with pytest.raises(Boom), target.temporary_path() as temp:
        os.makedirs(os.path.join(temp, "deep"))
        pathlib.Path(temp, "deep", "part-0").write_text("x")
        raise Boom
    assert os.listdir(tmp_path) == []


def test_temporary_path_refuses_to_overwrite_when_target_exists(tmp_path):
    write(tmp_path / "out.csv", "old")
    target = LocalTarget(tmp_path / "out.csv")
    with pytest.raises(FileAlreadyExists), target.temporary_path() as temp:
        pathlib.Path(temp).write_text("new")
    assert (tmp_path / "out.csv").read_text() == "old"


def test_temporary_paths_are_unique_when_called_twice(tmp_path):
    target = LocalTarget(tmp_path / "out")
    with pytest.raises(Boom), target.temporary_path() as first:
        with pytest.raises(Boom), target.temporary_path() as second:
            assert first != second
            raise Boom
        raise Boom


def test_temporary_path_raises_target_error_when_nothing_was_written(tmp_path):
    target = LocalTarget(tmp_path / "out")
    with pytest.raises(TargetError, match="nothing was written"), target.temporary_path():
        pass
    assert os.listdir(tmp_path) == []


# --- identity and construction -----------------------------------------------------------


def test_local_target_accepts_pathlib_and_stores_str(tmp_path):
    target = LocalTarget(tmp_path / "x")
    assert target.path == str(tmp_path / "x")
    assert isinstance(target.path, str)
    assert str(target) == target.path
    assert repr(target) == f"LocalTarget({target.path!r})"


def test_local_targets_are_equal_and_hash_alike_when_path_matches(tmp_path):
    a = LocalTarget(tmp_path / "x")
    b = LocalTarget(str(tmp_path / "x"), format=Gzip)
    assert a == b
    assert hash(a) == hash(b)
    assert a != LocalTarget(tmp_path / "y")
    assert len({a, b}) == 1


def test_local_target_is_a_filesystem_target(tmp_path):
    target = LocalTarget(tmp_path / "x")
    assert isinstance(target, FileSystemTarget)
    assert isinstance(target, Target)


def test_local_target_requires_path_when_not_tmp():
    with pytest.raises(TargetError, match="needs a path"):
        LocalTarget()


def test_local_target_is_tmp_makes_temp_path_and_removes_file_when_collected():
    target = LocalTarget(is_tmp=True)
    path = target.path
    assert os.path.dirname(path) == tempfile.gettempdir()
    with target.open("w") as f:
        f.write("scratch")
    assert os.path.exists(path)
    del target
    gc.collect()
    assert not os.path.exists(path)


# --- exists_many -------------------------------------------------------------------------


def test_exists_many_answers_mixed_paths_in_many_directories(tmp_path, fs):
    present = [tmp_path / d / f"p{i}" for d in ("a", "b") for i in range(6)]
    for path in present:
        write(path)
    (tmp_path / "a" / "subdir").mkdir()
    missing = [tmp_path / d / f"m{i}" for d in ("a", "b", "nodir") for i in range(6)]
    extras = [
        tmp_path / "a" / "subdir",  # a directory counts as existing
        tmp_path / "a" / "p0" / "under-a-file",  # parent is a file
        tmp_path / "a",  # group of one: stat'ed
    ]
    paths = [str(p) for p in present + missing + extras]
    answers = fs.exists_many(paths)
    assert answers == {p: os.path.exists(p) for p in paths}
    assert sum(answers.values()) == len(present) + 2


def test_exists_many_treats_dangling_symlink_as_missing(tmp_path, fs):
    for i in range(5):
        write(tmp_path / f"f{i}")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    os.symlink(tmp_path / "f0", tmp_path / "good-link")
    paths = [str(tmp_path / n) for n in ("f0", "f1", "f2", "f3", "dangling", "good-link")]
    answers = fs.exists_many(paths)
    assert answers[str(tmp_path / "dangling")] is False
    assert answers[str(tmp_path / "good-link")] is True
    assert answers[str(tmp_path / "f3")] is True


def test_exists_many_handles_relative_paths_and_trailing_slashes(tmp_path, fs, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for i in range(5):
        write(tmp_path / f"r{i}")
    (tmp_path / "dir").mkdir()
    paths = [f"r{i}" for i in range(6)] + ["dir/", "missing/", ".", "./r0"]
    assert fs.exists_many(paths) == {p: os.path.exists(p) for p in paths}


def test_exists_many_lists_directory_once_when_given_200_paths(tmp_path, fs, monkeypatch):
    for i in range(100):
        write(tmp_path / f"part-{i:05d}")
    paths = [str(tmp_path / f"part-{i:05d}") for i in range(200)]
    calls = []
    real_scandir = os.scandir

    def counting_scandir(path="."):
        calls.append(path)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", counting_scandir)
    answers = fs.exists_many(paths)
    assert calls == [str(tmp_path)]
    assert sum(answers.values()) == 100
    assert all(answers[p] for p in paths[:100])


def test_targets_exist_batches_local_targets_and_honours_exists_override(tmp_path, monkeypatch):
    class FlagTarget(LocalTarget):
        def exists(self) -> bool:
            return os.path.exists(self.path + ".flag")

    for i in range(10):
        write(tmp_path / f"t{i}")
    write(tmp_path / "t0.flag")
    targets = [LocalTarget(tmp_path / f"t{i}") for i in range(100)]
    flagged = [FlagTarget(tmp_path / "t0"), FlagTarget(tmp_path / "t1")]
    calls = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda p=".": calls.append(p) or real_scandir(p))
    answers = targets_exist(targets + flagged)
    assert len(calls) == 1
    assert [answers[t] for t in targets] == [i < 10 for i in range(100)]
    assert [answers[t] for t in flagged] == [True, False]


# --- filesystem operations ---------------------------------------------------------------


def test_move_creates_parent_dirs_and_moves_file(tmp_path, fs):
    write(tmp_path / "src", "data")
    fs.move(str(tmp_path / "src"), str(tmp_path / "new" / "dir" / "dst"))
    assert not (tmp_path / "src").exists()
    assert (tmp_path / "new" / "dir" / "dst").read_text() == "data"


def test_move_raises_file_already_exists_when_destination_exists_and_raise_if_exists(tmp_path, fs):
    write(tmp_path / "src", "new")
    write(tmp_path / "dst", "old")
    with pytest.raises(FileAlreadyExists):
        fs.move(str(tmp_path / "src"), str(tmp_path / "dst"), raise_if_exists=True)
    assert (tmp_path / "dst").read_text() == "old"
    assert (tmp_path / "src").exists()


def test_move_overwrites_when_destination_exists_by_default(tmp_path, fs):
    write(tmp_path / "src", "new")
    write(tmp_path / "dst", "old")
    fs.move(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert (tmp_path / "dst").read_text() == "new"


def test_move_raises_target_error_when_source_missing(tmp_path, fs):
    with pytest.raises(TargetError, match="cannot move"):
        fs.move(str(tmp_path / "nope"), str(tmp_path / "dst"))


def test_local_target_move_and_copy_leave_expected_files(tmp_path):
    target = LocalTarget(tmp_path / "a")
    with target.open("w") as f:
        f.write("x")
    target.copy(tmp_path / "b")
    target.move(tmp_path / "c")
    assert sorted(os.listdir(tmp_path)) == ["b", "c"]
    assert (tmp_path / "b").read_text() == "x"
    with pytest.raises(FileAlreadyExists):
        LocalTarget(tmp_path / "b").move(tmp_path / "c", raise_if_exists=True)


def test_rename_dont_move_refuses_existing_destination(tmp_path, fs):
    write(tmp_path / "src", "new")
    write(tmp_path / "dst", "old")
    with pytest.raises(FileAlreadyExists):
        fs.rename_dont_move(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert (tmp_path / "dst").read_text() == "old"
    assert (tmp_path / "src").read_text() == "new"


def test_rename_dont_move_moves_directory_when_destination_free(tmp_path, fs):
    write(tmp_path / "srcdir" / "f", "x")
    fs.rename_dont_move(str(tmp_path / "srcdir"), str(tmp_path / "dstdir"))
    assert (tmp_path / "dstdir" / "f").read_text() == "x"
    assert not (tmp_path / "srcdir").exists()


def test_copy_copies_file_and_tree(tmp_path, fs):
    write(tmp_path / "f", "data")
    write(tmp_path / "tree" / "a" / "b", "leaf")
    fs.copy(str(tmp_path / "f"), str(tmp_path / "out" / "g"))
    fs.copy(str(tmp_path / "tree"), str(tmp_path / "tree2"))
    assert (tmp_path / "out" / "g").read_text() == "data"
    assert (tmp_path / "tree2" / "a" / "b").read_text() == "leaf"
    assert (tmp_path / "f").exists()


def test_copy_raises_when_destination_exists_and_raise_if_exists(tmp_path, fs):
    write(tmp_path / "f", "new")
    write(tmp_path / "g", "old")
    with pytest.raises(FileAlreadyExists):
        fs.copy(str(tmp_path / "f"), str(tmp_path / "g"), raise_if_exists=True)
    assert (tmp_path / "g").read_text() == "old"


def test_copy_raises_target_error_when_source_missing(tmp_path, fs):
    with pytest.raises(TargetError):
        fs.copy(str(tmp_path / "nope"), str(tmp_path / "g"))
    assert os.listdir(tmp_path) == []


def test_remove_deletes_file_and_tree(tmp_path, fs):
    write(tmp_path / "f")
    write(tmp_path / "d" / "e" / "f")
    fs.remove(str(tmp_path / "f"))
    fs.remove(str(tmp_path / "d"))
    assert os.listdir(tmp_path) == []


def test_remove_raises_target_error_when_missing(tmp_path, fs):
    with pytest.raises(TargetError, match="cannot remove"):
        fs.remove(str(tmp_path / "nope"))


def test_remove_raises_target_error_when_dir_not_empty_and_not_recursive(tmp_path, fs):
    write(tmp_path / "d" / "f")
    with pytest.raises(TargetError):
        fs.remove(str(tmp_path / "d"), recursive=False)
    assert (tmp_path / "d" / "f").exists()


def test_local_target_remove_deletes_file(tmp_path):
    write(tmp_path / "f")
    target = LocalTarget(tmp_path / "f")
    target.remove()
    assert not target.exists()


def test_mkdir_creates_parents_and_is_idempotent(tmp_path, fs):
    path = str(tmp_path / "a" / "b" / "c")
    fs.mkdir(path)
    fs.mkdir(path)
    assert fs.isdir(path)


def test_mkdir_raises_file_already_exists_when_raise_if_exists(tmp_path, fs):
    (tmp_path / "d").mkdir()
    with pytest.raises(FileAlreadyExists):
        fs.mkdir(str(tmp_path / "d"), raise_if_exists=True)


def test_mkdir_raises_missing_parent_when_parents_false(tmp_path, fs):
    with pytest.raises(MissingParentDirectory):
        fs.mkdir(str(tmp_path / "no" / "child"), parents=False)


def test_mkdir_raises_not_a_directory_when_file_in_the_way(tmp_path, fs):
    write(tmp_path / "f")
    with pytest.raises(NotADirectory):
        fs.mkdir(str(tmp_path / "f"))
    with pytest.raises(NotADirectory):
        fs.mkdir(str(tmp_path / "f" / "sub"))


def test_listdir_yields_files_recursively(tmp_path, fs):
    write(tmp_path / "a")
    write(tmp_path / "d" / "b")
    assert sorted(fs.listdir(str(tmp_path))) == [str(tmp_path / "a"), str(tmp_path / "d" / "b")]


def test_listdir_raises_not_a_directory_when_path_is_file(tmp_path, fs):
    write(tmp_path / "f")
    with pytest.raises(NotADirectory):
        fs.listdir(str(tmp_path / "f"))


def test_makedirs_creates_parent_directory(tmp_path):
    target = LocalTarget(tmp_path / "x" / "y" / "file")
    target.makedirs()
    assert (tmp_path / "x" / "y").is_dir()
    assert not target.exists()
