"""Spark and Hadoop MapReduce over HDFS: PySparkTask counts words, HadoopJarJobTask sums by letter.

Start HDFS and install a `hadoop` command (see ../shared/services/README.md, or use yours):

    bash ../shared/services/hdfs-start.sh /tmp/hdfs
    bash ../shared/services/hadoop-cli.sh /tmp/hadoop hdfs://127.0.0.1:19000

then, with pyspark installed (pip install 'pipes[spark,hdfs]') and this pipes.cfg:

    [hdfs]
    namenode_host = 127.0.0.1
    user = root
    [webhdfs]
    port = 19870
    [hadoop]
    command = /tmp/hadoop/bin/hadoop
    [spark]
    master = local[2]
    conf = spark.hadoop.dfs.replication=1

run (the virtualenv's bin first on PATH, so spark-submit finds pyspark):

    SPARK_LOCAL_IP=127.0.0.1 PATH=.venv/bin:$PATH \
        pipes --module examples.spark_hadoop LetterCounts --local-scheduler

Four tasks run: the raw text lands on HDFS, javac builds the job jar (an
ExternalProgramTask), Spark counts words, MapReduce sums the counts by first letter. A
second run does nothing. The driver imports `words` from this package without any
py_files setting: PySparkTask ships the `examples` package itself.
"""

from __future__ import annotations

import os
import tempfile
from operator import add

from pipes.contrib.external_program import ExternalProgramTask
from pipes.contrib.hadoop_jar import HadoopJarJobTask
from pipes.contrib.hdfs import HdfsTarget
from pipes.contrib.spark import PySparkTask

import pipes
from pipes.config import get_config

HERE = os.path.dirname(os.path.abspath(__file__))
TEXT = """the quick brown fox jumps over the lazy dog
a stitch in time saves nine
all that glitters is not gold
"""


def words(line: str) -> list[str]:
    """Lower-case alphabetic words of a line (runs in Spark's Python workers)."""
    return [word.lower() for word in line.split() if word.isalpha()]


class Raw(pipes.Task):
    """The input text, written to HDFS (renamed into place on a clean close)."""

    namenode = pipes.Parameter(default="hdfs://127.0.0.1:19000")

    def output(self):
        return HdfsTarget(f"{self.namenode}/examples/spark_hadoop/raw/part-0.txt")

    def run(self):
        with self.output().open("w") as out:
            out.write(TEXT)


class WordCounts(PySparkTask):
    """word TAB count lines, written by Spark to a temporary directory renamed on success."""

    namenode = pipes.Parameter(default="hdfs://127.0.0.1:19000")

    def requires(self):
        return Raw(self.namenode)

    def output(self):
        return HdfsTarget(f"{self.namenode}/examples/spark_hadoop/words")

    def main(self, spark):
        lines = spark.sparkContext.textFile(self.input().path)
        counts = lines.flatMap(words).map(lambda word: (word, 1)).reduceByKey(add, 2)
        counts.map(lambda kv: f"{kv[0]}\t{kv[1]}").saveAsTextFile(self.output().path)


class LetterCountJar(ExternalProgramTask):
    """examples/LetterCount.java compiled against the `hadoop` command's classpath."""

    def output(self):
        return pipes.LocalTarget("data/spark_hadoop/letters.jar")

    def program_args(self):
        hadoop = get_config().get("hadoop", "command") or "hadoop"
        classes = self.__dict__["classes"]
        source = os.path.join(HERE, "LetterCount.java")
        script = (
            f'javac -cp "$({hadoop} classpath)" -d "{classes}" "{source}"'
            f' && jar cf "{self.__dict__["jar"]}" -C "{classes}" .'
        )
        return ["sh", "-c", script]

    def run(self):
        with tempfile.TemporaryDirectory() as classes, self.output().temporary_path() as jar:
            os.makedirs(os.path.dirname(jar) or ".", exist_ok=True)
            self.__dict__.update(classes=classes, jar=jar)
            super().run()


class LetterCounts(HadoopJarJobTask):
    """Word counts summed by first letter, in MapReduce; the output is renamed on success."""

    namenode = pipes.Parameter(default="hdfs://127.0.0.1:19000")

    def requires(self):
        return {"words": WordCounts(self.namenode), "jar": LetterCountJar()}

    def output(self):
        return HdfsTarget(f"{self.namenode}/examples/spark_hadoop/letters")

    def jar(self):
        return self.input()["jar"].path

    def main(self):
        return "LetterCount"

    def args(self):
        return [self.input()["words"], self.output()]
