"""Spark jobs as tasks: a spark-submit command line built from task attributes and ``[spark]``.

``SparkSubmitTask`` runs any Spark application; ``PySparkTask`` runs its own ``main()`` in
the driver, shipping the task's package (and pipes) so they import there without manual
``py_files`` (luigi issue #1576). The driver log streams into the task's log, its tracking
URL (YARN or the Spark UI) becomes the task's, and a failed job fails the task with the
driver's exception. PySparkTask outputs are written to temporary paths, renamed on success.
See docs/spark.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import pipes
from pipes.config import get_config
from pipes.exceptions import ConfigError, TaskDefinitionError
from pipes.target import FileSystemTarget
from pipes.task import flatten

from .external_program import ErrorFinder, ExternalProgramRunError, ExternalProgramTask

# The driver log names its UI: YARN's "tracking URL: http://...", the Spark UI's Jetty line
# (Spark 4: "Start Jetty 127.0.0.1:4040 for SparkUI"), or Spark 2/3's "Bound SparkUI ... at".
_TRACKING = (
    re.compile(r"tracking URL: (https?://\S+)"),
    re.compile(r"Bound SparkUI to .*, and started at (https?://\S+)"),
    re.compile(r"Start Jetty (\S+:\d+) for SparkUI"),
)


def _config(option: str) -> str | None:
    return get_config().get("spark", option)


def _list(option: str) -> list[str]:
    value = _config(option)
    return [part.strip() for part in value.split(",") if part.strip()] if value else []


class SparkSubmitTask(ExternalProgramTask):
    """Runs a Spark application with spark-submit; attributes default to ``[spark]`` options."""

    name: str | None = None  # --name (default: the task family)
    entry_class: str | None = None  # --class
    app: str | None = None  # the .jar or .py to run
    always_log_stderr = True

    def app_options(self) -> list[Any]:
        """Arguments after the application."""
        return []

    # ----- settings: override on the task, or set in [spark] ------------------------------

    @property
    def spark_submit(self) -> str:
        return _config("spark_submit") or "spark-submit"

    @property
    def master(self) -> str | None:
        return _config("master")

    @property
    def deploy_mode(self) -> str | None:
        return _config("deploy_mode")

    @property
    def jars(self) -> list[str]:
        return _list("jars")

    @property
    def packages(self) -> list[str]:
        return _list("packages")

    @property
    def py_files(self) -> list[str]:
        return _list("py_files")

    @property
    def files(self) -> list[str]:
        return _list("files")

    @property
    def archives(self) -> list[str]:
        return _list("archives")

    @property
    def conf(self) -> dict[str, str]:
        return parse_conf(_config("conf"))

    @property
    def properties_file(self) -> str | None:
        return _config("properties_file")

    @property
    def driver_memory(self) -> str | None:
        return _config("driver_memory")

    @property
    def executor_memory(self) -> str | None:
        return _config("executor_memory")

    @property
    def driver_cores(self) -> str | None:
        return _config("driver_cores")

    @property
    def executor_cores(self) -> str | None:
        return _config("executor_cores")

    @property
    def num_executors(self) -> str | None:
        return _config("num_executors")

    @property
    def total_executor_cores(self) -> str | None:
        return _config("total_executor_cores")

    @property
    def queue(self) -> str | None:
        return _config("queue")

    @property
    def hadoop_conf_dir(self) -> str | None:
        return _config("hadoop_conf_dir")

    @property
    def hadoop_user_name(self) -> str | None:
        return _config("hadoop_user_name")

    # ----- the command line -----------------------------------------------------------------

    def spark_command(self) -> list[str]:
        """spark-submit and its options, up to (not including) the application."""
        command = [*self.spark_submit.split()]
        for flag, value in self._single_options():
            if value is not None and value != "":
                command += [flag, str(value)]
        for flag, values in self._list_options():
            if values:
                command += [flag, ",".join(str(v) for v in values)]
        for key, value in self.conf.items():
            command += ["--conf", f"{key}={value}"]
        return command

    def _single_options(self) -> list[tuple[str, Any]]:
        return [
            ("--master", self.master),
            ("--deploy-mode", self.deploy_mode),
            ("--name", self.name or self.task_family),
            ("--class", self.entry_class),
            ("--properties-file", self.properties_file),
            ("--driver-memory", self.driver_memory),
            ("--executor-memory", self.executor_memory),
            ("--driver-cores", self.driver_cores),
            ("--executor-cores", self.executor_cores),
            ("--num-executors", self.num_executors),
            ("--total-executor-cores", self.total_executor_cores),
            ("--queue", self.queue),
        ]

    def _list_options(self) -> list[tuple[str, list[str]]]:
        return [
            ("--jars", self.jars),
            ("--packages", self.packages),
            ("--py-files", self.py_files),
            ("--files", self.files),
            ("--archives", self.archives),
        ]

    def app_command(self) -> list[Any]:
        """The application and its options."""
        if not self.app:
            raise TaskDefinitionError(f"{type(self).__name__} must set app (a .jar or .py)")
        return [self.app, *self.app_options()]

    def program_args(self) -> list[Any]:
        """spark-submit, its options, the application and the application's options."""
        return [*self.spark_command(), *self.app_command()]

    def program_environment(self) -> dict[str, str]:
        """The worker's environment, with HADOOP_CONF_DIR and HADOOP_USER_NAME when set."""
        env = super().program_environment()
        if self.hadoop_conf_dir:
            env["HADOOP_CONF_DIR"] = self.hadoop_conf_dir
        if self.hadoop_user_name:
            env["HADOOP_USER_NAME"] = self.hadoop_user_name
        return env

    # ----- following the driver -------------------------------------------------------------

    def on_output_line(self, stream: str, line: str) -> None:
        """Take the tracking URL and the driver's exception from the driver log."""
        super().on_output_line(stream, line)
        # A PySpark driver's own traceback reaches spark-submit's stdout, the JVM's log stderr
        self.__dict__.setdefault("_errors", ErrorFinder()).feed(line, stream)
        if stream == "stderr" and not self.__dict__.get("_tracked"):
            url = tracking_url(line)
            if url:
                self.__dict__["_tracked"] = True
                self.set_tracking_url(url)

    def program_failed(self, returncode: int, err_tail: list[str]) -> ExternalProgramRunError:
        """'spark-submit failed (exit code N): <the driver's exception>', then the stderr tail."""
        finder = self.__dict__.get("_errors")
        error = (finder.found if finder else None) or "no exception found in the driver log"
        tail = "\n".join(err_tail)
        message = (
            f"spark-submit failed (exit code {returncode}): {error}\n"
            f"last lines of the driver log (all of it is in the task log):\n{tail}"
        )
        return ExternalProgramRunError(message, self._args, returncode, tail)

    def run(self) -> None:
        """Run the job; the driver's first exception, if any, names the failure."""
        self.__dict__.pop("_errors", None)
        self.__dict__.pop("_tracked", None)
        super().run()


