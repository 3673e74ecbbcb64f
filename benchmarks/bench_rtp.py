"""Concurrent two-way RTP calls on loopback held by one process on one core (the RTP hub), against a baseline.

Each trial runs two processes: the engine side pinned to one core — N calls on a
:class:`~engine.media.loop.MediaLoop`, each call's caller and sink an
:class:`~engine.net.rtp_session.RtpSession` of one :class:`~engine.net.rtp_hub.RtpHub` (one shared socket,
``recvmmsg``/``sendmmsg``, work per tick), every call playing speech (a TTS prompt, then a getkey order) and
detecting keys in-band — and a load peer on the other core (:mod:`engine.testing.rtp_load`: N streams from N
loopback addresses, each pressing 5 in-band every 2 s, sent through one raw socket). Measured after a warm-up:
the *send lateness* (p50/p99/max), packets the peer never got or got out of order, packets the engine got late
or lost, keys detected, the process's CPU (user and system). N holds when p99 send lateness < 5 ms and no
packet was lost or late.

The peer's tap is charged to the engine: on loopback the kernel delivers a packet inside the sender's system
call, so the peer's receiving side runs on the engine's core. The peer therefore receives on one UDP socket
(every stream's address on the loopback device, ``IP_PKTINFO`` naming the stream each packet was sent to): a
look-up and an enqueue per packet, as a real far end's socket costs. It still counts every packet the engine
sends, per stream by sequence number (lost, out of order, duplicates), and only the engine's (its source port,
RTP of the call's payload type, a whole 20 ms packet). An earlier tap (a raw socket cloning every UDP datagram
beside a never-read socket per stream that dropped it) cost the engine's core a clone and a drop more per
packet.

Three designs, in the same run, with the same peer and media loop:

- the baseline: one asyncio datagram endpoint per call (its own socket; ``sendto`` per packet,
  ``datagram_received`` per packet), ticked by ``call_at``; lateness: the tick's deadline to the end of its
  tick (its last ``sendto``);
- the hub sending at the end of the tick (receive, media loop, encode and ``sendmmsg``, one thread); lateness:
  the tick's deadline to the return of its last ``sendmmsg``;
- the hub with its :class:`~engine.net.rtp_sender.RtpSender`: packets built two ticks ahead, sent by a thread
  at their deadlines in :data:`SEND_GROUPS` groups (a call's packets always at the same phase of the period);
  lateness: each group's deadline to the return of its ``sendmmsg`` (one sample per group per tick).

On a shared machine other processes take the trials' cores from them at random: ``IPCC_BENCH_REALTIME=1``
runs the trials' processes ``SCHED_FIFO`` (the engine side from its first measured tick, the peer, the
baseline alike; the kernel still leaves 5 % of each core to others), the rows say so. Needs root (raw
sockets) and 2 cores. The trials run in child processes (:mod:`benchmarks.rtp_trials`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from benchmarks.common import Row
from benchmarks.rtp_trials import LEAD_PERIODS, realtime_requested
from engine.net.rtp_sender import LIVE_SEND_GROUPS

BENCH = "rtp"
HOLD_P99_S = 0.005
SEND_GROUPS = LIVE_SEND_GROUPS  # the live server's: a call's packets go out at one of 8 phases of the period
PEER_PORTS = (10000, 20000)  # the peer's port: below the kernel's ephemeral range (the hub's)


def _free_port() -> int:
    """A UDP port free on every loopback address now: where the load peer's streams send from."""
    import random
    import socket

    from engine.testing.rtp_load import SO_BINDTODEVICE

    for _ in range(50):
        port = random.randrange(*PEER_PORTS)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, b"lo")
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free UDP port in {PEER_PORTS}")


def _spawn(kind: str, count: int, seconds: float) -> dict[str, Any]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    peer_port = str(_free_port())
    command = [sys.executable, "-m", "benchmarks.rtp_trials", kind, str(count), str(seconds), peer_port]
    engine = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert engine.stdout is not None
        first = engine.stdout.readline()
        if not first:
            raise RuntimeError(f"{kind} trial with {count} calls failed: {engine.stderr.read()[-800:]}")
        targets = json.loads(first)["targets"]
        peer = subprocess.run([sys.executable, "-m", "benchmarks.rtp_trials", "peer", json.dumps(targets),
                               str(seconds + 2.5), peer_port], capture_output=True, text=True, env=env,
                              timeout=seconds * 4 + 60)
        out, err = engine.communicate(timeout=seconds * 4 + 60)
    finally:
        if engine.poll() is None:
            engine.kill()
    if engine.returncode != 0 or peer.returncode != 0:
        raise RuntimeError(f"{kind} trial with {count} calls failed: {err[-800:]} {peer.stderr[-800:]}")
    return {**json.loads(out.strip().splitlines()[-1]), **{f"peer_{k}": v for k, v in
                                                         json.loads(peer.stdout.strip().splitlines()[-1]).items()}}


def _holds(r: dict[str, Any]) -> bool:
    return (r["p99_ms"] < HOLD_P99_S * 1000 and r["missed"] == 0 and r["peer_lost"] == 0
            and r["peer_out_of_order"] == 0 and r["engine_lost"] == 0 and r["engine_late"] == 0)


