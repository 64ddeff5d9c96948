"""`make bench` / `python -m bench [--quick] [--only calls,size,cold,layers,throughput,v2,lifecycle,proxy,images]`

Starts DynamoDB Local and moto once, runs each section, prints one table and writes
bench/results/bench-<time>.json (and latest.json) with the machine it ran on. Every ratio is
measured within this one run, on this one machine."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from bench import common

SECTIONS = ("calls", "size", "cold", "layers", "throughput", "v2", "lifecycle", "proxy", "images")


@dataclass
class Context:
    backends: object
    environment: dict[str, str]
    quick: bool
    scratch: Path

    def log(self, message: str) -> None:
        print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller sizes, fewer runs, shorter windows, no 1 GiB layer (~4 min instead of ~7)",
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--out", default=str(common.ROOT / "bench" / "results"), help="folder for the JSON")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}")

    from bench import calls, cold_start, images, layers, lifecycle, proxy, repo_size, report, throughput, v2
    from local.registry import Backends
    from local.services import STATE_DIR

    modules = {
        "calls": calls,
        "size": repo_size,
        "cold": cold_start,
        "layers": layers,
        "throughput": throughput,
        "v2": v2,
        "lifecycle": lifecycle,
        "proxy": proxy,
        "images": images,
    }
    started = time.time()
    results = {
        "machine": common.machine(),
        "quick": args.quick,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sections": {},
    }
    print("Starting DynamoDB Local and moto...", file=sys.stderr, flush=True)
    backends = Backends.start()
    scratch = STATE_DIR / "bench"
    scratch.mkdir(parents=True, exist_ok=True)
    ctx = Context(backends, backends.environment(), args.quick, scratch)
    try:
        for name in chosen:
            print(f"== {name}", file=sys.stderr, flush=True)
            section_started = time.time()
            try:
                results["sections"][name] = modules[name].run(ctx)
            except Exception as error:  # noqa: BLE001 - one broken section must not hide the others
                traceback.print_exc()
                results["sections"][name] = {"error": repr(error)}
            results["sections"][name]["seconds"] = round(time.time() - section_started, 1)
    finally:
        backends.stop()
    results["machine"]["load_average_at_end"] = os.getloadavg()
    results["seconds"] = round(time.time() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}.json"
    text = json.dumps(results, indent=2)
    path.write_text(text)
    (out / "latest.json").write_text(text)
    print(report.render(results))
    print(f"\nwritten: {path.relative_to(common.ROOT) if path.is_relative_to(common.ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
