"""Throughput of S3Target and HdfsTarget beside the raw clients, writing and reading 200 MB.

    python benchmarks/remote_io.py [--mb 200] [--store s3] [--store hdfs]

Needs a running S3 API and WebHDFS (../shared/services: s3-start.sh, hdfs-start.sh). Raw
figures are boto3's upload_file/download_file and the hdfs package's write/read, from and to
a local file; the target figures write the same bytes through target.open("wb") and copy
target.open("rb") to a local file. Target: each target figure >= 80% of the raw one.
The objects are deleted at the end, but radosgw frees their space only after its garbage
collection: run it on a fresh server.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipes.contrib.hdfs import HdfsConfig, HdfsTarget
from pipes.contrib.hdfs.webhdfs_client import WebHdfsClient
from pipes.contrib.s3 import S3Client, S3Target, split_path

from pipes.format import Nop

CHUNK = 1 << 20


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def write_through(target, source: Path) -> None:
    with source.open("rb") as src, target.open("wb") as out:
        while chunk := src.read(CHUNK):
            out.write(chunk)


def read_through(target, dest: Path) -> None:
    with target.open("rb") as src, dest.open("wb") as out:
        shutil.copyfileobj(src, out, CHUNK)


def s3_pairs(args, source: Path, dest: Path, cleanup: list) -> dict[str, Callable[[], object]]:
    client = S3Client(args.s3_key, args.s3_secret, endpoint_url=args.s3_url)
    bucket = f"io-{uuid.uuid4().hex[:8]}"
    client.s3.create_bucket(Bucket=bucket)
    raw_path, target = f"s3://{bucket}/raw.bin", S3Target(f"s3://{bucket}/t.bin", Nop, client)
    b, k = split_path(raw_path)
    s3, config = client.s3, client.transfer_config
    cleanup.append(lambda: client.remove(raw_path))
    cleanup.append(lambda: client.remove(target.path))
    return {
        "raw write": lambda: s3.upload_file(str(source), b, k, Config=config),
        "target write": lambda: write_through(target, source),
        "raw read": lambda: s3.download_file(b, k, str(dest), Config=config),
        "target read": lambda: read_through(target, dest),
    }


def hdfs_pairs(args, source: Path, dest: Path, cleanup: list) -> dict[str, Callable[[], object]]:
    fs = WebHdfsClient(HdfsConfig(webhdfs_urls=(args.webhdfs_url,), user="root"))
    root = f"/io-{uuid.uuid4().hex[:8]}"
    fs.mkdir(root)
    raw = fs.client
    target = HdfsTarget(f"{root}/t.bin", format=Nop, fs=fs)
    cleanup.append(lambda: fs.remove(root))

    def raw_write() -> None:
        with source.open("rb") as src:
            raw.write(f"{root}/raw.bin", data=src, overwrite=True)

    def raw_read() -> None:
        with raw.read(f"{root}/raw.bin") as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out, CHUNK)

    return {
        "raw write": raw_write,
        "target write": lambda: write_through(target, source),
        "raw read": raw_read,
        "target read": lambda: read_through(target, dest),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--store", action="append", choices=["s3", "hdfs"], default=[])
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--s3-url", default=os.environ.get("S3_URL", "http://127.0.0.1:17480"))
    parser.add_argument("--s3-key", default="PIPESACCESS")
    parser.add_argument("--s3-secret", default="PIPESSECRET")
    parser.add_argument("--webhdfs-url", default="http://127.0.0.1:19870")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pipes-io-") as tmp:
        source, dest = Path(tmp, "source.bin"), Path(tmp, "dest.bin")
        with source.open("wb") as out:
            for _ in range(args.mb):
                out.write(os.urandom(CHUNK))
        for store in args.store or ["s3", "hdfs"]:
            cleanup: list[Callable[[], object]] = []
            pairs = (s3_pairs if store == "s3" else hdfs_pairs)(args, source, dest, cleanup)
            # Interleaved rounds, best of each: a load spike then hits raw and target alike.
            best = dict.fromkeys(pairs, float("inf"))
            for _ in range(args.repeat):
                for name, run in pairs.items():
                    best[name] = min(best[name], timed(run))
            for kind in ("write", "read"):
                raw, via = best[f"raw {kind}"], best[f"target {kind}"]
                print(
                    f"{store:5} {kind:5} {args.mb} MB: raw {args.mb / raw:7.1f} MB/s, "
                    f"target {args.mb / via:7.1f} MB/s ({raw / via:.0%} of raw)"
                )
            for step in cleanup:
                step()
    print("target: each target figure >= 80% of raw")


if __name__ == "__main__":
    main()