def tracking_url(line: str) -> str | None:
    """The YARN or Spark UI address a driver log line names, if any."""
    for pattern in _TRACKING:
        match = pattern.search(line)
        if match:
            url = match.group(1)
            return url if "://" in url else f"http://{url}"
    return None


def parse_conf(text: str | None) -> dict[str, str]:
    """``k=v|k2=v2`` (luigi's [spark] conf format) as a dict; ConfigError on an item without =."""
    conf: dict[str, str] = {}
    for item in (text or "").split("|"):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"[spark] conf item {item!r} is not key=value (separate with |)")
        conf[key.strip()] = value.strip()
    return conf


RUNNER = '''\
"""pipes' PySpark driver: rebuild the task from its reference and call its main()."""
import copy
import inspect
import json
import sys


def _swap(struct, paths):
    if isinstance(struct, dict):
        return {k: _swap(v, paths) for k, v in struct.items()}
    if isinstance(struct, (list, tuple)):
        return type(struct)(_swap(v, paths) for v in struct)
    path = getattr(struct, "path", None)
    if isinstance(path, str) and path in paths:
        struct = copy.copy(struct)
        struct.path = paths[path]
    return struct


def main(ref_path, *args):
    with open(ref_path) as ref_file:
        ref = json.load(ref_file)
    import importlib
    from pipes.task_register import get_task_cls
    importlib.import_module(ref["module"])
    task = get_task_cls(ref["family"]).from_str_params(ref["params"])
    outputs = task.output()
    task.output = lambda: _swap(outputs, ref["temp_paths"])
    from pyspark import SparkConf, SparkContext
    conf = SparkConf()
    task.setup(conf)
    first = next(iter(inspect.signature(task.main).parameters), None)
    if first == "spark":
        from pyspark.sql import SparkSession
        spark = SparkSession.builder.config(conf=conf).getOrCreate()
        task.setup_remote(spark.sparkContext)
        try:
            task.main(spark, *args)
        finally:
            spark.stop()
    else:
        sc = SparkContext(conf=conf)
        task.setup_remote(sc)
        try:
            task.main(sc, *args)
        finally:
            sc.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
'''


