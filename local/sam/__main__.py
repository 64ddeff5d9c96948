"""`make sam`: `make run`'s contract (REGISTRY_PORT, key `test`/`test` admin of 000000000000, every
REGISTRY_* variable reaching the function, the sweep every REGISTRY_SWEEP_INTERVAL_SECONDS), served
by `sam local start-api` over the synthesized template until SIGTERM/Ctrl-C, which stops everything
it started: SAM, the function's containers, the private Docker Engine and its bridge, the stand-ins.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from infra.api import RUNTIME
from infra.bundling import python_version_of
from tests.tools.engines import start_docker_engine

from ..registry import REGION, REGISTRY_ID, Backends
from ..services import STATE_DIR, Service, die_with_parent
from ..sweeper import SweepLoop
from . import SAM_VENV, STATE
from .network import Bridge
from .runtime_image import ensure_image
from .template import local_template, synthesize

SAM_CLI = Path(__file__).resolve().with_name("sam_cli.py")  # `sam`, with one fix (its docstring)
ENGINE_ROOT = STATE / "docker"  # its data root (the images) is kept between starts: the cache
READY_TIMEOUT_SECONDS = 300.0  # SAM's own image on top of ours, the first container, the cold start
# What the probe sends: an unsigned ECR call, which only the function answers (with a 4xx).
PROBE_TARGET = "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories"
# `aws`: SAM pulls AWS's own image of the runtime (a machine with internet) instead of ours.
IMAGE_ENV = "REGISTRY_SAM_IMAGE"


def main() -> int:
    die_with_parent()  # `make sam` killed with SIGTERM must not leave us running
    port = int(os.environ.get("REGISTRY_PORT") or 4566)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    with contextlib.ExitStack() as started:  # stopped in reverse, however far the start got
        try:
            endpoint = start(started, port)
            print(f"\nECR API and /v2 listening on {endpoint}   (registry {REGISTRY_ID}, region {REGION})")
            print(f"through `sam local start-api`. Access key 'test', secret 'test'. Logs: {STATE_DIR.name}/sam.log")
            print("Press Ctrl-C to stop.", flush=True)
            while True:
                signal.pause()
        except Stopping:
            print("Stopping...", flush=True)
    return 0


class Stopping(BaseException):
    """SIGTERM or SIGINT: unwind, stopping what was started. A BaseException, as KeyboardInterrupt is:
    the waits of the start catch Exception while what they wait for is not there yet."""


def _stop(*_: object) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)  # one stop at a time
    raise Stopping


def start(started: contextlib.ExitStack, port: int) -> str:
    timings: dict[str, float] = {}
    clock = time.monotonic()

    def lap(name: str) -> None:
        nonlocal clock
        timings[name], clock = round(time.monotonic() - clock, 1), time.monotonic()

    bridge = Bridge.for_state(STATE)
    bridge.create()
    started.callback(bridge.delete)
    engine = start_docker_engine(ENGINE_ROOT, keep_images=True, network_args=bridge.dockerd_args)
    started.callback(engine.stop)
    lap("docker_engine")
    print("Starting DynamoDB Local and moto (S3, KMS)...", flush=True)
    backends = Backends.start(host=bridge.gateway)  # where the function's container reaches them
    started.callback(backends.stop)
    lap("stand_ins")
    image = None
    if os.environ.get(IMAGE_ENV) != "aws":
        image, built = ensure_image(engine, python_version_of(RUNTIME))
        lap("runtime_image_built" if built else "runtime_image_cached")
    print("Synthesizing the stack (cdk.out.sam)...", flush=True)
    synthesized, ran = synthesize()
    template, env_vars = local_template(synthesized, backends.function_environment())
    lap("synth" if ran else "synth_unchanged")
    sweep = SweepLoop.from_environment(backends).start()
    started.callback(sweep.stop)
    sam = start_sam(port, template, env_vars, image, engine.env)
    started.callback(sam.stop)
    sam.wait_until_ready(_answered_by_the_function, timeout=READY_TIMEOUT_SECONDS)
    lap("sam_until_the_function_answers")
    (STATE / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")
    print(f"Started in {sum(timings.values()):.0f} s: {timings}", flush=True)
    return sam.endpoint


def start_sam(port: int, template: Path, env_vars: Path, image: str | None, docker_env: dict[str, str]) -> Service:
    """SAM on `port`; the function in `image` (ours), or in the one SAM pulls from AWS (None)."""
    config = STATE / "sam-config"  # SAM's own settings: no telemetry, no update check (no download)
    config.mkdir(parents=True, exist_ok=True)
    (config / "metadata.json").write_text(json.dumps({"telemetryEnabled": False, "lastVersionCheck": time.time()}))
    env = {
        **docker_env,  # DOCKER_HOST: the private engine
        "__SAM_CLI_APP_DIR": str(config),
        "SAM_CLI_TELEMETRY": "0",
        # what SAM gives the function's AWS_* variables (the env-vars file says the same)
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": REGION,
    }
    command = [
        str(SAM_VENV / "bin" / "python"), "-P", str(SAM_CLI), "local", "start-api",  # -P: not its folder on the path
        "--template", str(template), "--env-vars", str(env_vars),
        "--host", "127.0.0.1", "--port", str(port), "--region", REGION,
        *(["--invoke-image", image, "--skip-pull-image"] if image else []),  # ours: nothing is pulled
        "--warm-containers", "LAZY",  # the registry function's container only, kept warm
        "--container-host", "127.0.0.1", "--container-host-interface", "127.0.0.1",
        "--layer-cache-basedir", str(STATE / "layers"), "--no-watch",
    ]  # fmt: skip
    return Service("sam", command, port, cwd=template.parent, env=env)


def _answered_by_the_function(sam: Service) -> None:
    request = urllib.request.Request(
        sam.endpoint + "/",
        data=b"{}",
        method="POST",
        headers={"X-Amz-Target": PROBE_TARGET, "Content-Type": "application/x-amz-json-1.1"},
    )
    try:
        urllib.request.urlopen(request, timeout=60).read()
    except urllib.error.HTTPError as error:
        if error.code >= 500:  # SAM's own answer while the container is not there yet
            raise
        return
    raise RuntimeError("an unsigned ECR call was answered with success")


if __name__ == "__main__":
    sys.exit(main())
