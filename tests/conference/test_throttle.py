from conference.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_failures_block_until_the_window_passes():
    clock = Clock()
    throttle = LoginThrottle(max_failures=5, window_seconds=300, clock=clock)
    for _ in range(4):
        throttle.failed("user:a", "addr:1")
        assert throttle.retry_after("user:a", "addr:1") == 0
    throttle.failed("user:a", "addr:1")
    assert throttle.retry_after("user:a") == 300
    assert throttle.retry_after("user:b", "addr:1") == 300  # same address, other user
    assert throttle.retry_after("user:b", "addr:2") == 0
    clock.now += 301
    assert throttle.retry_after("user:a", "addr:1") == 0


def test_success_clears_the_username_but_not_the_address():
    throttle = LoginThrottle(max_failures=2, window_seconds=60, clock=Clock())
    throttle.failed("user:a", "addr:1")
    throttle.failed("user:a", "addr:1")
    throttle.succeeded("user:a")
    assert throttle.retry_after("user:a") == 0
    assert throttle.retry_after("addr:1") == 60


def test_memory_is_bounded_per_key():
    throttle = LoginThrottle(max_failures=3, clock=Clock())
    for _ in range(1000):
        throttle.failed("user:a")
    assert len(throttle._failures["user:a"]) == 3
