"""Luigi's `luigi.local_target` at pipes' path: local files as targets (defined in pipes.local)."""

from pipes.exceptions import FileAlreadyExists as FileAlreadyExists
from pipes.exceptions import MissingParentDirectory as MissingParentDirectory
from pipes.exceptions import NotADirectory as NotADirectory
from pipes.local import LocalFileSystem as LocalFileSystem
from pipes.local import LocalTarget as LocalTarget

__all__ = [
    "LocalTarget",
    "LocalFileSystem",
    "FileAlreadyExists",
    "MissingParentDirectory",
    "NotADirectory",
]
