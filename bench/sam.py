"""`make sam` against `make run`: first start (the runtime image built), warm start (found in the cache),
and the latency of one ECR call through each (sequential calls, the same client and operation).

    .venv/bin/python -m bench.sam [--calls N] [--keep-cache]

Not part of `make bench`: it needs root (`make sam` starts its own dockerd and bridge) and minutes.
Without --keep-cache the first start is measured as on a fresh clone: without the image cache
(.local/sam/docker) and without the bundled asset (cdk.out.sam). Prints one table; the JSON goes to
bench/results/sam-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from bench import common
from local.registry import Backends, LocalRegistry
from local.sam import STATE
from local.sam.__main__ import ENGINE_ROOT
from local.sam.template import OUTDIR
from tests.sam.harness import MakeSam

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sam", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="sequential calls per endpoint (default 200)")
    parser.add_argument("--keep-cache", action="store_true", help="keep the image cache and the bundle")
    args = parser.parse_args(argv)
    if not args.keep_cache:
        for cache in (ENGINE_ROOT, OUTDIR):
            shutil.rmtree(cache, ignore_errors=True)
    result = {"machine": common.machine(), "calls": args.calls}
    result["first_start"] = timed_start(args.calls)
    result["warm_start"] = timed_start(args.calls)
    result["make_run"] = {"call_ms": make_run_latency(args.calls)}
    report(result)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"sam-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{out}")
    return 0


def timed_start(calls: int) -> dict:
    started = time.monotonic()
    sam = MakeSam()
    try:
        sam.wait_until_listening()
        seconds = time.monotonic() - started
        phases = json.loads((STATE / "timings.json").read_text())
        latency = call_latency(ecr_client(sam.endpoint), calls)
    finally:
        sam.stop()
    return {"seconds": round(seconds, 1), "phases": phases, "call_ms": latency}


def make_run_latency(calls: int) -> dict:
    backends = Backends.start()
    registry = LocalRegistry(backends)
    try:
        return call_latency(registry.ecr(), calls)
    finally:
        registry.stop()
        backends.stop()


def ecr_client(endpoint: str):
    import boto3

    return boto3.client(
        "ecr",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def call_latency(client, calls: int) -> dict:
    """DescribeRepositories, sequential, after one call that warms the function."""
    client.describe_repositories()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        client.describe_repositories()
        samples.append(time.perf_counter() - started)
    return common.summary(samples)


def report(result: dict) -> None:
    first, warm, run = result["first_start"], result["warm_start"], result["make_run"]
    print(f"{'':32} {'start s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, row in (("make sam, first start", first), ("make sam, warm start", warm), ("make run", run)):
        start = f"{row['seconds']:8.1f}" if "seconds" in row else f"{'':8}"
        print(f"{name:32} {start} {row['call_ms']['median']:8.1f} {row['call_ms']['p99']:8.1f}")
    overhead = warm["call_ms"]["median"] - run["call_ms"]["median"]
    print(f"\nper-request overhead of SAM over make run (median): {overhead:.1f} ms")
    print(f"first start phases: {first['phases']}\nwarm start phases:  {warm['phases']}")


if __name__ == "__main__":
    sys.exit(main())
