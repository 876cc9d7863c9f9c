"""Daily logs: a local file is landed on HDFS, then summarised into S3.

Start the servers (see ../shared/services/README.md, or point pipes.cfg at your own):

    bash ../shared/services/hdfs-start.sh /tmp/hdfs
    bash ../shared/services/s3-start.sh /tmp/s3

and a pipes.cfg beside you:

    [hdfs]
    namenode_host = 127.0.0.1
    user = root
    [webhdfs]
    port = 19870
    [s3]
    endpoint_url = http://127.0.0.1:17480
    aws_access_key_id = PIPESACCESS
    aws_secret_access_key = PIPESSECRET

then:

    pipes --module examples.hdfs_to_s3 Summaries --days 3 --local-scheduler

A second run does nothing; delete one summary from S3 and only its Summarise task runs again.
"""

import random
from collections import Counter

from pipes.contrib.hdfs import HdfsTarget
from pipes.contrib.s3 import S3Target

import pipes
from pipes.format import Gzip

LEVELS = ["INFO"] * 8 + ["WARN", "ERROR"]


class LocalLog(pipes.Task):
    """A day's log file on the local disk: stands in for data landed by another system."""

    day = pipes.IntParameter()

    def output(self):
        return pipes.LocalTarget(f"data/hdfs_to_s3/log-{self.day:02d}.txt")

    def run(self):
        rng = random.Random(self.day)
        with self.output().open("w") as out:
            for i in range(1000):
                out.write(f"{rng.choice(LEVELS)} request {i} took {rng.randint(1, 500)} ms\n")


class Land(pipes.Task):
    """Copy the day's log to HDFS, gzipped; renamed into place only when complete."""

    day = pipes.IntParameter()

    def requires(self):
        return LocalLog(self.day)

    def output(self):
        return HdfsTarget(f"/examples/hdfs_to_s3/logs/{self.day:02d}.txt.gz", format=Gzip)

    def run(self):
        with self.input().open("r") as src, self.output().open("w") as out:
            for line in src:
                out.write(line)


class Bucket(pipes.Task):
    """The S3 bucket the summaries go to; a target at a bucket's root exists with the bucket."""

    bucket = pipes.Parameter(default="pipes-examples")

    def output(self):
        return S3Target(f"s3://{self.bucket}/")

    def run(self):
        self.output().fs.s3.create_bucket(Bucket=self.bucket)


class Summarise(pipes.Task):
    """Count log levels for the day; the object appears in S3 only on a clean close."""

    day = pipes.IntParameter()
    bucket = pipes.Parameter(default="pipes-examples")

    def requires(self):
        return {"log": Land(self.day), "bucket": Bucket(self.bucket)}

    def output(self):
        return S3Target(f"s3://{self.bucket}/summaries/{self.day:02d}.tsv")

    def run(self):
        with self.input()["log"].open("r") as src:
            counts = Counter(line.split(" ", 1)[0] for line in src)
        with self.output().open("w") as out:
            for level, count in counts.most_common():
                out.write(f"{level}\t{count}\n")


class Summaries(pipes.WrapperTask):
    """Every day's summary."""

    days = pipes.IntParameter(default=3)
    bucket = pipes.Parameter(default="pipes-examples")

    def requires(self):
        return [Summarise(day=d, bucket=self.bucket) for d in range(self.days)]
