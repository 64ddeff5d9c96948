"""`make run`: serve the ECR API on http://127.0.0.1:${REGISTRY_PORT:-4566} until SIGTERM/Ctrl-C."""

from __future__ import annotations

import os
import signal
import sys
import threading

from .registry import REGION, REGISTRY_ID, Backends, LocalRegistry
from .services import die_with_parent


def main() -> int:
    die_with_parent()  # `make run` killed with SIGTERM must not leave us running
    port = int(os.environ.get("REGISTRY_PORT") or 4566)
    print("Starting DynamoDB Local and moto (S3, KMS)...", flush=True)
    backends = Backends.start()
    try:
        registry = LocalRegistry(backends, port=port, access_log=True)
    except BaseException:
        backends.stop()
        raise
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    endpoint = registry.endpoint
    print(f"""
ECR API listening on {endpoint}   (registry {REGISTRY_ID}, region {REGION})
Credentials: access key 'test', secret 'test'. Handler logs: .local/handler.log

  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION={REGION}
  aws ecr create-repository --repository-name demo --endpoint-url {endpoint}
  aws ecr describe-repositories --endpoint-url {endpoint}

Press Ctrl-C to stop.""", flush=True)
    stop.wait()
    print("Stopping...", flush=True)
    registry.stop()
    backends.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
