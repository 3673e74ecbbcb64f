"""What every benchmark module shares: the row it reports and a median timer.

A benchmark module ``benchmarks/bench_NAME.py`` defines ``run(quick: bool) -> list[Row]``; the runner in
``__main__`` collects the rows of every module into one table. Each row is one figure beside its baseline,
measured in the same run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Row:
    """One measured figure. ``value``/``baseline_value`` are in ``unit``; ``target``: what the issue asks."""

    benchmark: str
    case: str
    value: float | None
    unit: str
    baseline: str = ""
    baseline_value: float | None = None
    target: str = ""
    met: bool | None = None
    note: str = ""
    #: Optional data for ``--plot``: ``{"x": [...], "y": [...] or {"label": [...], ...}, "xlabel": str,
    #: "ylabel": str}``, optionally ``"title"``, ``"logx"``/``"logy"`` (bool) and ``"hline"`` (a target line).
    #: Must be JSON-serialisable (rows travel from each benchmark's subprocess to the runner as JSON).
    series: dict | None = None


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1,
                   clock: Callable[[], float] = time.perf_counter) -> float:
    """Median time of ``fn()`` by ``clock`` over ``repeats`` runs, in seconds.

    ``clock`` defaults to wall time; ``warmup`` unmeasured runs come first.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


def median_cpu_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median CPU time of this process for ``fn()`` (seconds; ``time.process_time``)."""
    return median_seconds(fn, repeats, warmup, clock=time.process_time)
