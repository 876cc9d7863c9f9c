"""The layering rules of STYLE.md, checked on the real import graph."""

import ast
import subprocess
import sys
from pathlib import Path

import pipes

PIPES_DIR = Path(pipes.__file__).parent
FORBIDDEN = ["tornado", "sqlite3", "socket", "threading", "pipes.server", "pipes.worker", "logging"]

PROBE = """
import sys, types
package = types.ModuleType("pipes")
package.__path__ = [{path!r}]
sys.modules["pipes"] = package  # skip pipes/__init__.py: measure the core's own imports
import pipes.scheduler.core
print(" ".join(sorted(name for name in {forbidden!r} if name in sys.modules)))
"""


def test_scheduler_core_imports_no_io_or_transport_modules():
    probe = PROBE.format(path=str(PIPES_DIR), forbidden=FORBIDDEN)
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ""


def test_package_init_holds_only_reexports_and_all():
    tree = ast.parse((PIPES_DIR / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            assert all(alias.asname == alias.name for alias in node.names)
        elif isinstance(node, ast.Assign):
            assert [t.id for t in node.targets] == ["__all__"]
        else:
            assert isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)  # docstring
    assert sorted(pipes.__all__) == sorted(set(pipes.__all__))
    assert all(hasattr(pipes, name) for name in pipes.__all__)


def test_core_never_reads_the_clock():
    for path in (PIPES_DIR / "scheduler").glob("*.py"):
        if path.name == "local.py":  # the in-process wrapper supplies `now`
            continue
        assert "time.time" not in path.read_text(), path
