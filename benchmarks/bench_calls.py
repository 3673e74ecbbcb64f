"""Concurrent calls held in real time by one process on one core.

Each trial is a fresh process (spawned, never forked) pinned to one core, running N calls on one
:class:`~engine.media.loop.MediaLoop` paced by the real-time :class:`~engine.media.pacer.Pacer` (20 ms frames).
Every call
plays speech (a TTS prompt, then a getkey order) to a scripted caller who presses a key at a staggered
moment 1.5–2.5 s into each request; the key ends collection, the request completes and the next one is
queued at once, so every call is always playing and always being listened to. Measured after one second of
warm-up: per-tick lateness (p50/p99/max), missed frames (ticks more than 20 ms late), CPU per tick split into the
loop's passes (:attr:`~engine.media.loop.MediaLoop.cpu_ns`: playing every call, hearing every caller, detecting keys),
and keys detected (to prove detection ran). The trial's process keeps the server media thread's collector policy
(:class:`~engine.server.realtime.RealTimeProcess`: survivors frozen every second, so no full collection scans
the calls' objects). N holds when p99 lateness < 5 ms and no frame was missed; the trials grow N until one does
not hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from benchmarks.common import Row

BENCH = "calls"
HOLD_P99_S = 0.005


def _setup(calls: int) -> tuple[Any, dict[str, Any]]:
    """(Child process.) ``calls`` calls on one media loop, each playing speech to a caller pressing 1.

    The caller presses 1 in every request. Returns the loop and the counters of keys and requests its events update.
    """
    from benchmarks.speech_calls import speech_calls
    from engine.audio.caller import ScriptedCaller, parse_key_script
    from engine.media.sinks import NullSink

    def endpoint(i: int) -> tuple[Any, Any]:
        return ScriptedCaller(parse_key_script(f"1@{1.5 + (i % 100) / 100:.2f}")), NullSink()

    return speech_calls(calls, endpoint, "Please press one.")


def _per_call_trial(calls: int, ticks: int) -> dict[str, float]:
    """(Child process.) The baseline design: a Python loop over calls, each with its own detector (no batching).

    Ticked as fast as possible; gives the CPU per tick, and the calls one core would hold at that cost.
    """
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    from engine.dtmf.channel import DtmfDetector
    from engine.format import SAMPLES_PER_FRAME

    loop, counters = _setup(calls)
    pairs = [(call, DtmfDetector()) for call in loop.calls]

    def tick() -> None:
        for call, detector in pairs:
            call.next_frame()
            for event in detector.process(call.caller.read(SAMPLES_PER_FRAME)):
                call.on_key(event)

    for _ in range(50):
        tick()
    cpu = time.process_time()
    for _ in range(ticks):
        tick()
    per_tick_s = (time.process_time() - cpu) / ticks
    return {"calls": calls, "cpu_per_tick_ms": per_tick_s * 1000, "held": calls * 0.02 / per_tick_s, **counters}


def _trial(calls: int, seconds: float) -> dict[str, float]:
    """(Child process.) Run ``calls`` calls for ``seconds`` s; return the measurements."""
    if hasattr(os, "sched_setaffinity"):  # before numpy starts any thread: every thread on one core
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    import numpy as np

    from engine.media.pacer import MonotonicClock, Pacer
    from engine.server.realtime import RealTimeProcess

    loop, counters = _setup(calls)
    collector = RealTimeProcess()  # the collector's policy of the server's media thread (freezes, young collections)
    collector.start()
    durations: list[float] = []

    def tick() -> None:
        start = time.perf_counter()
        loop.tick()
        collector.on_tick(loop.ticks, len(loop))
        durations.append(time.perf_counter() - start)

    Pacer(MonotonicClock(), tick).run(max_ticks=50)  # warm-up: one second
    counters["keys"] = counters["requests"] = 0
    durations.clear()
    loop.cpu_ns = dict.fromkeys(loop.cpu_ns, 0)
    pacer = Pacer(MonotonicClock(), tick)
    cpu = time.process_time()
    pacer.run(max_ticks=int(seconds * 50))
    cpu = time.process_time() - cpu
    stats = pacer.stats()
    per_tick_ms = {name: ns / 1e6 / stats.ticks for name, ns in loop.cpu_ns.items()}
    return {"calls": calls, "p50_ms": stats.p50_lateness_s * 1000, "p99_ms": stats.p99_lateness_s * 1000,
            "max_ms": stats.max_lateness_s * 1000, "missed": stats.missed, "ticks": stats.ticks,
            "tick_p50_ms": float(np.percentile(durations, 50)) * 1000,
            "tick_p99_ms": float(np.percentile(durations, 99)) * 1000,
            "play_ms": per_tick_ms["play"], "hear_ms": per_tick_ms["hear"], "detect_ms": per_tick_ms["detect"],
            "cpu_share": cpu / (stats.ticks * 0.02), **counters}


def _burst_trial(calls: int, burst: int) -> dict[str, float]:
    """(Child process.) CPU of ``burst`` calls set up in one tick, and hung up in one tick, beside ``calls`` live.

    The extra CPU of those two ticks over a plain tick (median of three bursts), per call set up or hung up.
    """
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    import statistics

    import numpy as np

    from engine.audio.caller import CallerAudio
    from engine.media.call import Call
    from engine.media.loop import MediaLoop
    from engine.media.sinks import NullSink

    def call(name: str) -> Call:
        return Call("a", name, CallerAudio(np.zeros(0, np.int16)), NullSink(), lambda *_: None)

    loop = MediaLoop()
    for i in range(calls):
        loop.add(call(f"c{i}"))

    def timed(before: Any = None) -> int:
        start = time.thread_time_ns()
        if before is not None:
            before()
        loop.tick()
        return time.thread_time_ns() - start

    for _ in range(5):
        timed()
    plain = statistics.median(timed() for _ in range(30))
    set_up, hung_up = [], []
    for r in range(3):
        new = [call(f"b{r}-{i}") for i in range(burst)]
        set_up.append(timed(lambda new=new: [loop.add(c) for c in new]) - plain)
        hung_up.append(timed(lambda new=new: [loop.remove(c) for c in new]) - plain)
    per_call_us = 1e3 * burst
    return {"calls": calls, "burst": burst, "tick_ms": plain / 1e6,
            "set_up_us": statistics.median(set_up) / per_call_us,
            "hang_up_us": statistics.median(hung_up) / per_call_us}


def _spawn(calls: int, seconds: float, kind: str = "paced") -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_calls", kind, str(calls), str(seconds)],
                         capture_output=True, text=True, timeout=seconds * 4 + 120,
                         env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    if out.returncode != 0:
        raise RuntimeError(f"trial with {calls} calls failed: {out.stderr[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _breakdown_rows(r: dict[str, float]) -> list[Row]:
    """Rows of the CPU per tick of each pass of the loop in trial ``r`` (ms, and µs per call in the note)."""
    calls = int(r["calls"])
    parts = [("play", "player: every call's frame, requests started and ended"),
             ("hear", "callers: every caller's frame into the detector's input"),
             ("detect", "detection: batched DTMF, keys handed to the players")]
    return [Row(BENCH, f"CPU per tick at {calls} calls: {name}", r[f"{name}_ms"], "ms",
                note=f"{what}; {r[f'{name}_ms'] * 1000 / calls:.2f} µs per call") for name, what in parts]


def run(quick: bool) -> list[Row]:
    """Trials with growing N until one does not hold.

    Gives a row per trial, the largest N that held (with the plot's series: lateness against N) and the CPU per tick of
    each pass of the loop at that N.
    """
    sizes = [1000, 5000, 7000, 9000] if quick else \
        [500, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000, 12000]
    seconds = 3.0 if quick else 15.0
    baseline = _spawn(1000, 100 if quick else 500, "per-call")
    base_name = "per-call loop, one detector per call (no batching)"
    rows: list[Row] = []
    held: dict[str, float] | None = None
    xs: list[int] = []
    p50s: list[float] = []
    p99s: list[float] = []
    ticks: list[float] = []
    for calls in sizes:
        r = _spawn(calls, seconds)
        ok = r["p99_ms"] < HOLD_P99_S * 1000 and r["missed"] == 0
        xs.append(calls)
        p50s.append(r["p50_ms"])
        p99s.append(r["p99_ms"])
        ticks.append(r["tick_p99_ms"])
        rows.append(Row(BENCH, f"{calls} calls: p99 frame lateness", r["p99_ms"], "ms", target="< 5 ms, 0 missed",
                        met=ok, note=f"missed {r['missed']}/{r['ticks']}, p50 {r['p50_ms']:.2f} ms, max "
                                     f"{r['max_ms']:.1f} ms, tick p50 {r['tick_p50_ms']:.1f} ms p99 "
                                     f"{r['tick_p99_ms']:.1f} ms (CPU play {r['play_ms']:.1f} + hear "
                                     f"{r['hear_ms']:.1f} + detect {r['detect_ms']:.1f} ms), CPU "
                                     f"{r['cpu_share']:.0%} of one core, {r['keys']} keys, {r['requests']} "
                                     "requests"))
        if not ok:
            break
        held = r
    count = int(held["calls"]) if held else 0
    rows.append(Row(BENCH, "largest N held in real time (one core)", count, "calls", target=">= 1000 (aim 5000)",
                    met=count >= 1000, baseline=base_name, baseline_value=round(baseline["held"]),
                    note=f"{seconds:g} s per trial, speech + key detection on every call; baseline: CPU "
                         f"{baseline['cpu_per_tick_ms']:.1f} ms per tick at 1000 calls, extrapolated",
                    series={"x": xs, "y": {"p50 lateness": p50s, "p99 lateness": p99s, "p99 tick time": ticks},
                            "xlabel": "calls", "ylabel": "ms", "hline": HOLD_P99_S * 1000,
                            "title": "frame lateness against concurrent calls (hold: p99 < 5 ms)"}))
    if held:
        rows += _breakdown_rows(held)
    burst = _spawn(5000, 1000, "burst")
    for what, key in (("set up", "set_up_us"), ("hung up", "hang_up_us")):
        rows.append(Row(BENCH, f"1000 calls {what} in one tick beside 5000 live: loop CPU per call", burst[key], "µs",
                        note=f"extra CPU of that tick over a plain one ({burst['tick_ms']:.2f} ms), median of 3"))
    return rows


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    kind, count, amount = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    trials = {"paced": lambda: _trial(count, amount), "per-call": lambda: _per_call_trial(count, int(amount)),
              "burst": lambda: _burst_trial(count, int(amount))}
    print(json.dumps(trials[kind]()))
