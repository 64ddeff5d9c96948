"""3. Cold start: a fresh process that imports the handler and serves one PutImage, divided by a
fresh process that only imports boto3 and makes one DynamoDB call (GetItem).

Both are timed by the parent from spawn to exit, alternating, same environment. Two conditions:
- "bytecode cached": every module's .pyc is available (a PYTHONPYCACHEPREFIX filled by one warm-up
  run of each kind) -- what a bundle with precompiled bytecode gives;
- "no bytecode": an empty PYTHONPYCACHEPREFIX and PYTHONDONTWRITEBYTECODE, so every module is
  compiled from source at every start -- what Lambda does with a bundle built with
  `pip install --no-compile` and without __pycache__ (/var/task is read-only)."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import ROOT, GatewayProcess, nonce, now, oci_manifest, signed_event
from local.registry import REGISTRY_ID
from registry.storage import codec
from tests.support import sha256, upload_blob

SCRIPT = ROOT / "bench" / "cold_start_child.py"


def _spawn(mode: str, job: dict, env: dict[str, str], folder: Path, extra: list[str] = ()) -> dict:
    source, target = folder / "job.json", folder / "out.json"
    source.write_text(json.dumps(job))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = now()
    result = subprocess.run(
        [sys.executable, *extra, str(SCRIPT), mode, str(source), str(target)],
        env=env,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wall = now() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode != 0:
        raise RuntimeError(f"cold start ({mode}) failed:\n{result.stderr[-3000:]}")
    measured = json.loads(target.read_text())
    if not measured["ok"]:
        raise RuntimeError(f"cold start ({mode}) did not succeed: {measured['detail']}")
    return {"wall_s": wall, "cpu_s": cpu, **measured, "stderr": result.stderr}


def _top_imports(stderr: str, count: int = 12) -> list[tuple[str, float]]:
    """The slowest modules of a `-X importtime` run, by cumulative milliseconds, top-level only."""
    rows = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line[len("import time:") :].split("|")
            name = name[1:]  # "| name": one space after the bar, then two per level
            depth = (len(name) - len(name.lstrip(" "))) // 2
            if cumulative.strip().isdigit() and depth <= 2:
                rows.append((name.strip(), round(int(cumulative) / 1000, 1)))
    return sorted(rows, key=lambda r: -r[1])[:count]


def run(ctx) -> dict:
    runs = 4 if ctx.quick else 7
    gateway = GatewayProcess(ctx.environment, workers=1, log_path=ctx.scratch / "cold-handler.log")
    try:
        ecr = gateway.ecr()
        repo = f"bench/cold-{nonce()}"
        ecr.create_repository(repositoryName=repo)
        config, layer = b'{"architecture":"amd64","os":"linux"}', b"cold" * 100
        for blob in (config, layer):
            upload_blob(ecr, repo, blob)
        blobs = ((sha256(config), len(config)), (sha256(layer), len(layer)))
        ecr.put_image(repositoryName=repo, imageManifest=oci_manifest(blobs[0], [blobs[1]], nonce()), imageTag="first")
    finally:
        gateway.stop()

    def handler_job() -> dict:
        event = signed_event(
            ecr,
            "put_image",
            repositoryName=repo,
            imageTag=f"cold-{nonce()}",
            imageManifest=oci_manifest(blobs[0], [blobs[1]], nonce()),
        )
        return {"lambdas": str(ROOT / "lambdas"), "event": event, "access_key_id": "test"}

    boto3_job = {"table": ctx.backends.tables["repositories"], "key": codec.item(registry_id=REGISTRY_ID, name=repo)}
    base_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    base_env.update(ctx.environment)
    conditions = {}
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as scratch:
        folder = Path(scratch)
        cached, empty = folder / "pyc-cached", folder / "pyc-empty"
        cached.mkdir()
        empty.mkdir()
        envs = {
            "bytecode cached": {**base_env, "PYTHONPYCACHEPREFIX": str(cached), "PYTHONDONTWRITEBYTECODE": "1"},
            "no bytecode": {**base_env, "PYTHONPYCACHEPREFIX": str(empty), "PYTHONDONTWRITEBYTECODE": "1"},
        }
        warm = {**base_env, "PYTHONPYCACHEPREFIX": str(cached)}  # writes the cache once
        for mode in ("handler", "boto3"):
            _spawn(mode, handler_job() if mode == "handler" else boto3_job, warm, folder)
        profile = _spawn("handler", handler_job(), envs["bytecode cached"], folder, ["-X", "importtime"])
        for name, env in envs.items():
            samples: dict[str, list[dict]] = {"handler": [], "boto3": []}
            for i in range(runs):
                for mode in ("handler", "boto3") if i % 2 == 0 else ("boto3", "handler"):
                    job = handler_job() if mode == "handler" else boto3_job
                    samples[mode].append(_spawn(mode, job, env, folder))
            median = {m: statistics.median(s["wall_s"] for s in samples[m]) for m in samples}
            cpu = {m: statistics.median(s["cpu_s"] for s in samples[m]) for m in samples}
            conditions[name] = {
                "runs": runs,
                "handler_ms": _ms(samples["handler"]),
                "boto3_ms": _ms(samples["boto3"]),
                "ratio": round(median["handler"] / median["boto3"], 3),
                "cpu_ratio": round(cpu["handler"] / cpu["boto3"], 3),
                "handler_modules": samples["handler"][0]["modules"],
                "boto3_modules": samples["boto3"][0]["modules"],
            }
            if name == "bytecode cached":  # where the handler's first request goes, phase by phase
                phases = [
                    _spawn("handler-phases", handler_job(), env, folder)["phases"] for _ in range(max(3, runs // 2))
                ]
                conditions[name]["first_request_phases_ms"] = {
                    k[:-2]: round(statistics.median(p[k] for p in phases) * 1000, 1) for k in phases[0]
                }
            ctx.log(
                f"{name}: handler {conditions[name]['handler_ms']['wall']} ms, "
                f"boto3 {conditions[name]['boto3_ms']['wall']} ms -> {conditions[name]['ratio']}x"
            )
    return {
        "conditions": conditions,
        "primary": "bytecode cached",
        "slowest_imports_ms": _top_imports(profile["stderr"]),
        "target": "<= 1.3x (bytecode cached)",
        "environment_note": "POWERTOOLS_TRACE_DISABLED=true as in the local runner (no X-Ray SDK)",
    }


def _ms(samples: list[dict]) -> dict:
    return {
        "wall": round(statistics.median(s["wall_s"] for s in samples) * 1000, 1),
        "import": round(statistics.median(s["import_s"] for s in samples) * 1000, 1),
        "serve": round(statistics.median(s["serve_s"] for s in samples) * 1000, 1),
        "wall_min": round(min(s["wall_s"] for s in samples) * 1000, 1),
        "cpu": round(statistics.median(s["cpu_s"] for s in samples) * 1000, 1),
    }
