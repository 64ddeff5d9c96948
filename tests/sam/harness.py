"""`make sam` as a developer runs it, for the tests (tests/sam) and the benchmark (bench/sam.py): in a
session of its own, with REGISTRY_PORT and any other variables given, its output in a log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

from local.sam import ROOT, STATE
from tests.tools.engines import wait_until

START_TIMEOUT = 600.0  # a first start builds the runtime image and bundles the function
STOP_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MakeSam:
    """`make sam` in a session of its own; `log` holds what it printed."""

    def __init__(self, port: int | None = None, environment: dict[str, str] | None = None):
        self.port, self.environment = port or free_port(), environment or {}
        self.log = STATE / "make-sam.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != "REGISTRY_ENDPOINT"}
        env.update(REGISTRY_PORT=str(self.port), **self.environment)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                ["make", "--no-print-directory", "sam"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_until_listening(self) -> None:
        wait_until(
            lambda: "listening on" in self.log.read_text(errors="replace"),
            timeout=START_TIMEOUT,
            what="make sam",
            process=self.process,
            log=self.log,
        )

    def session_processes(self) -> list[int]:
        """Every process still in make's session (make, python -m local.sam, SAM, the stand-ins)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(stat[3]) == self.process.pid and stat[0] != "Z":  # field 6: the session id
                    found.append(int(entry.name))
        return found

    def stop(self) -> None:
        """SIGTERM to make's own pid, as `kill` in another terminal would; returns once its session is
        empty (make, python -m local.sam, SAM and the stand-ins all gone)."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
        wait_until(lambda: not self.session_processes(), timeout=STOP_TIMEOUT, what="make sam to stop")
        self.process.wait(STOP_TIMEOUT)
