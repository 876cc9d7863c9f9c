"""Shared fixtures: files written into a test's tmp_path, the real `pipes` command run there, a
fresh process-wide config; and the fixture modules every test file may use (pytest_plugins)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pipes.config import Config

PIPES_SCRIPT = Path(sys.executable).parent / "pipes"

# Fixture modules, registered once here rather than star-imported by each test file.
pytest_plugins = ["pipesd_fixtures", "remote_fixtures", "luigi_fixtures", "status_fixtures"]


@pytest.fixture
def fresh_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No process-wide config loaded yet, in tmp_path, with no PIPES_/LUIGI_ config variables.

    The first get_config() then reads only the files the test wrote; restored afterwards.
    """
    from pipes import config  # here, so collecting the tests does not load pipes

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PIPES_CONFIG_PATH", raising=False)
    monkeypatch.delenv("LUIGI_CONFIG_PATH", raising=False)
    # the one place tests reach into config's module state: there is no public reset
    monkeypatch.setattr(config, "_config", None)
    monkeypatch.setattr(config, "_added_paths", [])


@pytest.fixture
def cfg(fresh_config: None) -> Config:
    """The fresh process-wide config (empty: tmp_path holds no config file yet)."""
    from pipes import config

    return config.get_config()


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write dedented text to a path relative to tmp_path (parents created); returns the path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def clean_env() -> dict[str, str]:
    """os.environ without PIPES_* variables, so the caller's settings never leak into a run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIPES_")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.fixture
def run_pipes(
    tmp_path: Path, clean_env: dict[str, str]
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `python -m pipes ARGS` (or the console script, script=True) with cwd=tmp_path.

    `env` adds variables to a clean environment; the working directory is tmp_path, so only
    config files the test wrote there (or names in PIPES_CONFIG_PATH) are read.
    """

    def run(
        *args: str, env: dict[str, str] | None = None, script: bool = False, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        if script and not PIPES_SCRIPT.exists():
            pytest.fail(f"no pipes console script at {PIPES_SCRIPT}: run `pip install -e .`")
        command = [str(PIPES_SCRIPT)] if script else [sys.executable, "-m", "pipes"]
        return subprocess.run(
            [*command, *args],
            cwd=tmp_path,
            env={**clean_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run
