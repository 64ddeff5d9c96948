"""The verifier's key lookup: read (DynamoDB) and decrypt (KMS) a key once, then trust it from
memory for at most `ttl` seconds.

That bound is the revocation delay: a revoked key keeps working on a warm function until its
cached record expires (REGISTRY_KEY_CACHE_SECONDS, default 60 s). Unknown keys are remembered as
unknown for the same time, so a flood of made-up key ids costs one read per id and bound. The
cache holds at most `max_entries` keys (least recently used out first).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from ..records import AccessKey

MAX_ENTRIES = 1024


class AccessKeyCache:
    def __init__(
        self,
        load: Callable[[str], AccessKey | None],
        ttl: float,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._load, self.ttl, self.max_entries, self._clock = load, ttl, max_entries, clock
        self._entries: OrderedDict[str, tuple[float, AccessKey | None]] = OrderedDict()

    def get(self, access_key_id: str) -> AccessKey | None:
        now = self._clock()
        entry = self._entries.get(access_key_id)
        if entry is not None and entry[0] > now:
            self._entries.move_to_end(access_key_id)
            return entry[1]
        key = self._load(access_key_id)  # may raise: nothing is cached then
        if self.ttl > 0:
            self._entries[access_key_id] = (now + self.ttl, key)
            self._entries.move_to_end(access_key_id)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return key

    def clear(self) -> None:
        self._entries.clear()
