"""A stand-in Lambda execution environment: a process that handles one event at a time and stays
warm between events, so the local gateway runs the handler with real concurrency, as Lambda does.

Run as `python -m local.worker`: events arrive on stdin and results leave on stdout, each as an
8-byte length and a JSON document; an event's body follows it as a frame of its own (UTF-8), so
that a 4 MiB part is not escaped into JSON by the gateway and parsed out again here (~40 ms a
part). Everything the handler prints (logs, metrics) goes to the file named by
REGISTRY_LOCAL_HANDLER_LOG.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class LambdaContext:
    """The attributes of Lambda's context object that Powertools reads."""

    function_name = "registry-local"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:registry-local"
    log_group_name = "/aws/lambda/registry-local"
    log_stream_name = "local"

    def __init__(self):
        self.aws_request_id = str(uuid.uuid4())

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 29_000


# The printable ASCII characters json.dumps writes as they are: all but the quote and the backslash.
_UNESCAPED = bytes(c for c in range(0x20, 0x7F) if chr(c) not in '"\\')


def json_string_length(text: str) -> int:
    """len(json.dumps(text)), without escaping MiBs of characters that need none: only the few
    that do are escaped, to count them."""
    if not text.isascii():
        return len(json.dumps(text))
    escaped = text.encode().translate(None, _UNESCAPED).decode()
    return len(text) - len(escaped) + len(json.dumps(escaped))


@dataclass(frozen=True)
class Invocation:
    """A proxy event as the worker is sent it: the event without its body, and the body."""

    event: bytes
    body: bytes
    size: int  # of the event serialized whole, as Lambda's 6 MB request limit counts it

    @classmethod
    def of(cls, event: dict) -> Invocation:
        body = event.get("body")
        if not body:  # None or "": sent as it is, within the event
            head = json.dumps(event).encode()
            return cls(head, b"", len(head))
        head = json.dumps({**event, "body": None}).encode()
        return cls(head, body.encode(), len(head) - len("null") + json_string_length(body))

    @staticmethod
    def read(event: bytes, body: bytes) -> dict:
        """The event, whole again, in the worker."""
        whole = json.loads(event)
        if body:
            whole["body"] = body.decode()
        return whole


def _read_frame(stream) -> bytes | None:
    header = stream.read(8)
    if len(header) < 8:
        return None
    size = int.from_bytes(header, "big")
    data = stream.read(size)
    if len(data) < size:
        return None
    return data


def _write_frame(stream, data: bytes) -> None:
    stream.write(len(data).to_bytes(8, "big") + data)
    stream.flush()


def main() -> None:
    events = sys.stdin.buffer
    results = os.fdopen(os.dup(1), "wb")  # our channel to the gateway
    log = os.environ.get("REGISTRY_LOCAL_HANDLER_LOG")
    if log:  # from here on, whatever the handler prints lands in the log file
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - for the life of the process
    from registry import handler  # the cold start

    faults = os.environ.get("REGISTRY_FAULTS_FILE")
    if faults:
        from local.faults import install

        install(handler.store().clients(), faults)
    while (frame := _read_frame(events)) is not None and (body := _read_frame(events)) is not None:
        event = Invocation.read(frame, body)
        try:
            result = handler.lambda_handler(event, LambdaContext())
        except Exception as error:  # noqa: BLE001 - what Lambda reports of a function that raised
            result = {"errorMessage": str(error), "errorType": type(error).__name__}
        _write_frame(results, json.dumps(result).encode())


class Worker:
    """The gateway's side of one worker process."""

    def __init__(self, environment: dict[str, str]):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "local.worker"],
            cwd=ROOT,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )

    def invoke(self, invocation: Invocation) -> tuple[dict, int]:
        """Returns the result, and its size as the function returned it (serialized): what Lambda's
        6 MB response limit applies to."""
        _write_frame(self.process.stdin, invocation.event)
        _write_frame(self.process.stdin, invocation.body)
        frame = _read_frame(self.process.stdout)
        if frame is None:
            raise RuntimeError(f"worker {self.process.pid} exited with {self.process.wait()}")
        return json.loads(frame), len(frame)

    def stop(self) -> None:
        try:
            if not self.process.stdin.closed:
                self.process.stdin.close()
            self.process.wait(timeout=5)
        except Exception:  # noqa: BLE001
            self.process.kill()


if __name__ == "__main__":
    main()
