"""Time to decide "nothing to do": a wrapper over N already-complete targets in one directory.

    python benchmarks/complete_scan.py --n 5000 [--luigi]
    python benchmarks/complete_scan.py --store s3 --store hdfs --n 2000

With --store s3 / hdfs it runs against a running S3 API and WebHDFS (../shared/services:
s3-start.sh, hdfs-start.sh; endpoints from --s3-url / --webhdfs-url), prints the list requests
pipes.build made and its time, beside the naive one request per output (target.exists() each),
measured in the same run. Target: at most 5 list requests per store at n=2000.

Prints the time pipes takes (pipes.build, everything complete) and how many filesystem calls
it made (os.stat / os.scandir, counted in-process); with --luigi, the same on luigi 3.8.1 in
benchmarks/.luigi-venv (`make bench-luigi`). Target: <= 0.1 s at n=5000 (luigi here: ~0.41 s).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
LUIGI_PYTHON = HERE / ".luigi-venv" / "bin" / "python"

WORKLOAD = """
import json, logging, os, sys, time
fw = __import__(sys.argv[1])
root, n = sys.argv[2], int(sys.argv[3])

class Part(fw.Task):
    i = fw.IntParameter()
    def output(self):
        return fw.LocalTarget(f"{root}/part-{self.i:05d}")

class All(fw.WrapperTask):
    def requires(self):
        return [Part(i=i) for i in range(n)]

calls = {"stat": 0, "scandir": 0}
real_stat, real_scandir = os.stat, os.scandir
def stat(*args, **kwargs):
    calls["stat"] += 1
    return real_stat(*args, **kwargs)
def scandir(*args, **kwargs):
    calls["scandir"] += 1
    return real_scandir(*args, **kwargs)
os.stat, os.scandir = stat, scandir
logging.disable(logging.WARNING)
start = time.perf_counter()
ok = fw.build([All()], local_scheduler=True)
elapsed = time.perf_counter() - start
os.stat, os.scandir = real_stat, real_scandir
print(json.dumps({"seconds": elapsed, "ok": bool(ok), **calls}))
"""


def measure(python: str, framework: str, root: str, n: int) -> dict:
    """Run the workload once in a fresh interpreter."""
    done = subprocess.run(
        [python, "-c", WORKLOAD, framework, root, str(n)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(HERE.parent)},
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{framework} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


REMOTE_WORKLOAD = """
import json, logging, os, sys, time
import pipes
store, base, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
if store == "s3":
    from pipes.contrib.s3 import S3Target as Remote
    import botocore.client
    real = botocore.client.BaseClient._make_api_call
    calls = {}
    def counted(self, operation, params):
        calls[operation] = calls.get(operation, 0) + 1
        return real(self, operation, params)
    botocore.client.BaseClient._make_api_call = counted
else:
    from pipes.contrib.hdfs import HdfsTarget as Remote
    import requests
    from urllib.parse import parse_qs, urlparse
    real = requests.Session.request
    calls = {}
    def counted(self, method, url, **kwargs):
        op = (kwargs.get("params") or {}).get("op", "?")
        calls[op] = calls.get(op, 0) + 1
        return real(self, method, url, **kwargs)
    requests.Session.request = counted

class Part(pipes.Task):
    i = pipes.IntParameter()
    def output(self):
        return Remote(f"{base}/part-{self.i:05d}")

class All(pipes.WrapperTask):
    def requires(self):
        return [Part(i=i) for i in range(n)]

logging.disable(logging.WARNING)
Remote(f"{base}/part-00000").exists()  # connect first, so both figures exclude set-up
calls.clear()
start = time.perf_counter()
ok = pipes.build([All()], local_scheduler=True)
bulk_seconds, bulk_calls = time.perf_counter() - start, dict(calls)
calls.clear()
start = time.perf_counter()
naive_ok = all(Part(i=i).output().exists() for i in range(n))
naive_seconds = time.perf_counter() - start
print(json.dumps({"seconds": bulk_seconds, "ok": bool(ok), "calls": bulk_calls,
                  "naive_seconds": naive_seconds, "naive_ok": naive_ok, "naive_calls": calls}))
