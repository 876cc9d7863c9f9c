"""Formats: round trips through real files, chaining rules, and mode resolution."""

from __future__ import annotations

import bz2
import gzip
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipes.exceptions import TargetError
from pipes.format import (
    UTF8,
    Bzip2,
    ChainFormat,
    Gzip,
    Nop,
    Text,
    TextFormat,
    get_default_format,
    resolve_format,
)
from pipes.local import LocalTarget


def read(target, mode="r"):
    with target.open(mode) as f:
        return f.read()


@pytest.mark.parametrize(
    ("fmt", "decompress"),
    [(Gzip, gzip.decompress), (Bzip2, bz2.decompress), (Nop, bytes)],
    ids=["gzip", "bzip2", "nop"],
)
def test_binary_round_trip_matches_stdlib_when_written_with_wb(tmp_path, fmt, decompress):
    target = LocalTarget(tmp_path / "data", format=fmt)
    payload = bytes(range(256)) * 50
    with target.open("wb") as f:
        f.write(payload)
    assert decompress((tmp_path / "data").read_bytes()) == payload
    with target.open("rb") as f:
        assert f.read() == payload


@pytest.mark.parametrize(
    ("fmt", "decompress"),
    [(Gzip, gzip.decompress), (Bzip2, bz2.decompress), (Text, bytes), (None, bytes)],
    ids=["gzip", "bzip2", "text", "default"],
)
def test_text_round_trip_is_utf8_through_codec_when_written_with_w(tmp_path, fmt, decompress):
    target = LocalTarget(tmp_path / "data", format=fmt)
    text = "naïve ☃\nsecond line\n"
    with target.open("w") as f:
        f.write(text)
    assert decompress((tmp_path / "data").read_bytes()) == text.encode("utf-8")
    with target.open("r") as f:
        assert f.read() == text


def test_text_then_gzip_chain_reads_what_gzip_writes(tmp_path):
    LocalTarget(tmp_path / "a.gz", format=Gzip).open("w").close()
    with LocalTarget(tmp_path / "a.gz", format=Text >> Gzip).open("w") as f:
        f.write("chained")
    with LocalTarget(tmp_path / "a.gz", format=Gzip).open("r") as f:
        assert f.read() == "chained"


def test_text_format_uses_given_encoding(tmp_path):
    target = LocalTarget(tmp_path / "latin", format=TextFormat("latin-1"))
    with target.open("w") as f:
        f.write("é")
    assert (tmp_path / "latin").read_bytes() == b"\xe9"
    assert read(target) == "é"


def test_gzip_output_is_identical_when_content_is_identical(tmp_path):
    for name in ("one", "two"):
        with LocalTarget(tmp_path / name, format=Gzip).open("w") as f:
            f.write("same")
    assert (tmp_path / "one").read_bytes() == (tmp_path / "two").read_bytes()


def test_chain_raises_target_error_when_kinds_do_not_match():
    with pytest.raises(TargetError, match="cannot chain"):
        Gzip >> Text


def test_chain_flattens_and_reports_ends():
    chain = Text >> Gzip >> Nop
    assert isinstance(chain, ChainFormat)
    assert chain.input == "text"
    assert chain.output == "bytes"
    assert repr(chain) == "TextFormat('utf-8') >> Gzip >> Nop"
    assert len(chain.formats) == 3


def test_resolve_format_defaults_to_text_for_r_and_nop_for_rb():
    assert resolve_format(None, binary=False) is get_default_format()
    assert resolve_format(None, binary=True) is Nop
    assert get_default_format() is Text
    assert UTF8.encoding == "utf-8"


def test_resolve_format_puts_text_in_front_of_gzip_when_mode_is_text():
    resolved = resolve_format(Gzip, binary=False)
    assert resolved.input == "text"
    assert repr(resolved) == "TextFormat('utf-8') >> Gzip"


def test_resolve_format_keeps_bytes_when_format_is_nop_in_text_mode():
    assert resolve_format(Nop, binary=False) is Nop
    assert resolve_format(Nop >> Gzip, binary=False).input == "bytes"


def test_resolve_format_drops_text_layer_when_mode_is_binary():
    assert resolve_format(Text, binary=True) is Nop
    assert resolve_format(Text >> Gzip, binary=True) is Gzip


def test_closing_outer_gzip_stream_closes_inner_stream():
    inner = io.BytesIO()
    outer = Gzip.pipe_writer(inner)
    outer.write(b"x")
    outer.close()
    assert inner.closed


@given(st.text())
def test_text_gzip_chain_round_trips_any_text_in_memory(text):
    chain = Text >> Gzip
    buffer = io.BytesIO()
    captured = []
    close = buffer.close
    buffer.close = lambda: (captured.append(buffer.getvalue()), close())
    writer = chain.pipe_writer(buffer)
    writer.write(text)
    writer.close()
    reader = chain.pipe_reader(io.BytesIO(captured[0]))
    # TextIOWrapper translates '\r' and '\r\n' to '\n' on read (universal newlines).
    assert reader.read() == text.replace("\r\n", "\n").replace("\r", "\n")
