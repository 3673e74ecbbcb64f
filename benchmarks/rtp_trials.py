"""The child processes of :mod:`benchmarks.bench_rtp`: the hub trial, the baseline trial, the load peer, sipp.

``python -m benchmarks.rtp_trials engine|baseline COUNT SECONDS PEER_PORT`` (the baseline:
:mod:`benchmarks.rtp_baseline`) prints the targets (one JSON
line), runs, then prints its figures (one JSON line); ``peer TARGETS SECONDS PEER_PORT`` and
``setup CALLS RATE`` print their figures. Each trial pins itself to one core (the engine side to the second,
the peer to the first).
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from typing import Any

from engine.net.rtp_sender import LIVE_LEAD_PERIODS

WARM_TICKS = 75
LEAD_PERIODS = LIVE_LEAD_PERIODS  # the live server's lead: packets built 2 ticks (40 ms) ahead of their deadlines
REALTIME_PRIORITY = 10  # SCHED_FIFO priority: the sender thread's (engine-Grt), every trial's when requested


def _pin(core: int) -> int:
    """Run on the ``core``-th core this process may use; returns that core's number (-1: no affinity here)."""
    if not hasattr(os, "sched_setaffinity"):
        return -1
    cores = sorted(os.sched_getaffinity(0))
    chosen = cores[core % len(cores)]
    os.sched_setaffinity(0, {chosen})
    return chosen


def steal_s(core: int) -> float:
    """The time the hypervisor has taken from ``core`` since boot (s; /proc/stat's steal; 0.0 when unknown)."""
    try:
        with open("/proc/stat") as stat:
            for line in stat:
                fields = line.split()
                if fields[0] == f"cpu{core}":
                    return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        pass
    return 0.0


def realtime_requested() -> bool:
    """True when the trials run ``SCHED_FIFO`` (``IPCC_BENCH_REALTIME=1``; off by default: the machine is shared)."""
    return os.environ.get("IPCC_BENCH_REALTIME") == "1"


def _realtime() -> bool:
    """This process (its threads from now on) ``SCHED_FIFO`` when requested and allowed: what it got."""
    if not realtime_requested():
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(REALTIME_PRIORITY))
        return True
    except (OSError, AttributeError):
        return False


def _calls(count: int, make_endpoint: Any) -> tuple[Any, dict[str, int]]:
    """A media loop of ``count`` calls playing speech and collecting a key; ``make_endpoint(i)`` → (caller, sink)."""
    from benchmarks.speech_calls import speech_calls

    return speech_calls(count, make_endpoint, "Please press five.")


def hub_calls(count: int, peer_port: int, send_groups: int) -> tuple[Any, Any, dict[str, int]]:
    """An RTP hub and a media loop of ``count`` calls on it, call ``i`` talking to the load peer's stream ``i``.

    Returns (hub, loop, counters): :func:`_calls`' calls, each caller and sink an RTP session of the hub.
    """
    from engine.net.g711 import PCMU
    from engine.net.rtp_hub import RtpHub
    from engine.net.rtp_session import RtpSession
    from engine.net.sdp import Negotiated
    from engine.testing.rtp_load import stream_address

    hub = RtpHub("127.0.0.1", 0, capacity=count + 16, drain_budget=4 * count + 1024, send_groups=send_groups)

    def endpoint(i: int) -> tuple[Any, Any]:
        session = RtpSession(hub, Negotiated(*stream_address(i, peer_port), PCMU, None))
        return session, session

    loop, counters = _calls(count, endpoint)
    return hub, loop, counters


def _summary(lateness_s: Any, cpu: dict[str, float], ticks: int) -> dict[str, float]:
    """p50/p99/max of ``lateness_s`` (s) and the CPU shares of one core over ``ticks`` ticks."""
    import numpy as np

    late = np.asarray(lateness_s)
    span = ticks * 0.02
    return {"p50_ms": float(np.percentile(late, 50)) * 1000, "p99_ms": float(np.percentile(late, 99)) * 1000,
            "max_ms": float(late.max()) * 1000, "missed": int((late > 0.02).sum()), "ticks": ticks,
            "samples": len(late), "cpu_share": (cpu["user"] + cpu["system"]) / span,
            "cpu_user_share": cpu["user"] / span, "cpu_system_share": cpu["system"] / span}


class _GcWatch:
    """Garbage collections while the ticks run (``gc.callbacks``): how many, and the longest pause (ms)."""

    def __init__(self) -> None:
        self.count = 0
        self.max_ms = 0.0
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.count += 1
            self.max_ms = max(self.max_ms, (time.perf_counter() - self._start) * 1000)