"""


def remote_config(args: argparse.Namespace) -> str:
    host, port = args.webhdfs_url.removeprefix("http://").split(":")
    return (
        f"[s3]\nendpoint_url = {args.s3_url}\naws_access_key_id = {args.s3_key}\n"
        f"aws_secret_access_key = {args.s3_secret}\n\n"
        f"[hdfs]\nnamenode_host = {host}\nuser = {args.hdfs_user}\n\n[webhdfs]\nport = {port}\n"
    )


def fill_store(store: str, n: int) -> str:
    """Write n tiny outputs under a fresh prefix; return it."""
    from concurrent.futures import ThreadPoolExecutor
    from uuid import uuid4

    if store == "s3":
        from pipes.contrib.s3 import get_default_client

        client = get_default_client()
        bucket = f"scan-{uuid4().hex[:8]}"
        client.s3.create_bucket(Bucket=bucket)
        base = f"s3://{bucket}/outputs"

        def put(i: int) -> None:
            client.put_string("x", f"{base}/part-{i:05d}")
    else:
        from pipes.contrib.hdfs import get_autoconfig_client

        fs = get_autoconfig_client()
        base = f"/scan-{uuid4().hex[:8]}/outputs"
        fs.mkdir(base)

        def put(i: int) -> None:
            fs.touchz(f"{base}/part-{i:05d}")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(n)))
    return base


def run_remote(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="pipes-scan-") as tmp:
        cfg = Path(tmp, "pipes.cfg")
        cfg.write_text(remote_config(args))
        os.environ["PIPES_CONFIG_PATH"] = str(cfg)
        for store in args.store:
            base = fill_store(store, args.n)
            done = subprocess.run(
                [sys.executable, "-c", REMOTE_WORKLOAD, store, base, str(args.n)],
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "PYTHONPATH": str(HERE.parent)},
            )
            if done.returncode != 0:
                raise SystemExit(f"{store} failed:\n{done.stderr[-2000:]}")
            r = json.loads(done.stdout.strip().splitlines()[-1])
            lists = sum(v for k, v in r["calls"].items() if k in ("ListObjectsV2", "LISTSTATUS"))
            print(
                f"{store:5} n={args.n}: pipes {r['seconds']:.3f} s, {sum(r['calls'].values())} "
                f"requests ({lists} list) {r['calls']}, success={r['ok']}"
            )
            print(
                f"{store:5} n={args.n}: naive {r['naive_seconds']:.3f} s, "
                f"{sum(r['naive_calls'].values())} requests {r['naive_calls']}; "
                f"ratio naive/pipes = {r['naive_seconds'] / r['seconds']:.1f}x"
            )
        print("target: at most 5 list requests per store at n=2000")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--luigi", action="store_true", help="also run luigi")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--store", action="append", choices=["s3", "hdfs"], default=[])
    parser.add_argument("--s3-url", default=os.environ.get("S3_URL", "http://127.0.0.1:17480"))
    parser.add_argument("--s3-key", default="PIPESACCESS")
    parser.add_argument("--s3-secret", default="PIPESSECRET")
    parser.add_argument("--webhdfs-url", default="http://127.0.0.1:19870")
    parser.add_argument("--hdfs-user", default="root")
    args = parser.parse_args()
    if args.store:
        run_remote(args)
        return
    with tempfile.TemporaryDirectory(prefix="pipes-scan-") as root:
        for i in range(args.n):
            Path(root, f"part-{i:05d}").write_text("x")
        runs = [("pipes", sys.executable)]
        if args.luigi:
            if not LUIGI_PYTHON.exists():
                raise SystemExit("luigi venv missing: run `make bench-luigi` first")
            runs.append(("luigi", str(LUIGI_PYTHON)))
        best = {}
        for framework, python in runs:
            results = [measure(python, framework, root, args.n) for _ in range(args.repeat)]
            best[framework] = min(results, key=lambda r: r["seconds"])
            result = best[framework]
            print(
                f"{framework:6} n={args.n}: {result['seconds']:.3f} s to find nothing to do "
                f"(os.stat calls {result['stat']}, os.scandir calls {result['scandir']}, "
                f"success={result['ok']})"
            )
        if "luigi" in best:
            print(
                f"ratio  luigi/pipes = {best['luigi']['seconds'] / best['pipes']['seconds']:.1f}x"
            )
        print("target: <= 0.1 s for pipes at n=5000")


if __name__ == "__main__":
    main()
