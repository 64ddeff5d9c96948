"""What a command shows while it works: bars on a terminal (rich: per blob and overall, with bytes,
rate and ETA), plain lines when stderr is not a terminal, or JSON events on stdout (`--output json`,
one object a line, the last one the result)."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class Reporter(Protocol):
    # A live display is told of a direct part's bytes as they are written (taken back if the attempt
    # fails); the others of a part's bytes once S3 holds them, so that their count is what a
    # resumed push would not send again
    live: bool

    def begin(self, verb: str, blobs: int, total: int) -> None: ...

    def start(self, key: str, size: int | None, done: int = 0) -> None: ...

    def advance(self, key: str, nbytes: int) -> None: ...

    def finish(self, key: str, outcome: str) -> None: ...

    def result(self, document: dict[str, Any], line: str) -> None: ...

    def close(self) -> None: ...


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def mib(nbytes: float) -> str:
    return f"{nbytes / (1 << 20):.1f} MiB"


class TerminalReporter:
    """rich bars on stderr; the result line on stdout."""

    live = True

    def __init__(self, stream: TextIO | None = None):
        self.console = Console(file=stream or sys.stderr)
        self.bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.tasks: dict[str, TaskID] = {}
        self.overall: TaskID | None = None

    def begin(self, verb: str, blobs: int, total: int) -> None:
        self.bars.start()
        self.overall = self.bars.add_task(f"{verb} {blobs} blobs", total=total)

    def start(self, key: str, size: int | None, done: int = 0) -> None:
        self.tasks[key] = self.bars.add_task(f"  {short(key)}", total=size, completed=done)
        if self.overall is not None and done:
            self.bars.advance(self.overall, done)

    def advance(self, key: str, nbytes: int) -> None:
        self.bars.advance(self.tasks[key], nbytes)
        if self.overall is not None:
            self.bars.advance(self.overall, nbytes)

    def finish(self, key: str, outcome: str) -> None:
        task = self.tasks.get(key)
        if task is None:  # skipped without starting: it counts as done overall
            return
        self.bars.update(task, description=f"  {short(key)} {outcome}")

    def result(self, document: dict[str, Any], line: str) -> None:
        self.close()
        print(line)

    def close(self) -> None:
        self.bars.stop()


class PlainReporter:
    """One line per blob started and finished on stderr, with its size, time and rate."""

    live = False

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.lock = threading.Lock()
        self.started: dict[str, tuple[float, int]] = {}
        self.sizes: dict[str, int | None] = {}
        self.moved: dict[str, int] = {}

    def _line(self, text: str) -> None:
        with self.lock:
            print(text, file=self.stream, flush=True)

    def begin(self, verb: str, blobs: int, total: int) -> None:
        self._line(f"{verb} {blobs} blobs, {mib(total)}")

    def start(self, key: str, size: int | None, done: int = 0) -> None:
        self.started[key], self.sizes[key], self.moved[key] = (time.monotonic(), done), size, 0
        at = f", resuming at {mib(done)}" if done else ""
        self._line(f"{short(key)} start {mib(size) if size is not None else 'size unknown'}{at}")

    def advance(self, key: str, nbytes: int) -> None:
        with self.lock:
            self.moved[key] = self.moved.get(key, 0) + nbytes

    def finish(self, key: str, outcome: str) -> None:
        begun, _ = self.started.get(key, (time.monotonic(), 0))
        seconds = max(time.monotonic() - begun, 1e-6)
        moved = self.moved.get(key, 0)
        self._line(f"{short(key)} {outcome} {mib(moved)} in {seconds:.1f} s ({mib(moved / seconds)}/s)")

    def result(self, document: dict[str, Any], line: str) -> None:
        print(line, flush=True)

    def close(self) -> None:
        pass


class JsonReporter:
    """Events on stdout, one JSON object a line: begin, start, progress (per part or MiB), done, result."""

    live = False

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()
        self.moved: dict[str, int] = {}

    def _event(self, **fields: Any) -> None:
        with self.lock:
            print(json.dumps(fields), file=self.stream, flush=True)

    def begin(self, verb: str, blobs: int, total: int) -> None:
        self._event(event="begin", action=verb, blobs=blobs, bytes=total)

    def start(self, key: str, size: int | None, done: int = 0) -> None:
        self.moved[key] = done
        self._event(event="start", digest=key, size=size, offset=done)

    def advance(self, key: str, nbytes: int) -> None:
        with self.lock:
            self.moved[key] = self.moved.get(key, 0) + nbytes
        self._event(event="progress", digest=key, bytes=self.moved[key])

    def finish(self, key: str, outcome: str) -> None:
        self._event(event="done", digest=key, outcome=outcome)

    def result(self, document: dict[str, Any], line: str) -> None:
        self._event(event="result", **document)

    def close(self) -> None:
        pass


def reporter_for(output: str) -> Reporter:
    if output == "json":
        return JsonReporter()
    if sys.stderr.isatty():
        return TerminalReporter()
    return PlainReporter()
