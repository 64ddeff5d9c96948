"""The verifier's key lookup: read (DynamoDB) and decrypt (KMS) a key once, then trust it from
memory for at most `ttl` seconds.

That bound is the revocation delay: a revoked key keeps working on a warm function until its
cached record expires (REGISTRY_KEY_CACHE_SECONDS, default 60 s).

What an unauthenticated caller can make us do is bounded twice. Ids found to be no key are
remembered apart from the keys (their own least-recently-used list), so a flood of made-up ids
never pushes a real key out of memory. And reads of ids we have never seen are rationed: at most
`reads_per_second` on average, in bursts of `burst`; past that, an unseen id is answered as unknown
without a read (a real key seen before is always read again when its entry expires).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from ..records import AccessKey

MAX_ENTRIES = 1024
UNSEEN_READS_PER_SECOND = 20.0  # per execution environment
UNSEEN_READ_BURST = 50


class AccessKeyCache:
    def __init__(
        self,
        load: Callable[[str], AccessKey | None],
        ttl: float,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        reads_per_second: float = UNSEEN_READS_PER_SECOND,
        burst: int = UNSEEN_READ_BURST,
    ):
        self._load, self.ttl, self.max_entries, self._clock = load, ttl, max_entries, clock
        self._keys: OrderedDict[str, tuple[float, AccessKey]] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()  # id -> until when it is known unknown
        self._rate, self._burst = reads_per_second, float(burst)
        self._allowance, self._last = float(burst), clock()

    def get(self, access_key_id: str) -> AccessKey | None:
        now = self._clock()
        entry = self._keys.get(access_key_id)
        if entry is not None and entry[0] > now:
            self._keys.move_to_end(access_key_id)
            return entry[1]
        until = self._unknown.get(access_key_id)
        if until is not None and until > now:
            self._unknown.move_to_end(access_key_id)
            return None
        if entry is None and not self._may_read(now):
            return None  # an id never seen, past the ration: refused without a read
        key = self._load(access_key_id)  # may raise: nothing is cached then
        if self.ttl > 0:
            self._remember(access_key_id, key, now)
        return key

    def _may_read(self, now: float) -> bool:
        self._allowance = min(self._burst, self._allowance + (now - self._last) * self._rate)
        self._last = now
        if self._allowance < 1:
            return False
        self._allowance -= 1
        return True

    def _remember(self, access_key_id: str, key: AccessKey | None, now: float) -> None:
        if key is None:
            self._keys.pop(access_key_id, None)
            self._unknown[access_key_id] = now + self.ttl
            self._unknown.move_to_end(access_key_id)
            while len(self._unknown) > self.max_entries:
                self._unknown.popitem(last=False)
            return
        self._unknown.pop(access_key_id, None)
        self._keys[access_key_id] = (now + self.ttl, key)
        self._keys.move_to_end(access_key_id)
        while len(self._keys) > self.max_entries:
            self._keys.popitem(last=False)

    def clear(self) -> None:
        """Forget everything (benchmarks measure cold lookups this way)."""
        self._keys.clear()
        self._unknown.clear()
        self._allowance = self._burst
