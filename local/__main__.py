"""`make run`: serve the ECR API and the Docker/OCI `/v2` API on http://127.0.0.1:${REGISTRY_PORT:-4566}
until SIGTERM/Ctrl-C."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

from .registry import REGION, REGISTRY_ID, Backends, LocalRegistry
from .services import STATE_DIR, die_with_parent
from .sweeper import INTERVAL_ENV, SweepLoop


def main() -> int:
    die_with_parent()  # `make run` killed with SIGTERM must not leave us running
    port = int(os.environ.get("REGISTRY_PORT") or 4566)
    print("Starting DynamoDB Local and moto (S3, KMS)...", flush=True)
    backends = Backends.start()
    try:
        sweep = SweepLoop.from_environment(backends)
        registry = LocalRegistry(backends, port=port, access_log=True)
    except BaseException:
        backends.stop()
        raise
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    endpoint = registry.endpoint
    sweep.start()
    # registryctl's settings for this stack (its table, KMS key and the stand-ins' endpoints)
    ctl_env = STATE_DIR / "registryctl.env"
    ctl_env.write_text("".join(f"{k}={v}\n" for k, v in backends.registryctl_environment().items()))
    ctl = f"env $(cat {_short(ctl_env)}) {_short(Path(sys.executable))} -m registryctl"
    print(
        f"""
ECR API and /v2 listening on {endpoint}   (registry {REGISTRY_ID}, region {REGION})
Access key 'test', secret 'test': admin of registry {REGISTRY_ID}. Handler logs: .local/handler.log

  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION={REGION}
  aws ecr create-repository --repository-name demo --endpoint-url {endpoint}
  aws ecr describe-repositories --endpoint-url {endpoint}
  aws ecr get-login-password --endpoint-url {endpoint} | docker login -u AWS --password-stdin {endpoint.split("://")[1]}

The sweep (what abandoned work leaves, lifecycle policies) runs every {sweep.interval:g} s ({INTERVAL_ENV}).

Issue more keys (any 12-digit registry id: each registry is a tenant), list and revoke them:

  {ctl} keys create --registry {REGISTRY_ID} --name ci --grant 'push:team/*'
  {ctl} keys list
  {ctl} keys revoke <access key id>

Press Ctrl-C to stop.""",
        flush=True,
    )
    stop.wait()
    print("Stopping...", flush=True)
    sweep.stop()
    registry.stop()
    backends.stop()
    return 0


def _short(path: Path) -> str:
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


if __name__ == "__main__":
    sys.exit(main())
