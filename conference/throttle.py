"""Failed-login throttling: after a few wrong passwords for one username, or from
one address, further attempts are refused for a while (brute-force protection).

Pure policy with an injected clock; the web layer owns one instance.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["LoginThrottle"]


@dataclass(slots=True)
class LoginThrottle:
    max_failures: int = 5
    window_seconds: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and now - failures[0] > self.window_seconds:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def retry_after(self, *keys: str) -> float:
        """Seconds until an attempt for ``keys`` is allowed again (0: allowed now)."""
        wait = 0.0
        for key in keys:
            failures = self._recent(key)
            if len(failures) >= self.max_failures:
                wait = max(wait, self.window_seconds - (self.clock() - failures[0]))
        return wait

    def failed(self, *keys: str) -> None:
        now = self.clock()
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)
            # Bound memory: only the newest failures matter.
            while len(self._failures[key]) > self.max_failures:
                self._failures[key].popleft()

    def succeeded(self, username_key: str) -> None:
        self._failures.pop(username_key, None)
