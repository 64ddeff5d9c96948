"""8. `imagectl proxy` (docs/images.md#the-local-proxy): `docker push` of an image whose one layer is
1 GiB of random bytes (256 MiB with --quick) through the proxy to the local gateway, by a private
Docker Engine (tests/tools/engines.py). Reported: the push's time and rate, the way the proxy sent
the layer (its log), and the proxy's peak resident set (VmHWM), which must stay under 256 MB: it
holds a read or a part an upload, never a layer. Beside it, the same docker push straight into
Debian's docker-registry (CNCF Distribution, filesystem storage) on loopback: docker gzips the
layer again for each registry, so the ratio of the two times is the proxy's and the registry's
cost against a registry with nothing in between."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from bench.common import GatewayProcess, MiB, now, peak_rss_mib
from bench.images import imagectl_environment
from tests.tools import engines

REPOSITORY, TAG = "bench/proxy", "v1"
BUILT = "local/bench-proxy:built"
BOUND_MB = 256


def run(ctx) -> dict:
    """The section; skipped, with the reason, where the tools or root are missing."""
    gateway = GatewayProcess(ctx.environment, workers=4, log_path=ctx.scratch / "proxy-handler.log")
    engine = None
    try:
        engine = engines.start_docker_engine(ctx.scratch / "proxy" / "engine")
        return _measure(ctx, engine, gateway)
    except (pytest.skip.Exception, pytest.fail.Exception) as missing:  # what engines says of a missing tool
        return {"skipped": getattr(missing, "msg", str(missing))}
    finally:
        if engine is not None:
            engine.stop()
        gateway.stop()


def _measure(ctx, engine: engines.DockerEngine, gateway: GatewayProcess) -> dict:
    layer_mib = 256 if ctx.quick else 1024
    _import_random_layer(engine, ctx.scratch / "proxy" / "build", layer_mib)
    ctx.log(f"imported a one-layer image of {layer_mib} MiB of random bytes; pushing it through the proxy")
    gateway.ecr().create_repository(repositoryName=REPOSITORY)
    log = ctx.scratch / "proxy" / "proxy.log"
    proxy, url = _start_proxy(gateway, log)
    try:
        through_proxy = f"{url.removeprefix('http://')}/{REPOSITORY}:{TAG}"
        seconds = _timed_push(engine, through_proxy)
        peak = peak_rss_mib(proxy.pid)
    finally:
        proxy.terminate()
        proxy.wait(30)
    parts = [int(n) for n in re.findall(r"bytes straight to S3 in (\d+) parts", log.read_text())]
    way = f"straight to S3 in {max(parts)} parts" if parts else "through UploadLayerPart"  # the layer's way
    baseline = _push_to_distribution(ctx, engine)
    engine.run("rmi", through_proxy, BUILT)
    return {
        "layer_mib": layer_mib,
        "push_seconds": round(seconds, 1),
        "mib_per_s": round(layer_mib / seconds, 1),
        "way": way,
        "distribution_push_seconds": round(baseline, 1) if baseline else None,
        "ratio_to_distribution": round(baseline / seconds, 3) if baseline else None,
        "proxy_peak_rss_mb": round(peak * MiB / 1e6, 1),
        "bound_mb": BOUND_MB,
        "docker": engine.run("version", "--format", "{{.Server.Version}}").stdout.strip(),
    }


def _push_to_distribution(ctx, engine: engines.DockerEngine) -> float | None:
    """Seconds of the same docker push into a fresh docker-registry on loopback (None without one)."""
    try:
        distribution = engines.start_distribution_registry(ctx.scratch / "proxy" / "distribution")
    except (pytest.skip.Exception, pytest.fail.Exception):
        return None
    try:
        direct = f"{distribution.host}/{REPOSITORY}:{TAG}"
        seconds = _timed_push(engine, direct)
        engine.run("rmi", direct)
        return seconds
    finally:
        distribution.stop()


def _timed_push(engine: engines.DockerEngine, reference: str) -> float:
    """Seconds of `docker push` of BUILT, tagged `reference`."""
    engine.run("tag", BUILT, reference)
    started = now()
    engine.run("push", reference, timeout=1800)
    return now() - started


def _import_random_layer(engine: engines.DockerEngine, folder: Path, mib: int) -> None:
    """`BUILT`: `docker import` of a tarball holding one file of random bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "random.bin"
    with data.open("wb") as out:
        for _ in range(mib):
            out.write(os.urandom(MiB))
    with tarfile.open(folder / "rootfs.tar", "w") as tar:
        tar.add(data, arcname="random.bin")
    data.unlink()
    engine.run("import", folder / "rootfs.tar", BUILT, timeout=600)
    shutil.rmtree(folder, ignore_errors=True)


def _start_proxy(gateway: GatewayProcess, log: Path) -> tuple[subprocess.Popen, str]:
    env = imagectl_environment(gateway)
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "imagectl", "--output", "json", "proxy", "--listen", "127.0.0.1:0"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    first = process.stdout.readline()  # the `listening` event, once it is
    if not first:
        raise RuntimeError(f"imagectl proxy exited {process.wait(10)}: {log.read_text()[-2000:]}")
    return process, json.loads(first)["url"]
