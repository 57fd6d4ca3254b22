"""Token buckets for per-connection rate limits (no I/O, injected clock)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["ConnectionLimits", "TokenBucket"]


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second
    burst: float
    clock: Callable[[], float] = time.monotonic
    tokens: float = -1.0
    stamp: float = 0.0

    def allow(self) -> bool:
        now = self.clock()
        if self.tokens < 0:
            self.tokens, self.stamp = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


_CATEGORY = {
    "chat": "chat",
    "hand": "hand",
    "admit": "moderation",
    "deny": "moderation",
    "mute_participant": "moderation",
    "remove": "moderation",
    "lock": "moderation",
    "floor": "moderation",
    "recording": "moderation",
    "roll_call_start": "moderation",
    "roll_call_close": "moderation",
    "end": "moderation",
}


@dataclass(slots=True)
class ConnectionLimits:
    """docs/protocol.md "Limits": overall, chat, hand, moderation."""

    clock: Callable[[], float] = time.monotonic
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    refused_in_a_row: int = 0

    def __post_init__(self) -> None:
        self.buckets = {
            "all": TokenBucket(20, 40, self.clock),
            "chat": TokenBucket(1, 5, self.clock),
            "hand": TokenBucket(1, 3, self.clock),
            "moderation": TokenBucket(5, 10, self.clock),
        }

    def allow(self, message_type: str) -> bool:
        ok = self.buckets["all"].allow()
        category = _CATEGORY.get(message_type)
        if ok and category is not None:
            ok = self.buckets[category].allow()
        self.refused_in_a_row = 0 if ok else self.refused_in_a_row + 1
        return ok
