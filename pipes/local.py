"""Targets on the local disk: LocalFileSystem and LocalTarget.

Every OSError is turned into a TargetError (or a subclass) here, at the boundary.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

from pipes.exceptions import FileAlreadyExists, MissingParentDirectory, NotADirectory, TargetError
from pipes.target import AtomicSink, FileSystem, FileSystemTarget, open_formatted, temp_path_beside

if TYPE_CHECKING:
    from pipes.format import Format

# Fewer paths than this in one directory are stat'ed one by one: listing a directory of a
# million files to answer two paths would cost more than it saves.
_LIST_THRESHOLD = 64  # fewer paths than this in a directory: stat each, do not list it

# link() fails with these where the filesystem has no hard links; then we check, then rename.
_NO_HARD_LINKS = {errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK}


@contextlib.contextmanager
def _os_errors(action: str) -> Iterator[None]:
    """Turn an OSError inside the block into a TargetError saying 'cannot <action>: <reason>'."""
    try:
        yield
    except TargetError:
        raise
    except FileExistsError as err:
        raise FileAlreadyExists(f"cannot {action}: {err.strerror or err}") from err
    except NotADirectoryError as err:
        raise NotADirectory(f"cannot {action}: {err.strerror or err}") from err
    except OSError as err:
        raise TargetError(f"cannot {action}: {err.strerror or err}") from err


def _is_real_dir(path: str) -> bool:
    return os.path.isdir(path) and not os.path.islink(path)


class LocalFileSystem(FileSystem):
    """The local disk. listdir() is recursive and yields file paths, like luigi's."""

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def remove(self, path: str, recursive: bool = True, skip_trash: bool = True) -> None:
        """Remove a file, or a directory tree when ``recursive``; there is no trash locally."""
        with _os_errors(f"remove {path}"):
            if not _is_real_dir(path):
                os.remove(path)
            elif recursive:
                import shutil  # here: import pipes stays small

                shutil.rmtree(path)
            else:
                os.rmdir(path)

    def mkdir(self, path: str, parents: bool = True, raise_if_exists: bool = False) -> None:
        if os.path.isdir(path):
            if raise_if_exists:
                raise FileAlreadyExists(f"cannot create directory {path}: it already exists")
            return
        if os.path.lexists(path):
            raise NotADirectory(f"cannot create directory {path}: a file is in the way")
        with _os_errors(f"create directory {path}"):
            if parents:
                os.makedirs(path, exist_ok=not raise_if_exists)
                return
            try:
                os.mkdir(path)
            except FileNotFoundError as err:
                raise MissingParentDirectory(
                    f"cannot create directory {path}: its parent does not exist "
                    "(pass parents=True to create it)"
                ) from err

    def listdir(self, path: str) -> Iterator[str]:
        if not os.path.isdir(path):
            raise NotADirectory(f"cannot list {path}: not a directory")
        return self._walk_files(path)

    def _walk_files(self, path: str) -> Iterator[str]:
        for directory, _, files in os.walk(path):
            for name in sorted(files):
                yield os.path.join(directory, name)

    def move(self, src: str, dst: str, raise_if_exists: bool = False) -> None:
        """Move, creating ``dst``'s parent directories; works across devices by copying."""
        if raise_if_exists and os.path.lexists(dst):
            raise FileAlreadyExists(f"cannot move {src} to {dst}: destination exists")
        with _os_errors(f"move {src} to {dst}"):
            _make_parent(dst)
            try:
                os.replace(src, dst)
            except OSError as err:
                if err.errno != errno.EXDEV:
                    raise
                _copy_into_place(src, dst)
                self.remove(src)

    def rename_dont_move(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst`` atomically unless ``dst`` exists (FileAlreadyExists).

        Files use link()+unlink(), which cannot overwrite; directories check, then rename.
        """
        with _os_errors(f"move {src} to {dst}"):
            _make_parent(dst)
            if not _is_real_dir(src):
                try:
                    os.link(src, dst, follow_symlinks=False)
                except FileExistsError as err:
                    raise FileAlreadyExists(
                        f"cannot move {src} to {dst}: destination exists"
                    ) from err
                except OSError as err:
                    if err.errno not in _NO_HARD_LINKS:
                        raise
                else:
                    os.unlink(src)
                    return
            if os.path.lexists(dst):
                raise FileAlreadyExists(f"cannot move {src} to {dst}: destination exists")
            os.rename(src, dst)

    def copy(self, src: str, dst: str, raise_if_exists: bool = False) -> None:
        """Copy a file or tree; a file copy lands in one rename, so no half copy is ever seen."""
        if raise_if_exists and os.path.lexists(dst):
            raise FileAlreadyExists(f"cannot copy {src} to {dst}: destination exists")
        with _os_errors(f"copy {src} to {dst}"):
            _make_parent(dst)
            _copy_into_place(src, dst)

    def exists_many(self, paths: Iterable[str]) -> dict[str, bool]:
        """exists() for many paths, answering each directory's paths with one os.scandir().

        Names are matched exactly, so on a case-insensitive disk 'A' and 'a' may differ here.
        """
        result: dict[str, bool] = {}
        by_parent: dict[str, list[str]] = {}
        for path in paths:
            parent, name = os.path.split(os.fspath(path))
            if name in ("", ".", ".."):
                result[path] = os.path.exists(path)
            else:
                by_parent.setdefault(parent or os.curdir, []).append(path)
        for parent, group in by_parent.items():
            result.update(_exists_in(parent, group))
        return result


def _exists_in(parent: str, paths: list[str]) -> dict[str, bool]:
    """exists() for paths that all sit directly in ``parent``, by listing it once."""
    if len(paths) < _LIST_THRESHOLD:
        return {path: os.path.exists(path) for path in paths}
    names: set[str] = set()
    links: set[str] = set()
    try:
        with os.scandir(parent) as entries:
            for entry in entries:
                names.add(entry.name)
                if entry.is_symlink():
                    links.add(entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return dict.fromkeys(paths, False)
    except OSError:
        # e.g. a directory we may traverse but not read: stat each path instead.
        return {path: os.path.exists(path) for path in paths}
    answers: dict[str, bool] = {}
    for path in paths:
        name = os.path.basename(path)
        # exists() follows symlinks, so a dangling link in the listing is not an existing path.
        answers[path] = name in names and (name not in links or os.path.exists(path))
    return answers


def _make_parent(path: str) -> None:
    parent = os.path.dirname(path.rstrip("/"))
    if parent:
        os.makedirs(parent, exist_ok=True)


def _copy_into_place(src: str, dst: str) -> None:
    """Copy ``src`` beside ``dst`` under a temporary name, then rename it over ``dst``."""
    import shutil  # here: import pipes stays small

    temp = temp_path_beside(dst)
    try:
        if _is_real_dir(src):
            shutil.copytree(src, temp, symlinks=True)
        else:
            shutil.copy2(src, temp, follow_symlinks=False)
        os.replace(temp, dst)
    except BaseException:
        if _is_real_dir(temp):
            shutil.rmtree(temp, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.remove(temp)
        raise


_FS = LocalFileSystem()


class _LocalSink(AtomicSink):
    """A temporary file beside the final path, renamed over it with os.replace on publish."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.tmp_path = temp_path_beside(path)
        self._file: IO[bytes] | None = None

    def open(self) -> IO[bytes]:
        with _os_errors(f"write {self.path}"):
            try:
                self._file = open(self.tmp_path, "xb")  # closed by the stream chain
            except FileNotFoundError:  # the parent directory is new: make it only then
                _make_parent(self.path)
                self._file = open(self.tmp_path, "xb")
        return self._file

    def publish(self) -> None:
        with _os_errors(f"move {self.tmp_path} into place at {self.path}"):
            os.replace(self.tmp_path, self.path)

    def discard(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
        with contextlib.suppress(OSError):
            os.remove(self.tmp_path)


class LocalTarget(FileSystemTarget):
    """A file on the local disk. 'r'/'w' give text (UTF-8), 'rb'/'wb' or format=Nop give bytes.

    With is_tmp=True and no path it names a fresh file in the system temp directory, removed
    when the target is garbage collected.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        format: Format | None = None,  # luigi's name, kept for porting
        is_tmp: bool = False,
    ) -> None:
        if path is None:
            if not is_tmp:
                raise TargetError("LocalTarget needs a path, or is_tmp=True for a temporary file")
            import tempfile  # here: import pipes stays small

            path = os.path.join(tempfile.gettempdir(), f"pipes-tmp-{os.urandom(8).hex()}")
        super().__init__(path)
        self.format = format
        self.is_tmp = is_tmp

    @property
    def fs(self) -> LocalFileSystem:
        return _FS

    def open(self, mode: str = "r") -> IO[Any]:
        """Read the file, or write it atomically (temp file beside it, os.replace on close)."""
        return open_formatted(mode, self.format, self._open_raw, self._make_sink)

    def _open_raw(self) -> IO[bytes]:
        return open(self.path, "rb")  # the caller owns the stream

    def _make_sink(self) -> AtomicSink:
        return _LocalSink(self.path)

    def makedirs(self) -> None:
        """Create the parent directory of this target, if it is missing."""
        parent = os.path.dirname(self.path)
        if parent:
            self.fs.mkdir(parent, parents=True, raise_if_exists=False)

    def move(self, new_path: str | os.PathLike[str], raise_if_exists: bool = False) -> None:
        """Move the file to ``new_path``; this target keeps pointing at the old path."""
        self.fs.move(self.path, os.fspath(new_path), raise_if_exists=raise_if_exists)

    def copy(self, new_path: str | os.PathLike[str], raise_if_exists: bool = False) -> None:
        """Copy the file to ``new_path``."""
        self.fs.copy(self.path, os.fspath(new_path), raise_if_exists=raise_if_exists)

    def __del__(self) -> None:
        if getattr(self, "is_tmp", False):
            with contextlib.suppress(Exception):
                if os.path.lexists(self.path):
                    self.fs.remove(self.path)