class PySparkTask(SparkSubmitTask):
    """A Spark job written as the task's own ``main(sc, *args)`` or ``main(spark)``.

    The task is rebuilt in the driver from its module, family and parameters; its top-level
    package (or single module) and pipes itself go to ``--py-files`` automatically.
    """

    def setup(self, conf: Any) -> None:
        """Change the SparkConf before the context starts (in the driver)."""

    def setup_remote(self, sc: Any) -> None:
        """Prepare the SparkContext once it exists, e.g. sc.addPyFile (in the driver)."""

    def main(self, sc: Any, *args: Any) -> None:
        """The job, run in the driver; name the first parameter `spark` for a SparkSession."""
        raise NotImplementedError(f"{type(self).__name__} must define main(sc, *args)")

    def run(self) -> None:
        """Ship the code, run the driver on temporary output paths, rename them on success."""
        if type(self).__module__ == "__main__":
            raise TaskDefinitionError(
                f"{type(self).__name__} is defined in __main__: put it in a module so the"
                " driver can import it"
            )
        workdir = tempfile.mkdtemp(prefix="pipes-pyspark-")
        try:
            with contextlib.ExitStack() as stack:
                temp_paths = {
                    target.path: stack.enter_context(target.temporary_path())
                    for target in flatten(self.output())
                    if isinstance(target, FileSystemTarget)
                }
                self._prepare(Path(workdir), temp_paths)
                super().run()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _prepare(self, workdir: Path, temp_paths: dict[str, str]) -> None:
        (workdir / "pipes_pyspark_runner.py").write_text(RUNNER)
        ref = {
            "module": type(self).__module__,
            "family": self.task_family,
            "params": self.to_str_params(),
            "temp_paths": temp_paths,
        }
        (workdir / "task.json").write_text(json.dumps(ref))
        shipped = [zip_code(type(self).__module__, workdir), zip_pipes(workdir)]
        self.__dict__["_shipped"] = [str(p) for p in shipped if p is not None]
        self.__dict__["_workdir"] = str(workdir)

    @property
    def app(self) -> str:  # type: ignore[override]
        return os.path.join(self.__dict__.get("_workdir", ""), "pipes_pyspark_runner.py")

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.task_family

    def spark_command(self) -> list[str]:
        """As SparkSubmitTask, plus the shipped code and, with a local master, this Python."""
        command = super().spark_command()
        shipped = self.__dict__.get("_shipped", [])
        if "--py-files" in command:
            index = command.index("--py-files") + 1
            command[index] = ",".join([*shipped, command[index]])
        elif shipped:
            command += ["--py-files", ",".join(shipped)]
        conf = self.conf
        if (self.master or "local").startswith("local"):
            # The driver and its Python workers run here: use the worker's interpreter, which
            # has pipes and the task's dependencies, not whatever `python3` is first on PATH.
            for key in ("spark.pyspark.python", "spark.pyspark.driver.python"):
                if key not in conf:
                    command += ["--conf", f"{key}={sys.executable}"]
        return command

    def app_options(self) -> list[Any]:
        """The task reference the driver rebuilds the task from; extend to pass main() args."""
        return [os.path.join(self.__dict__.get("_workdir", ""), "task.json")]


def zip_code(module: str, workdir: Path) -> Path | None:
    """A zip of the top-level package holding `module` (or the module's own file)."""
    top = module.split(".")[0]
    spec = sys.modules.get(top)
    origin = getattr(spec, "__file__", None)
    if origin is None:
        return None
    path = Path(origin)
    archive = workdir / f"{top}.zip"
    with zipfile.ZipFile(archive, "w") as out:
        if path.name == "__init__.py":
            _add_tree(out, path.parent, top)
        else:
            out.write(path, path.name)
    return archive


def zip_pipes(workdir: Path) -> Path:
    """A zip of pipes and pipes.contrib, so the driver imports the same pipes as the worker."""
    archive = workdir / "pipes.zip"
    core = Path(pipes.__file__).parent
    contrib = Path(__file__).parent
    with zipfile.ZipFile(archive, "w") as out:
        _add_tree(out, core, "pipes", skip="contrib")
        _add_tree(out, contrib, "pipes/contrib")
    return archive


def _add_tree(out: zipfile.ZipFile, root: Path, prefix: str, skip: str | None = None) -> None:
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if "__pycache__" in relative.parts or (skip and relative.parts[0] == skip):
            continue
        if path.is_file() and not path.name.endswith((".pyc", ".pyo")):
            out.write(path, f"{prefix}/{relative.as_posix()}")
