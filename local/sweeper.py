"""`make run`'s sweep: the scheduled Lambda's run (`registry.sweep.Sweeper`: abandoned work
reclaimed, lifecycle policies applied, previews left IN_PROGRESS completed) every
REGISTRY_SWEEP_INTERVAL_SECONDS (default 3600, as the stack's schedule), with
REGISTRY_SWEEP_GRACE_SECONDS (default a day), in a thread of the runner over the local stand-ins.
It writes the usage metrics REGISTRY_USAGE_METRICS asks for (default: per repository and per
registry) to stdout as EMF, as the Lambda writes them to its log: there is no CloudWatch here."""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from registry.config import METRICS_NAMESPACE, Settings
from registry.storage import RegistryStore
from registry.sweep import grace_from_environment, metered_sweeper
from registry.sweep.usage import DEFAULT_USAGE_METRICS, UsageMetrics, usage_metrics_from_environment

INTERVAL_ENV = "REGISTRY_SWEEP_INTERVAL_SECONDS"
DEFAULT_INTERVAL_SECONDS = 3600.0
REPORTED = ("images_expired", "previews_completed", "repositories_finished", "uploads_expired", "layers_deleted")


def print_line(line: str) -> None:
    print(line, flush=True)


def interval_from_environment() -> float:
    raw = os.environ.get(INTERVAL_ENV)
    seconds = float(raw) if raw not in (None, "") else DEFAULT_INTERVAL_SECONDS
    if seconds <= 0:
        raise ValueError(f"{INTERVAL_ENV} must be more than 0, not {raw}")
    return seconds


class SweepLoop:
    """One sweep run every `interval` seconds (the first one interval after `start`) until `stop`."""

    def __init__(
        self,
        backends: Any,
        interval: float,
        grace: float,
        usage_metrics: UsageMetrics = DEFAULT_USAGE_METRICS,
        log: Callable[[str], None] = print_line,
    ):
        from .registry import REGION

        settings = Settings(region=REGION, tables=dict(backends.tables), bucket=backends.bucket)
        store = RegistryStore(settings, backends.client)
        self.sweeper = metered_sweeper(store, grace, usage_metrics, METRICS_NAMESPACE)
        self.interval, self.log = interval, log
        self.runs = 0
        self.last: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._ran = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="sweep", daemon=True)

    @classmethod
    def from_environment(cls, backends: Any, log: Callable[[str], None] = print_line) -> SweepLoop:
        usage_metrics = usage_metrics_from_environment(refuse=lambda problem: log(f"sweep: {problem}"))
        return cls(backends, interval_from_environment(), grace_from_environment(), usage_metrics, log=log)

    def start(self) -> SweepLoop:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            started = time.monotonic()
            try:
                report: dict[str, Any] | None = self.sweeper.run()
            except Exception:  # noqa: BLE001 - a failed run is the next run's to finish, as on AWS
                self.log("sweep: failed\n" + traceback.format_exc())
                report = None
            if report is not None:
                done = ", ".join(f"{k.replace('_', ' ')} {report[k]}" for k in REPORTED if report.get(k))
                self.log(f"sweep: {done or 'nothing to do'} ({time.monotonic() - started:.1f} s)")
            with self._ran:
                self.runs += 1
                self.last = report
                self._ran.notify_all()

    def wait_for_runs(self, count: int, timeout: float) -> bool:
        """Whether `count` runs have ended within `timeout` seconds."""
        with self._ran:
            return self._ran.wait_for(lambda: self.runs >= count, timeout)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