def _cpu() -> dict[str, float]:
    times = os.times()
    return {"user": times.user, "system": times.system}


def _measure(run_ticks: Any, warm_ticks: int, ticks: int) -> dict[str, float]:
    """Run ``run_ticks(n, record)`` twice (warm-up, measured); ``record(lateness_s)`` per tick."""
    lateness: list[float] = []
    if warm_ticks:
        run_ticks(warm_ticks, lambda _s: None)
    before = _cpu()
    run_ticks(ticks, lateness.append)
    after = _cpu()
    return _summary(lateness, {k: after[k] - before[k] for k in after}, ticks)


def _engine_trial(count: int, seconds: float, peer_port: int, groups: int, realtime: bool) -> dict[str, float]:
    """(Child.) The RTP hub carrying ``count`` calls; prints its port, then runs.

    ``groups`` 0: one thread, packets sent at the end of each tick (lateness: the tick's deadline to the return
    of its last ``sendmmsg``); else an :class:`~engine.net.rtp_sender.RtpSender` in ``groups`` send groups
    (lateness: each group's deadline to the return of its ``sendmmsg``); ``realtime``: its thread ``SCHED_FIFO``.
    """
    core = _pin(1)
    import numpy as np

    hub, loop, counters = hub_calls(count, peer_port, max(groups, 1))
    print(json.dumps({"targets": [["127.0.0.1", hub.port]] * count}), flush=True)
    gc.freeze()
    run_ticks, parts, sender = _hub_ticks(hub, loop, groups, realtime)
    ticks = int(seconds * 50)
    lateness: list[float] = []
    marks: dict[str, Any] = {}

    watch = _GcWatch()

    def mark() -> None:  # after the warm-up: the measured ticks start (one pacer for both: one schedule)
        watch.count, watch.max_ms = 0, 0.0
        parts.update(dict.fromkeys(parts, 0))
        marks.update(cpu=_cpu(), keys=counters["keys"], steal=steal_s(core))
        if sender is not None:
            sender.clear_lateness()

    fifo = _realtime()  # after the set-up, for the ticks only
    run_ticks(WARM_TICKS, ticks, mark, lateness.append)
    after = _cpu()
    cpu = {k: after[k] - marks["cpu"][k] for k in after}
    if sender is None:
        result = _summary(lateness, cpu, ticks)
    else:
        sender.stop()
        result = _summary(sender.lateness(), cpu, ticks)
        result.update(groups=groups, frame_waits=hub.outbound.waits, resyncs=sender.resyncs, realtime=sender.realtime,
                      tick_p99_ms=float(np.percentile(lateness, 99)) * 1000)
    result.update(gc_collections=watch.count, gc_max_ms=watch.max_ms, fifo=fifo,
                  steal_share=(steal_s(core) - marks["steal"]) / (ticks * 0.02))
    return {**result, **_engine_counts(hub, loop, parts, ticks, result["cpu_share"]), "calls": count,
            "keys": counters["keys"] - marks["keys"]}


def _engine_counts(hub: Any, loop: Any, parts: dict[str, int], ticks: int, cpu_share: float) -> dict[str, Any]:
    """The hub's and the media loop's counters after a trial, and the CPU ms per tick of each part."""
    media_ns = sum(parts.values())
    out: dict[str, Any] = {f"cpu_{name}_ms": ns / 1e6 / ticks for name, ns in parts.items()}
    out["cpu_sender_ms"] = max(0.0, cpu_share * 20 - media_ns / 1e6 / ticks)
    n = len(hub.sessions)
    bank = hub.bank.counters
    out.update(engine_lost=hub.stats.lost(n), engine_late=int(bank["late"][:n].sum()),
               engine_duplicate=int(bank["duplicate"][:n].sum()),
               wrong=hub.counters["unknown_source"] + hub.counters["wrong_ssrc"],
               send_errors=hub.counters["send_errors"], cpu_play_ms=loop.cpu_ns["play"] / 1e6 / loop.ticks,
               cpu_detect_ms=loop.cpu_ns["detect"] / 1e6 / loop.ticks)
    return out


