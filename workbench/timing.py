"""One way to time things, shared by the app's activation costs and the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_ms(step: Callable[[], object], repeats: int) -> float:
    """Median wall time of `step` in milliseconds over `repeats` runs, after one warm-up run
    (first-call allocations and lazy initialisation are not the step's cost)."""
    step()
    return statistics.median(time_ms(step) for _ in range(repeats))


def time_ms(step: Callable[[], object]) -> float:
    """Wall time of one call of `step`, in milliseconds."""
    start = time.perf_counter()
    step()
    return (time.perf_counter() - start) * 1000.0
