"""`docker pull` of one image from the registry and from CNCF Distribution (Debian's docker-registry,
filesystem storage), by a private Docker Engine (tests/tools/engines.py), each pull cold.

The image is built offline: three layers of random (incompressible) bytes, the first `docker
import`ed from a tarball, the other two COPYed by `docker build`. docker pushes it to Distribution,
which has no body limit; the registry gets the very same manifest and blobs through the ECR API
(a /v2 request body stops at ~4.4 MiB, so docker could not push these layers to it). Both then serve
identical bytes, and the pulls alternate: one warm-up pull from each (the gateway starts workers,
the authorizer's answer is cached), then the timed ones, with the image removed after every pull
so that each one downloads, verifies and unpacks all three layers."""

from __future__ import annotations

import base64
import json
import os
import shutil
import statistics
import urllib.request
from pathlib import Path

import pytest

from bench.common import CpuMeter, GatewayProcess, HandlerLog, MiB, children_of, now
from tests.support import DOCKER_MANIFEST, upload_blob
from tests.tools import engines

REPOSITORY, TAG = "bench/v2-image", "v1"


def run(ctx, gateway: GatewayProcess, ecr, log: HandlerLog) -> dict:
    """The section's docker part; skipped, with the reason, where the tools or root are missing."""
    root = ctx.scratch / "docker"
    engine = distribution = None
    try:
        engine = engines.start_docker_engine(root / "engine")
        distribution = engines.start_distribution_registry(root / "distribution")
        return _measure(ctx, engine, distribution, gateway, ecr, log)
    except (pytest.skip.Exception, pytest.fail.Exception) as missing:  # what engines says of a missing tool
        return {"skipped": getattr(missing, "msg", str(missing))}
    finally:
        if distribution is not None:
            distribution.stop()
            shutil.rmtree(distribution.root / "data", ignore_errors=True)
        if engine is not None:
            engine.stop()


def _measure(ctx, engine, distribution, gateway: GatewayProcess, ecr, log: HandlerLog) -> dict:
    layers_mib = (16, 16, 16) if ctx.quick else (34, 33, 33)
    _build(engine, ctx.scratch / "docker" / "build", layers_mib)
    ctx.log(f"built a {sum(layers_mib)} MiB image of 3 layers; pushing it to Distribution and the registry")
    image_bytes, seeded = _seed(engine, distribution, gateway, ecr)
    references = {"registry": _reference(_host(gateway)), "distribution": _reference(distribution.host)}
    pulls = _pulls(ctx, engine, references, _meter(ctx, engine, distribution, gateway), log)
    return {
        "image_mib": round(image_bytes / MiB, 1),
        "layers": len(layers_mib),
        "seed_seconds": seeded,
        "docker": engine.run("version", "--format", "{{.Server.Version}}").stdout.strip(),
        "distribution": engines.run_command([distribution.binary, "--version"]).stdout.split()[-1],
        **pulls,
        "mib_per_s": {k: round(image_bytes / MiB / s, 1) for k, s in pulls["median_seconds"].items()},
        "target": ">= 0.8 of Distribution's throughput",
    }


def _reference(host: str) -> str:
    return f"{host}/{REPOSITORY}:{TAG}"


def _random_file(path: Path, mib: int) -> None:
    with path.open("wb") as out:
        for _ in range(mib):
            out.write(os.urandom(MiB))


def _build(engine: engines.DockerEngine, folder: Path, layers_mib: tuple[int, int, int]) -> None:
    """`local/bench-v2:built`: one imported layer and two COPYed ones, each a file of random bytes."""
    shutil.rmtree(folder, ignore_errors=True)
    rootfs, context = folder / "rootfs", folder / "context"
    rootfs.mkdir(parents=True)
    context.mkdir()
    _random_file(rootfs / "layer-1.bin", layers_mib[0])
    tarball = folder / "rootfs.tar"
    engines.run_command(["tar", "-C", rootfs, "--owner=0", "--group=0", "-cf", tarball, "."])
    engine.run("import", tarball, "local/bench-v2-base:built", timeout=300)
    for number, mib in enumerate(layers_mib[1:], start=2):
        _random_file(context / f"layer-{number}.bin", mib)
    (context / "Dockerfile").write_text(
        "FROM local/bench-v2-base:built\nCOPY layer-2.bin /layer-2.bin\nCOPY layer-3.bin /layer-3.bin\n"
    )
    engine.run("build", "-q", "-t", "local/bench-v2:built", context, timeout=300)
    shutil.rmtree(folder, ignore_errors=True)


