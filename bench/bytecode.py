"""What precompiled bytecode saves at a cold start, measured on this machine (not a test).

    .venv/bin/python -m bench.bytecode [runs]        (default 15 runs per side)

For the deployed runtime's Python version and for the emulator's (this venv's), when an
interpreter of that version is on this machine (infra.bundling.find_interpreter), it builds the
Lambda bundle twice for this machine's CPU -- with the `.pyc` files the deployment ships, and
without -- then times `import registry.handler` (what Lambda's init phase does before the first
request) in fresh interpreters started in the bundle folder, the two sides alternating so that
load on the machine falls on both. Interpreters run with -B: /var/task is read-only, so a bundle
without bytecode compiles every module at every cold start, as here. Tracing is on (the X-Ray SDK
is imported), as in the deployed function.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from infra.api import RUNTIME
from infra.bundling import BundleSpec, build_bundle, find_interpreter, python_version_of

ROOT = Path(__file__).resolve().parents[1]

IMPORT = "import time; started = time.perf_counter(); import registry.handler; print(time.perf_counter() - started)"
ENV = {"PATH": "/usr/bin:/bin", "AWS_REGION": "us-east-1", "AWS_LAMBDA_FUNCTION_NAME": "registry", "LANG": "C.UTF-8"}


def machine_platform() -> str:
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(platform.machine().lower(), platform.machine().lower())
    return f"manylinux2014_{machine}"


def import_seconds(interpreter: str, bundle: Path) -> float:
    result = subprocess.run(
        [interpreter, "-S", "-E", "-B", "-c", IMPORT],
        cwd=bundle,
        env={**ENV, "HOME": str(bundle)},
        capture_output=True,
        text=True,
        check=True,
    )
    return float(result.stdout.strip().splitlines()[-1])


def measure(version: str, runs: int, workdir: Path) -> dict | None:
    interpreter = find_interpreter(version)
    if interpreter is None:
        return None
    bundles = {}
    for label, compiler in (("with_bytecode", interpreter), ("without_bytecode", None)):
        bundles[label] = workdir / f"{version}-{label}"
        started = time.monotonic()
        build_bundle(BundleSpec(platform=machine_platform(), python_version=version, compiler=compiler), bundles[label])
        print(f"  built {bundles[label].name} in {time.monotonic() - started:.1f}s", file=sys.stderr)
    for bundle in bundles.values():
        import_seconds(interpreter, bundle)  # warm the page cache for both sides alike
    samples: dict[str, list[float]] = {label: [] for label in bundles}
    for _ in range(runs):
        for label, bundle in bundles.items():
            samples[label].append(import_seconds(interpreter, bundle))
    summary = {"interpreter": interpreter, "runs": runs}
    for label, values in samples.items():
        ordered = sorted(values)
        summary[label] = {
            "median_ms": round(statistics.median(values) * 1000, 1),
            "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 1),
            "min_ms": round(ordered[0] * 1000, 1),
        }
    summary["speedup_median"] = round(
        summary["without_bytecode"]["median_ms"] / summary["with_bytecode"]["median_ms"], 2
    )
    return summary


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    versions = dict.fromkeys([python_version_of(RUNTIME), f"{sys.version_info[0]}.{sys.version_info[1]}"])
    results = {
        "machine": {"cpus": len(os.sched_getaffinity(0)), "cpu": platform.machine(), "loadavg": list(os.getloadavg())}
    }
    with tempfile.TemporaryDirectory(prefix="cold-start-") as tmp:
        for version in versions:
            print(f"Python {version}:", file=sys.stderr)
            results[version] = measure(version, runs, Path(tmp)) or "no interpreter of this version here"
    results["machine"]["loadavg_after"] = list(os.getloadavg())
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