def _hub_ticks(hub: Any, loop: Any, groups: int, realtime: bool) -> tuple[Any, dict[str, int], Any]:
    """``run_ticks(warm, n, mark, record)``: one pacer over hub receive, media loop and hub send.

    Also the media thread's CPU ns of each part (summed) and the sender (None: ``groups`` 0, sent at the end of
    the tick).
    """
    from engine.media.pacer import MonotonicClock, Pacer
    from engine.net.rtp_sender import RtpSender

    clock = MonotonicClock()
    parts = {"receive": 0, "loop": 0, "send": 0}
    cpu_clock = time.thread_time_ns
    # above the media thread when that one is SCHED_FIFO too (equal FIFO priorities never preempt each other)
    priority = REALTIME_PRIORITY + 1 if realtime or realtime_requested() else 0
    sender = RtpSender(hub, clock, realtime_priority=priority, lead_periods=LEAD_PERIODS) if groups else None

    def timed_loop() -> None:
        t0 = cpu_clock()
        loop.tick()
        parts["loop"] += cpu_clock() - t0

    if sender is not None:
        carried = sender.driving(timed_loop)

        def tick() -> None:  # the sender's tick; receive + prepare = the rest of the media thread's time
            t0 = cpu_clock()
            loop_before = parts["loop"]
            carried()
            parts["receive"] += cpu_clock() - t0 - (parts["loop"] - loop_before)
    else:
        def tick() -> None:  # receive, the media loop, send at the tick's end: with the CPU time of each part
            t0 = cpu_clock()
            hub.receive()
            t1 = cpu_clock()
            timed_loop()
            t2 = cpu_clock()
            hub.send()
            parts["receive"] += t1 - t0
            parts["send"] += cpu_clock() - t2

    def run_ticks(warm: int, n: int, mark: Any, record: Any) -> None:
        state = {"k": 0, "origin": None}

        def timed() -> None:
            if state["origin"] is None:
                state["origin"] = clock.now()
            if state["k"] == warm:
                mark()
            tick()
            if state["k"] >= warm:
                record(clock.now() - (state["origin"] + state["k"] * 0.02))
            state["k"] += 1

        Pacer(clock, timed, max_behind_s=1e9).run(max_ticks=warm + n)  # never re-anchored: lateness as it is

    return run_ticks, parts, sender


def _peer(targets: list[list[Any]], seconds: float, peer_port: int) -> dict[str, float]:
    _pin(0)
    from engine.testing.rtp_load import run_peer

    _realtime()
    return run_peer(len(targets), peer_port, [(h, p) for h, p in targets], seconds)


def _setup_rate(calls: int, rate: int) -> dict[str, Any]:
    """(Child.) sipp places ``calls`` calls at ``rate`` per second on a live server; its statistics."""
    import glob
    import shutil
    import statistics
    import tempfile
    from pathlib import Path

    from engine.testing.sip_server import SipServer
    from engine.testing.sipp import run_sipp

    folder = Path(tempfile.mkdtemp(prefix="ipcc-bench-sipp-"))
    server = SipServer(folder / "server")
    try:
        result = run_sipp(["-sn", "uac", f"127.0.0.1:{server.sip_port}", "-s", "10086", "-i", "127.0.0.1",
                           "-m", str(calls), "-l", str(calls), "-r", str(rate), "-d", "1000", "-timeout", "120",
                           "-trace_rtt", "-rtt_freq", "1"], folder, 300)
        rtts: list[float] = []
        for path in glob.glob(str(folder / "*_rtt.csv")):
            for line in Path(path).read_text().splitlines()[1:]:
                fields = line.split(";")
                if len(fields) >= 3 and fields[-2].replace(".", "", 1).isdigit():
                    rtts.append(float(fields[-2]))
        elapsed = result.stats.get("ElapsedTime(C)", "")
        return {"successful": result.successful, "failed": result.failed, "rate": rate,
                "median_ms": statistics.median(rtts) if rtts else None, "samples": len(rtts), "elapsed": elapsed}
    finally:
        server.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    what = sys.argv[1]
    if what == "peer":
        print(json.dumps(_peer(json.loads(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))))
    elif what == "setup":
        print(json.dumps(_setup_rate(int(sys.argv[2]), int(sys.argv[3]))))
    elif what.startswith("engine"):  # engine (sent at the end of the tick), engine-G (a sender, G groups),
        groups = int(what.partition("-")[2].removesuffix("rt") or 0)  # engine-Grt (its thread SCHED_FIFO)
        print(json.dumps(_engine_trial(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), groups,
                                       what.endswith("rt"))))
    else:
        from benchmarks.rtp_baseline import baseline_trial

        print(json.dumps(baseline_trial(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))))
    sys.stdout.flush()