def _note(r: dict[str, Any]) -> str:
    return (f"p50 {r['p50_ms']:.2f} ms, max {r['max_ms']:.1f} ms, missed {r['missed']}/{r['samples']} sends; "
            f"peer got {r['peer_received']} (lost {r['peer_lost']}, out of order {r['peer_out_of_order']}); "
            f"engine lost {r['engine_lost']}, late {r['engine_late']}; {r['keys']} keys; CPU "
            f"{r['cpu_share']:.0%} of one core (user {r['cpu_user_share']:.0%}, system {r['cpu_system_share']:.0%});"
            f" peer late ticks {r['peer_peer_late_ticks']}; the hypervisor took "
            f"{r.get('steal_share', 0.0):.0%} of the core{'; SCHED_FIFO' if r.get('fifo') else ''}")


def _grow(kind: str, label: str, sizes: list[int], seconds: float, rows: list[Row]) -> tuple[int, Any]:
    """Trials of ``kind`` at growing sizes until one does not hold: (the largest held, the first trial)."""
    held, first = 0, None
    for count in sizes:
        r = _spawn(kind, count, seconds)
        first = first or r
        ok = _holds(r)
        rows.append(Row(BENCH, f"{label} {count} calls: p99 send lateness", r["p99_ms"], "ms",
                        target="< 5 ms, 0 lost or late", met=ok, note=_note(r)))
        if not ok:
            break
        held = count
    return held, first


def _cpu_rows(first: dict[str, Any], base: dict[str, Any] | None) -> list[Row]:
    per_call = first["cpu_share"] * 0.02 / first["calls"]
    base_per_call = base["cpu_share"] * 0.02 / base["calls"] if base else None
    us = 1e6 / first["calls"] * 0.02
    return [
        Row(BENCH, f"CPU per call per tick at {first['calls']} calls (process, kernel included)", per_call * 1e6,
            "µs", baseline="one asyncio datagram endpoint per call",
            baseline_value=base_per_call * 1e6 if base_per_call else None,
            note=f"user {first['cpu_user_share'] * us:.2f} µs + system {first['cpu_system_share'] * us:.2f} µs; "
                 f"media thread per tick: hub receive + build {first['cpu_receive_ms']:.2f} ms, media loop "
                 f"{first['cpu_loop_ms']:.2f} ms; sender thread {first['cpu_sender_ms']:.2f} ms (sendmmsg)"),
        Row(BENCH, "calls one core carries at that CPU cost (extrapolated, not held)", round(0.02 / per_call),
            "calls", baseline="one asyncio datagram endpoint per call",
            baseline_value=round(0.02 / base_per_call) if base_per_call else None,
            note="20 ms / CPU per call per tick: what a core free of other load would carry"),
    ]


def run(quick: bool) -> list[Row]:
    """Grow N until a trial does not hold, for each design; then the sipp set-up rate.

    The designs: the baseline, the hub sending at the end of the tick, the hub with its sender thread.
    """
    if os.geteuid() != 0 or (hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) < 2):
        return [Row(BENCH, "concurrent RTP calls", None, "calls", note="needs root (raw sockets) and 2 cores")]
    seconds = 3.0 if quick else 15.0
    rows: list[Row] = []
    base_held, base_first = _grow("baseline", "baseline", [400] if quick else [400, 600, 800, 1000, 1200],
                                  seconds, rows)
    sync_held, _ = _grow("engine", "hub, sent at the end of the tick,", [1000] if quick else [1000, 1500, 2000],
                         seconds, rows)
    held, first = _grow(f"engine-{SEND_GROUPS}", f"hub + sender ({SEND_GROUPS} groups),",
                        [1000, 2000] if quick else [1000, 1500, 2000, 2250, 2500, 3000, 4000, 5000], seconds, rows)
    if first:
        rows.extend(_cpu_rows(first, base_first))
    note = (f"{seconds:g} s per trial, speech + in-band key detection on every call; "
            f"{'SCHED_FIFO trials' if realtime_requested() else 'ordinary scheduling'}")
    rows.append(Row(BENCH, "largest N of two-way RTP calls held (one core), hub sending at the end of the tick",
                    sync_held, "calls", baseline="one asyncio datagram endpoint per call", baseline_value=base_held,
                    note=note))
    rows.append(Row(BENCH, "largest N of two-way RTP calls held (one core)", held, "calls", target=">= 2000 (aim 5000)",
                    met=held >= 2000, baseline="one asyncio datagram endpoint per call", baseline_value=base_held,
                    note=f"{note}; hub + sender thread, packets built {LEAD_PERIODS} ticks ahead, {SEND_GROUPS} send "
                         "groups"))
    rows.extend(_setup_rows(quick))
    return rows


def _setup_rows(quick: bool) -> list[Row]:
    rows: list[Row] = []
    calls = 400 if quick else 4000
    out = subprocess.run([sys.executable, "-m", "benchmarks.rtp_trials", "setup", str(calls), "200"],
                         capture_output=True, text=True, timeout=600)
    if out.returncode == 0:
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(Row(BENCH, "sipp call set-up at 200 calls/s: failed calls", r["failed"], "calls",
                        target="0 failed at >= 200 calls/s", met=r["failed"] == 0 and r["successful"] == calls,
                        note=f"{r['successful']}/{calls} calls passed (INVITE, 200, ACK, 1 s, BYE)"))
        rows.append(Row(BENCH, "sipp call set-up: median INVITE → 200 OK", r["median_ms"], "ms",
                        note=f"{r['samples']} calls; sipp's response times are whole milliseconds (0: under 1 ms)"))
    else:
        rows.append(Row(BENCH, "sipp call set-up", None, "", note=f"failed: {out.stderr[-200:]}"))
    return rows
