"""Blobs moved `jobs` at a time, and stopped together: when one fails or Ctrl-C comes, the others
stop at their next part or chunk instead of finishing (a push then tags nothing, a pull writes
nothing), and what they finished stays recorded for the next run."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class Stopped(Exception):
    """Raised in a worker that was asked to stop; the error that stopped it is the one reported."""


class Workers:
    def __init__(self, jobs: int):
        self.jobs = jobs
        self.stopping = threading.Event()

    def check(self) -> None:
        """Called by a worker between parts: raises Stopped once another worker failed."""
        if self.stopping.is_set():
            raise Stopped

    def map(self, function: Callable[[Item], Result], items: Iterable[Item]) -> list[Result]:
        pool = ThreadPoolExecutor(max_workers=self.jobs)
        try:
            futures = [pool.submit(function, item) for item in items]
            wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f.exception() for f in futures if f.done() and f.exception()), None)
            if failed is not None:
                raise failed
            return [f.result() for f in futures]
        except BaseException:
            self.stopping.set()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
