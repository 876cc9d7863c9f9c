"""Integrations with other systems (HDFS, S3, Spark), installed as pipes.contrib."""
