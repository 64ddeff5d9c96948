"""The local gateway in a process of its own (started by bench.common.GatewayProcess).

The environment carries everything the handler needs (Backends.environment()) plus the port, the
number of workers and the handler log. Prints "ready" once listening; exits when stdin closes."""

from __future__ import annotations

import os
import sys

from local.gateway import Gateway
from local.services import die_with_parent


def main() -> None:
    die_with_parent()
    gateway = Gateway(
        int(os.environ["BENCH_GATEWAY_PORT"]),
        {},
        workers=int(os.environ["BENCH_GATEWAY_WORKERS"]),
        log_path=os.environ.get("BENCH_HANDLER_LOG"),
    ).start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.read()  # until the benchmark closes our stdin
    gateway.stop()


if __name__ == "__main__":
    main()
