"""The layering rules of STYLE.md, checked on the real import graph."""

import ast
import subprocess
import sys
from pathlib import Path

import pipes

PIPES_DIR = Path(pipes.__file__).parent
# The pure core: state and transitions only, with `now` passed in by the caller.
CORE = ["core", "model", "index", "ready_queue"]
FORBIDDEN = [
    "tornado",
    "sqlite3",
    "socket",
    "threading",
    "logging",
    "logging.handlers",
    "subprocess",
    "selectors",
    "shutil",
    "datetime",
    "pipes.server",
    "pipes.worker",
    "pipes.rpc",
    "pipes.configuration",
]
# Modules the interpreter loads before any import (os, io, time, pathlib), so sys.modules
# cannot tell; the AST scan below forbids importing them in the core instead.
FORBIDDEN_IMPORTS = {"time", "os", "io", "pathlib", "datetime", *FORBIDDEN}
CLOCK_CALLS = {
    "time",
    "time_ns",
    "monotonic",
    "monotonic_ns",
    "perf_counter",
    "perf_counter_ns",
    "process_time",
    "now",
    "utcnow",
    "today",
}

PROBE = """
import sys, types
package = types.ModuleType("pipes")
package.__path__ = [{path!r}]
sys.modules["pipes"] = package  # skip pipes/__init__.py: measure the core's own imports
for name in {core!r}:
    __import__("pipes.scheduler." + name)
print(" ".join(sorted(name for name in {forbidden!r} if name in sys.modules)))
"""


def test_scheduler_core_imports_no_io_or_transport_modules():
    probe = PROBE.format(path=str(PIPES_DIR), core=CORE, forbidden=FORBIDDEN)
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == ""


def _core_trees() -> list[tuple[str, ast.Module]]:
    paths = [PIPES_DIR / "scheduler" / f"{name}.py" for name in CORE]
    return [(path.name, ast.parse(path.read_text())) for path in paths]


def test_scheduler_core_imports_no_clock_or_io_module_in_source():
    for name, tree in _core_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module is not None:
                modules = [node.module]
            else:
                continue
            for module in modules:
                assert module.split(".")[0] not in FORBIDDEN_IMPORTS, (name, module)
                assert module not in FORBIDDEN_IMPORTS, (name, module)


def test_scheduler_core_never_reads_a_clock_or_opens_a_file():
    for name, tree in _core_trees():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Attribute):
                assert func.attr not in CLOCK_CALLS, (name, node.lineno, func.attr)
            elif isinstance(func, ast.Name):
                assert func.id not in {"open", *CLOCK_CALLS}, (name, node.lineno, func.id)


def test_scheduler_core_raises_no_transport_error():
    # the core raises Refused; Service turns it into BadRequest (HTTP 400)
    for name, tree in _core_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert node.module != "pipes.exceptions", (name, node.lineno)
            if isinstance(node, ast.Name):
                assert node.id not in ("BadRequest", "RPCError"), (name, node.lineno, node.id)


def test_package_init_holds_only_reexports_a_lazy_table_and_all():
    tree = ast.parse((PIPES_DIR / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "typing":
            assert [alias.name for alias in node.names] == ["TYPE_CHECKING"]
        elif isinstance(node, ast.ImportFrom):
            assert all(alias.asname == alias.name for alias in node.names)
        elif isinstance(node, ast.Import):  # for the lazy loader
            assert [alias.name for alias in node.names] == ["importlib"]
        elif isinstance(node, ast.If):  # `if TYPE_CHECKING:` re-exports of the lazy names
            assert ast.unparse(node.test) == "TYPE_CHECKING"
            assert all(isinstance(inner, ast.ImportFrom) for inner in node.body)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            assert [t.id for t in targets] in (["__all__"], ["_LAZY"])
        elif isinstance(node, ast.FunctionDef):  # PEP 562 hooks only
            assert node.name in ("__getattr__", "__dir__")
        else:
            assert isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)  # docstring
    assert sorted(pipes.__all__) == sorted(set(pipes.__all__))
    assert all(hasattr(pipes, name) for name in pipes.__all__)


def test_core_never_reads_the_clock():
    for path in (PIPES_DIR / "scheduler").glob("*.py"):
        if path.name == "local.py":  # the in-process wrapper supplies `now`
            continue
        assert "time.time" not in path.read_text(), path


def test_only_cli_exits_the_process():
    # a forked worker child ends with os._exit, which is not exiting the command
    for path in PIPES_DIR.rglob("*.py"):
        if path.name == "cli.py" and path.parent == PIPES_DIR:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                raised = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                assert ast.unparse(raised) != "SystemExit", (path, node.lineno)
            elif isinstance(node, ast.Call):
                assert ast.unparse(node.func) not in ("sys.exit", "exit", "quit"), (
                    path,
                    node.lineno,
                )
