"""Where the RTP hub's tick goes at N calls: the media thread's CPU time of each part, in one process.

``python -m benchmarks.rtp_parts N [TICKS]`` (root: the raw load peer) pins itself to one core and runs
:mod:`benchmarks.rtp_trials`' calls (speech, a key collected, in-band keys from the peer) on an
:class:`~engine.net.rtp_hub.RtpHub` fed by an in-process :class:`~engine.testing.rtp_load.RawLoadPeer`, tick after
tick as fast as they go (no pacing, no sender thread), and prints the CPU µs per tick of each part: receive
(drain, place, play out of the jitter buffers), the media loop's play, hear and detect passes, prepare (encode and
headers) and flush (``sendmmsg``, which on loopback also delivers every packet to the peer's socket). The peer's
own sending and draining run between the parts and are not counted. Not a row of the table: a profile, to
compare two trees on the same machine in the same minutes.
"""

from __future__ import annotations

import gc
import os
import sys
import time


def _parts(count: int, ticks: int) -> dict[str, float]:
    from benchmarks.bench_rtp import SEND_GROUPS, _free_port
    from benchmarks.rtp_trials import hub_calls
    from engine.testing.rtp_load import RawLoadPeer

    port = _free_port()
    hub, loop, _counters = hub_calls(count, port, SEND_GROUPS)
    peer = RawLoadPeer(count, port, [("127.0.0.1", hub.port)] * count)
    gc.freeze()
    clock = time.thread_time_ns
    spent = dict.fromkeys(("receive", "prepare", "flush"), 0)
    for k in range(60 + ticks):
        if k == 60:  # warmed up: count from here
            spent = dict.fromkeys(spent, 0)
            loop_before = dict(loop.cpu_ns)
        peer.send_tick()
        t0 = clock()
        hub.receive()
        t1 = clock()
        loop.tick()
        t2 = clock()
        hub.prepare()
        t3 = clock()
        hub.flush()
        t4 = clock()
        peer.drain()
        spent["receive"] += t1 - t0
        spent["prepare"] += t3 - t2
        spent["flush"] += t4 - t3
    out = {name: ns / ticks / 1e3 for name, ns in spent.items()}
    out.update({f"loop {name}": (loop.cpu_ns[name] - loop_before[name]) / ticks / 1e3 for name in loop.cpu_ns})
    hub.close()
    return out


def main() -> None:
    """Print each part's CPU µs per tick."""
    count = int(sys.argv[1])
    ticks = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})
    for name, us in _parts(count, ticks).items():
        print(f"{name:14s} {us:8.1f} µs/tick")


if __name__ == "__main__":
    main()
