"""How many intra-op threads inference uses: the cores actually free, not the cores that exist.

On a machine whose cores are shared (napari drawing on the GUI thread, another process), torch's
default of one thread per core makes every matrix product wait for the slowest, busy core: on 2
cores with one kept busy, ScoreNet ran at 8 images/s with 2 threads and 24 with 1 (docs/benchmarks.md,
"Threads"). So inference measures the idle share of the CPUs it may run on (``/proc/stat``, over
``SAMPLE_SECONDS``; a measurement serves the jobs of the next ``MEASUREMENT_TTL_SECONDS``) and uses
that many threads, re-measuring every ``RECHECK_SECONDS`` of a long job.
An explicit count (``--threads``, ``threads=``) always wins. Where ``/proc/stat`` does not exist
(macOS, Windows) the one-minute load average stands in for it, or nothing (all cores).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator

import torch

SAMPLE_SECONDS = 0.05
RECHECK_SECONDS = 5.0
# a measurement serves the jobs that start within this time: clicking Score RoI again does not
# wait for a fresh sample (the load of other processes changes slowly)
MEASUREMENT_TTL_SECONDS = 30.0
_last: tuple[float, float] | None = None  # (monotonic time, free cores)


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_times() -> dict[str, tuple[int, int]] | None:
    """(busy, total) jiffies of each CPU from /proc/stat; None where it cannot be read."""
    try:
        with open("/proc/stat") as fh:
            lines = [line.split() for line in fh if line.startswith("cpu") and line[3].isdigit()]
    except OSError:
        return None
    times = {}
    for name, *fields in lines:
        values = [int(v) for v in fields[:8]]
        idle = values[3] + values[4]  # idle + iowait
        times[name] = (sum(values) - idle, sum(values))
    return times


def free_cores(sample_seconds: float = SAMPLE_SECONDS) -> float:
    """Idle CPUs among those this process may use, measured over ``sample_seconds``."""
    cores = usable_cores()
    before = _cpu_times()
    if before is None:
        try:
            return max(0.0, cores - os.getloadavg()[0])
        except (AttributeError, OSError):
            return float(cores)
    time.sleep(sample_seconds)
    after = _cpu_times() or before
    try:
        allowed = {f"cpu{i}" for i in os.sched_getaffinity(0)}
    except (AttributeError, OSError):
        allowed = set(after)
    idle = 0.0
    for name in allowed & set(after) & set(before):
        busy = after[name][0] - before[name][0]
        total = after[name][1] - before[name][1]
        idle += 1.0 - busy / total if total > 0 else 1.0
    return idle


def recent_free_cores(max_age: float = MEASUREMENT_TTL_SECONDS) -> float:
    """:func:`free_cores`, measured again only when the last measurement is older than ``max_age``."""
    global _last
    now = time.monotonic()
    if _last is None or now - _last[0] > max_age:
        _last = (now, free_cores())
    return _last[1]


def choose_threads(
    requested: int | None = None, *, reserve: int = 0, max_age: float = MEASUREMENT_TTL_SECONDS
) -> int:
    """``requested`` if given, else the free cores (rounded, at least 1) less ``reserve``.

    ``reserve`` keeps cores for work about to start in this process (napari's GUI thread); the free
    cores come from a measurement at most ``max_age`` seconds old.
    """
    if requested is not None:
        if requested < 1:
            raise ValueError(f"threads must be at least 1, got {requested}")
        return int(requested)
    free = math.floor(recent_free_cores(max_age) + 0.5)
    return max(1, min(usable_cores(), free) - reserve)


@contextlib.contextmanager
def intra_op_threads(count: int) -> Iterator[None]:
    """Run the block with ``count`` torch intra-op threads, then restore the previous count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class ThreadPolicy:
    """Threads for a long job: fixed when requested, else re-chosen every ``RECHECK_SECONDS``."""

    def __init__(self, requested: int | None = None, *, reserve: int = 0) -> None:
        self.requested, self.reserve = requested, reserve
        self.count = choose_threads(requested, reserve=reserve)
        self._checked = time.monotonic()

    def update(self) -> int:
        """The thread count for the next unit of work (re-measured when the last check is old)."""
        if self.requested is None and time.monotonic() - self._checked > RECHECK_SECONDS:
            self.count = choose_threads(None, reserve=self.reserve, max_age=RECHECK_SECONDS)
            self._checked = time.monotonic()
        return self.count