def _seed(engine, distribution, gateway, ecr) -> tuple[int, dict[str, float]]:
    """docker push to Distribution; its manifest and blobs copied into the registry with the ECR API;
    docker logged in to the registry, and the engine left with no image. (image bytes, seconds)."""
    theirs = _reference(distribution.host)
    engine.run("tag", "local/bench-v2:built", theirs)
    started = now()
    engine.run("push", theirs, timeout=600)
    pushed = now()
    image_bytes = _copy_image(distribution.url, ecr)
    copied = now()
    _docker_login(engine, gateway, ecr)
    engine.run("rmi", theirs, "local/bench-v2:built", "local/bench-v2-base:built")
    engine.run("image", "prune", "-af")
    return image_bytes, {
        "docker_push_to_distribution": round(pushed - started, 1),
        "ecr_api": round(copied - pushed, 1),
    }


def _copy_image(distribution_url: str, ecr) -> int:
    """The image as Distribution holds it, into the registry: every blob with the ECR API, then
    PutImage of the same manifest bytes (so the digest is the same). The bytes of the blobs."""
    manifest = _get(f"{distribution_url}/v2/{REPOSITORY}/manifests/{TAG}", accept=DOCKER_MANIFEST)
    document = json.loads(manifest)
    ecr.create_repository(repositoryName=REPOSITORY)
    total = 0
    for descriptor in (document["config"], *document["layers"]):
        blob = _get(f"{distribution_url}/v2/{REPOSITORY}/blobs/{descriptor['digest']}")
        upload_blob(ecr, REPOSITORY, blob)
        total += len(blob)
    ecr.put_image(
        repositoryName=REPOSITORY, imageManifest=manifest.decode(), imageManifestMediaType=DOCKER_MANIFEST, imageTag=TAG
    )
    return total


def _get(url: str, accept: str | None = None) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read()


def _docker_login(engine, gateway, ecr) -> None:
    """`docker login -u AWS` with GetAuthorizationToken's password (what get-login-password prints)."""
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    password = base64.b64decode(token).decode().split(":", 1)[1]
    engine.run("login", "-u", "AWS", "--password-stdin", _host(gateway), input=password)


def _host(gateway) -> str:
    """127.0.0.1:<port>: docker speaks plain HTTP to a loopback registry without being told."""
    return f"127.0.0.1:{gateway.port}"


def _meter(ctx, engine, distribution, gateway) -> CpuMeter:
    """CPU of every process a pull involves (the docker client itself, short-lived, is not counted):
    on 2 cores, what the servers spend is taken from docker's unpacking."""
    dockerd = engine.process.pid
    dynamodb = ctx.backends.dynamodb.process.pid
    return CpuMeter(
        {
            "dockerd + containerd": lambda: [dockerd, *children_of(dockerd)],
            "gateway + handler": lambda: [gateway.process.pid, *gateway.worker_pids()],
            "moto (S3)": lambda: [ctx.backends.moto.process.pid],
            "DynamoDB Local": lambda: [dynamodb, *children_of(dynamodb)],
            "Distribution": lambda: [distribution.process.pid],
        }
    )


def _cold_pull(engine, reference: str, meter: CpuMeter) -> tuple[float, dict[str, float]]:
    """Seconds and CPU seconds (by process) of `docker pull` into an engine that holds no image;
    the image is removed after."""
    if engine.run("images", "-aq").stdout.strip():
        raise RuntimeError("the engine still holds an image: the pull would not be cold")
    meter.start()
    started = now()
    engine.run("pull", "-q", reference, timeout=600)
    elapsed = now() - started
    cpu = meter.stop()
    engine.run("rmi", reference)
    engine.run("image", "prune", "-af")
    return elapsed, cpu


def _pulls(ctx, engine, references: dict[str, str], meter: CpuMeter, log: HandlerLog) -> dict:
    runs = 3 if ctx.quick else 7
    first = {name: round(_cold_pull(engine, reference, meter)[0], 2) for name, reference in references.items()}
    log.mark()
    seconds: dict[str, list[float]] = {name: [] for name in references}
    cpu: dict[str, dict[str, float]] = {name: {} for name in references}
    for run in range(runs):
        names = list(references)
        for name in names if run % 2 == 0 else names[::-1]:
            elapsed, used = _cold_pull(engine, references[name], meter)
            seconds[name].append(elapsed)
            for process, value in used.items():
                cpu[name][process] = cpu[name].get(process, 0.0) + value / runs
    medians = {name: statistics.median(s) for name, s in seconds.items()}
    ctx.log("docker pull medians: " + ", ".join(f"{k} {v:.2f}s" for k, v in medians.items()))
    return {
        "runs": runs,
        "first_pull_seconds": first,
        "pull_seconds": {name: [round(x, 2) for x in s] for name, s in seconds.items()},
        "median_seconds": {name: round(m, 2) for name, m in medians.items()},
        # What each of the registry's pulls asked of the handler, and the handler's own time on it
        "handler_ms": log.since_mark(),
        "cpu_seconds_per_pull": {name: {k: round(v, 2) for k, v in c.items() if v >= 0.005} for name, c in cpu.items()},
        # docker's throughput of the one image: the ratio of throughputs is the inverse ratio of times
        "ratio": round(medians["distribution"] / medians["registry"], 3),
    }
