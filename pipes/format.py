"""Stream formats: how the stream a task reads or writes maps onto the bytes a target stores.

A chain runs from the user to storage: ``Text >> Gzip`` encodes text to UTF-8, then gzips it.
Every layer closes the layer below it, so closing the outermost stream closes the whole chain.
"""

from __future__ import annotations

import bz2
import gzip
import io
from abc import ABC, abstractmethod
from typing import IO, Any, Literal

from pipes.exceptions import TargetError

type Kind = Literal["text", "bytes"]


class Format(ABC):
    """One layer between a user-side stream (``input`` kind) and a storage-side one (``output``)."""

    input: Kind = "bytes"
    output: Kind = "bytes"
    # True when the user side stays bytes even for the text modes 'r' and 'w' (Nop).
    raw: bool = False

    @abstractmethod
    def pipe_reader(self, input_stream: IO[bytes]) -> IO[Any]:
        """Wrap a storage-side stream opened for reading; closing the result closes it."""

    @abstractmethod
    def pipe_writer(self, output_stream: IO[bytes]) -> IO[Any]:
        """Wrap a storage-side stream opened for writing; closing the result closes it."""

    def binary(self) -> Format:
        """This format with its text layer removed, used when a target is opened with 'rb'/'wb'."""
        return self

    def __rshift__(self, other: Format) -> ChainFormat:
        return ChainFormat(self, other)

    def __repr__(self) -> str:
        return type(self).__name__


class NopFormat(Format):
    """Raw bytes, unchanged; asks for a bytes stream even when the mode is 'r' or 'w'."""

    raw = True

    def pipe_reader(self, input_stream: IO[bytes]) -> IO[Any]:
        return input_stream

    def pipe_writer(self, output_stream: IO[bytes]) -> IO[Any]:
        return output_stream

    def __repr__(self) -> str:
        return "Nop"


class TextFormat(Format):
    """Text encoded with ``encoding`` (UTF-8 by default, never the locale's)."""

    input = "text"

    def __init__(
        self, encoding: str = "utf-8", errors: str = "strict", newline: str | None = None
    ) -> None:
        self.encoding = encoding
        self.errors = errors
        self.newline = newline

    def pipe_reader(self, input_stream: IO[bytes]) -> IO[Any]:
        return io.TextIOWrapper(
            input_stream,
            encoding=self.encoding,
            errors=self.errors,
            newline=self.newline,
        )

    def pipe_writer(self, output_stream: IO[bytes]) -> IO[Any]:
        return io.TextIOWrapper(
            output_stream,
            encoding=self.encoding,
            errors=self.errors,
            newline=self.newline,
        )

    def binary(self) -> Format:
        return Nop

    def __repr__(self) -> str:
        return f"TextFormat({self.encoding!r})"


class _OwningGzipFile(gzip.GzipFile):
    """A GzipFile that also closes the stream it wraps (the stdlib one leaves it open)."""

    def __init__(self, inner: IO[bytes], mode: str, level: int) -> None:
        self._inner = inner
        # An empty name and mtime 0 keep the temp file's name and the clock out of the header,
        # so the same content always gives the same bytes.
        super().__init__(filename="", mode=mode, compresslevel=level, fileobj=inner, mtime=0)

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._inner.close()


class _OwningBZ2File(bz2.BZ2File):
    """A BZ2File that also closes the stream it wraps (the stdlib one leaves it open)."""

    def __init__(self, inner: IO[bytes], mode: str, level: int) -> None:
        self._inner = inner
        super().__init__(inner, mode=mode, compresslevel=level)  # type: ignore[call-overload]

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._inner.close()


class GzipFormat(Format):
    """Gzip compression of bytes; output is reproducible (no name or time in the header)."""

    def __init__(self, compression_level: int = 9) -> None:
        self.compression_level = compression_level

    def pipe_reader(self, input_stream: IO[bytes]) -> IO[Any]:
        # a GzipFile is an io.BufferedIOBase, which typeshed does not count as typing.IO
        return _OwningGzipFile(input_stream, "rb", self.compression_level)  # type: ignore[return-value]

    def pipe_writer(self, output_stream: IO[bytes]) -> IO[Any]:
        return _OwningGzipFile(output_stream, "wb", self.compression_level)  # type: ignore[return-value]

    def __repr__(self) -> str:
        return "Gzip"


class Bzip2Format(Format):
    """Bzip2 compression of bytes."""

    def __init__(self, compression_level: int = 9) -> None:
        self.compression_level = compression_level

    def pipe_reader(self, input_stream: IO[bytes]) -> IO[Any]:
        return _OwningBZ2File(input_stream, "rb", self.compression_level)

    def pipe_writer(self, output_stream: IO[bytes]) -> IO[Any]:
        return _OwningBZ2File(output_stream, "wb", self.compression_level)

    def __repr__(self) -> str:
        return "Bzip2"


class ChainFormat(Format):
    """Formats applied in order from the user side to storage; adjacent kinds must match."""

    formats: tuple[Format, ...]

    def __init__(self, *formats: Format) -> None:
        flat: list[Format] = []
        for fmt in formats:
            flat.extend(fmt.formats if isinstance(fmt, ChainFormat) else [fmt])
        if not flat:
            raise TargetError("a ChainFormat needs at least one format")
        for upper, lower in zip(flat, flat[1:], strict=False):
            if upper.output != lower.input:
                raise TargetError(
                    f"cannot chain {upper!r} >> {lower!r}: {upper!r} gives {upper.output} "
                    f"but {lower!r} takes {lower.input}"
                )
        self.formats = tuple(flat)
        self.input = flat[0].input
        self.output = flat[-1].output
        self.raw = flat[0].raw

    def pipe_reader(self, input_stream: IO[bytes]) -> IO[Any]:
        stream: IO[Any] = input_stream
        for fmt in reversed(self.formats):
            stream = fmt.pipe_reader(stream)
        return stream

    def pipe_writer(self, output_stream: IO[bytes]) -> IO[Any]:
        stream: IO[Any] = output_stream
        for fmt in reversed(self.formats):
            stream = fmt.pipe_writer(stream)
        return stream

    def binary(self) -> Format:
        layers = [fmt.binary() for fmt in self.formats]
        kept = [fmt for fmt in layers if not isinstance(fmt, NopFormat)]
        if not kept:
            return Nop
        return kept[0] if len(kept) == 1 else ChainFormat(*kept)

    def __repr__(self) -> str:
        return " >> ".join(repr(fmt) for fmt in self.formats)


Text = TextFormat()
UTF8 = TextFormat("utf-8")
Nop = NopFormat()
Gzip = GzipFormat()
Bzip2 = Bzip2Format()


def get_default_format() -> Format:
    """The format used for the text modes when a target has none: UTF-8 text."""
    return Text


def resolve_format(fmt: Format | None, binary: bool) -> Format:
    """The full chain to open a target with: 'rb'/'wb' and Nop give bytes, 'r'/'w' give text.

    A bytes-only format such as Gzip opened with 'r'/'w' gets Text in front (text through gzip).
    """
    if fmt is None:
        return Nop if binary else get_default_format()
    if binary:
        resolved = fmt.binary()
        if resolved.input != "bytes":
            raise TargetError(f"format {fmt!r} gives text; open the target with 'r' or 'w'")
        return resolved
    if fmt.input == "bytes" and not fmt.raw:
        return get_default_format() >> fmt
    return fmt
