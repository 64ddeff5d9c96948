"""The upload ids of unfinished uploads, so that a push run again sends only what is missing.

One small JSON file under the user's cache dir ($XDG_CACHE_HOME/imagectl/uploads.json, else
~/.cache/imagectl/uploads.json), keyed by registry endpoint, registry id, repository and digest.
Each entry holds the upload id, the part size the registry asked for and the last byte it
acknowledged; a direct upload's (`direct`) only its id, as the registry lists the parts S3 holds.
Writes are whole-file replacements under an exclusive lock, so concurrent runs and threads never
tear it; an entry is dropped when its upload completes or the registry forgot it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "imagectl"


@dataclass(frozen=True)
class PendingUpload:
    upload_id: str
    part_size: int
    last_byte: int  # the last byte the registry acknowledged (-1: none)
    direct: bool = False  # parts go straight to S3: the registry says which it holds (last_byte stays -1)


class ResumeState:
    def __init__(self, path: Path | None = None):
        self.path = path or cache_dir() / "uploads.json"
        self._threads = threading.Lock()

    @staticmethod
    def key(endpoint: str, registry_id: str, repository: str, digest: str) -> str:
        return f"{endpoint}|{registry_id}|{repository}|{digest}"

    def get(self, key: str) -> PendingUpload | None:
        with self._locked() as entries:
            found = entries.get(key)
        try:
            return PendingUpload(**found) if found else None
        except TypeError:  # an entry of another version: start that blob afresh
            return None

    def record(self, key: str, pending: PendingUpload) -> None:
        with self._locked(write=True) as entries:
            entries[key] = asdict(pending)

    def forget(self, key: str) -> None:
        if self.get(key) is not None:
            with self._locked(write=True) as entries:
                entries.pop(key, None)

    @contextlib.contextmanager
    def _locked(self, write: bool = False) -> Iterator[dict[str, dict[str, Any]]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._threads, open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = self._read()
            yield entries
            if write:
                temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
                temporary.write_text(json.dumps(entries, indent=1))
                os.replace(temporary, self.path)

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            entries = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return entries if isinstance(entries, dict) else {}
