"""Integrations with other systems (HDFS, S3, Spark), installed as pipes.contrib.

Importing a module of Luigi's contrib that pipes does not have yet fails with a one-line
ModuleNotFoundError naming it as not yet supported, not a bare "No module named".
"""

from __future__ import annotations

import importlib.abc
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType

# luigi.contrib modules pipes has no counterpart of yet (issue 13); the others exist here.
LUIGI_ONLY = frozenset(
    {
        "azureblob", "batch", "beam_dataflow", "bigquery", "bigquery_avro", "datadog_metric",
        "dataproc", "docker_runner", "dropbox", "ecs", "esindex", "external_daily_snapshot",
        "ftp", "gcp", "gcs", "hadoop", "hive", "kubernetes", "lsf", "lsf_runner", "mongodb",
        "mssqldb", "mysqldb", "opener", "pai", "pig", "postgres", "presto", "prometheus_metric",
        "pyspark_runner", "rdbms", "redis_store", "redshift", "salesforce", "scalding", "sge",
        "sge_runner", "simulate", "sparkey", "sqla", "ssh", "target", "webhdfs",
    }
)  # fmt: skip


class _NotYetSupported(importlib.abc.MetaPathFinder):
    """Last on sys.meta_path: reached only when no real module of that name exists."""

    def find_spec(
        self, fullname: str, path: object = None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package == __name__ and name in LUIGI_ONLY:
            raise ModuleNotFoundError(
                f"{fullname} is not supported yet (Luigi's luigi.contrib.{name} has no pipes"
                " counterpart; see docs/coming-from-luigi.md)",
                name=fullname,
            )
        return None


if not any(isinstance(f, _NotYetSupported) for f in sys.meta_path):
    sys.meta_path.append(_NotYetSupported())
