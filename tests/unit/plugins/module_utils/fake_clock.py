"""The one fake clock of the module_utils tests: it moves only when the code under test sleeps."""


class FakeClock:
    """Callable as the clock (monotonic seconds); `sleep` advances it and records each sleep in `slept`."""

    def __init__(self, now: float = 0.0):
        self.now, self.slept = now, []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
