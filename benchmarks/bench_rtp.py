"""Concurrent two-way RTP calls on loopback held by one process on one core (the RTP hub), against a baseline.

Each trial runs two processes: the engine side pinned to one core — N calls on a
:class:`~engine.media.loop.MediaLoop`, each call's caller and sink an
:class:`~engine.net.rtp_session.RtpSession` of one :class:`~engine.net.rtp_hub.RtpHub` (one shared socket,
``recvmmsg``/``sendmmsg``, work per tick), every call playing speech (a TTS prompt, then a getkey order) and
detecting keys in-band — and a load peer on the other core (:mod:`engine.testing.rtp_load`: N streams from N
source ports, each pressing 5 in-band every 2 s, through one raw socket). Measured after a warm-up: the
*send lateness* of each tick (the moment its packets were handed to the kernel, minus the tick's deadline:
p50/p99/max), packets the peer never got or got out of order, packets the engine got late or lost, keys
detected. N holds when p99 send lateness < 5 ms and no packet was lost or late.

The baseline, measured in the same run with the same peer and media loop: one asyncio datagram endpoint per
call (its own socket; ``sendto`` per packet, ``datagram_received`` per packet), ticked by ``call_at`` at the
same deadlines. Needs root (raw sockets) and 2 cores.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import struct
import subprocess
import sys
import time
from collections import deque
from typing import Any

from benchmarks.common import Row

BENCH = "rtp"
HOLD_P99_S = 0.005
PEER_PORTS = (10000, 20000)  # the peer's streams: below the hub's ports and the kernel's ephemeral range


def _free_range(count: int) -> int:
    """A first port such that ``count`` consecutive UDP ports from it are free on 127.0.0.1 now."""
    import random
    import socket

    for _ in range(50):
        base = random.randrange(PEER_PORTS[0], PEER_PORTS[1] - count)
        taken = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                taken.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in taken:
                sock.close()
    raise OSError(f"no {count} consecutive free ports in {PEER_PORTS}")


def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cores[core % len(cores)]})


def _calls(count: int, make_endpoint: Any) -> tuple[Any, dict[str, int]]:
    """A media loop of ``count`` calls playing speech and collecting a key; ``make_endpoint(i)`` → (caller, sink)."""
    from engine.core.player import KeysReport, RequestReport
    from engine.core.timeline import Program
    from engine.media.call import Call
    from engine.media.loop import MediaLoop
    from engine.tts.synthesizer import synthesizer
    from engine.wire.request import parse_mult_orders

    speaker = synthesizer()
    prompts = (speaker.synthesize("Welcome to the service."), speaker.synthesize("Please press five."))
    request = parse_mult_orders({"appId": "a", "callId": "c", "orders": [
        {"playFlag": 0, "voiceStr": "w"},
        {"playFlag": 0, "voiceStr": "p", "getkey": 1, "maxRevCnt": 1, "playTime": 3, "spaceTime": 1}]})
    program = Program(request, prompts)
    counters = {"keys": 0, "requests": 0}

    def on_event(call: Call, event: object, _at: int) -> None:
        if isinstance(event, KeysReport):
            counters["keys"] += len(event.digits)
        elif isinstance(event, RequestReport):
            counters["requests"] += 1
            call.pending.append(program)

    loop = MediaLoop()
    for i in range(count):
        caller, sink = make_endpoint(i)
        call = Call("a", f"c{i}", caller, sink, on_event)
        call.submit(program)
        loop.add(call)
    return loop, counters


def _measure(run_ticks: Any, warm_ticks: int, ticks: int) -> dict[str, float]:
    """Run ``run_ticks(n, record)`` twice (warm-up, measured); ``record(lateness_s)`` per tick."""
    import numpy as np

    lateness: list[float] = []
    if warm_ticks:
        run_ticks(warm_ticks, lambda _s: None)
    cpu = time.process_time()
    run_ticks(ticks, lateness.append)
    cpu = time.process_time() - cpu
    late = np.array(lateness)
    return {"p50_ms": float(np.percentile(late, 50)) * 1000, "p99_ms": float(np.percentile(late, 99)) * 1000,
            "max_ms": float(late.max()) * 1000, "missed": int((late > 0.02).sum()), "ticks": len(late),
            "cpu_share": cpu / (len(late) * 0.02)}


def _engine_trial(count: int, seconds: float, first_port: int) -> dict[str, float]:
    """(Child.) The RTP hub carrying ``count`` calls; prints its port, then runs."""
    _pin(1)
    from engine.media.pacer import MonotonicClock, Pacer
    from engine.net.g711 import PCMU
    from engine.net.rtp_hub import RtpHub
    from engine.net.rtp_session import RtpSession
    from engine.net.sdp import Negotiated

    hub = RtpHub("127.0.0.1", 0, capacity=count + 16, drain_budget=4 * count + 1024)

    def endpoint(i: int) -> tuple[Any, Any]:
        session = RtpSession(hub, Negotiated("127.0.0.1", first_port + i, PCMU, None))
        return session, session

    loop, counters = _calls(count, endpoint)
    print(json.dumps({"targets": [["127.0.0.1", hub.port]] * count}), flush=True)
    gc.freeze()
    clock = MonotonicClock()
    parts = {"receive": 0, "loop": 0, "send": 0}
    cpu_clock = time.thread_time_ns

    def tick() -> None:  # with_rtp, with the CPU time of each part
        t0 = cpu_clock()
        hub.receive()
        t1 = cpu_clock()
        loop.tick()
        t2 = cpu_clock()
        hub.send()
        parts["receive"] += t1 - t0
        parts["loop"] += t2 - t1
        parts["send"] += cpu_clock() - t2

    def run_ticks(n: int, record: Any) -> None:
        state = {"k": 0, "origin": None}

        def timed() -> None:
            if state["origin"] is None:
                state["origin"] = clock.now()
            tick()
            record(clock.now() - (state["origin"] + state["k"] * 0.02))
            state["k"] += 1

        Pacer(clock, timed, max_behind_s=1e9).run(max_ticks=n)  # never re-anchored: lateness as it is

    counters_before = dict(counters)
    run_ticks(75, lambda _s: None)  # warm-up, then the measured ticks
    parts.update(dict.fromkeys(parts, 0))
    result = _measure(run_ticks, 0, int(seconds * 50))
    for name, ns in parts.items():
        result[f"cpu_{name}_ms"] = ns / 1e6 / result["ticks"]
    n = len(hub.sessions)
    lost = hub.stats.lost(n)
    bank = hub.bank.counters
    result.update(calls=count, keys=counters["keys"] - counters_before["keys"], engine_lost=lost,
                  engine_late=int(bank["late"][:n].sum()), engine_duplicate=int(bank["duplicate"][:n].sum()),
                  wrong=hub.counters["unknown_source"] + hub.counters["wrong_ssrc"], send_errors=hub.io.send_errors,
                  cpu_play_ms=loop.cpu_ns["play"] / 1e6 / loop.ticks,
                  cpu_detect_ms=loop.cpu_ns["detect"] / 1e6 / loop.ticks)
    return result


class _Endpoint(asyncio.DatagramProtocol):
    """(Baseline.) One call's socket: packets in (per ``datagram_received``), one out per tick (``sendto``)."""

    def __init__(self, remote: tuple[str, int]) -> None:
        import numpy as np

        from engine.net.g711 import ULAW_DECODE, ULAW_ENCODE

        self.remote = remote
        self.np, self.decode_table, self.encode_table = np, ULAW_DECODE, ULAW_ENCODE
        self.queue: deque[Any] = deque(maxlen=10)
        self.transport: Any = None
        self.seq = self.ts = 0
        self.silence = np.zeros(160, dtype=np.int16)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if len(data) >= 12 and data[0] >> 6 == 2:
            self.queue.append(self.decode_table[self.np.frombuffer(data, self.np.uint8, offset=12)])

    def read(self, count: int) -> Any:
        return self.queue.popleft() if self.queue else self.silence

    def request_started(self) -> None:
        pass

    def write(self, played: Any, heard: Any) -> None:
        header = struct.pack("!BBHII", 0x80, 0, self.seq & 0xFFFF, self.ts & 0xFFFFFFFF, 0x1234)
        self.transport.sendto(header + self.encode_table[played.view(self.np.uint16)].tobytes(), self.remote)
        self.seq += 1
        self.ts += 160

    def close(self) -> None:
        pass


def _baseline_trial(count: int, seconds: float, first_port: int) -> dict[str, float]:
    """(Child.) One asyncio datagram endpoint per call, ticked by ``call_at``."""
    _pin(1)
    aio = asyncio.new_event_loop()
    endpoints: list[_Endpoint] = []
    for i in range(count):
        _, protocol = aio.run_until_complete(aio.create_datagram_endpoint(
            lambda i=i: _Endpoint(("127.0.0.1", first_port + i)), local_addr=("127.0.0.1", 0)))
        endpoints.append(protocol)
    loop, counters = _calls(count, lambda i: (endpoints[i], endpoints[i]))
    ports = [e.transport.get_extra_info("sockname")[1] for e in endpoints]
    print(json.dumps({"targets": [["127.0.0.1", p] for p in ports]}), flush=True)
    gc.freeze()

    def run_ticks(n: int, record: Any) -> None:
        done = aio.create_future()
        origin = aio.time()

        def tick(k: int) -> None:
            loop.tick()
            record(aio.time() - (origin + k * 0.02))
            if k + 1 == n:
                done.set_result(None)
            else:
                aio.call_at(origin + (k + 1) * 0.02, tick, k + 1)

        aio.call_at(origin, tick, 0)
        aio.run_until_complete(done)

    before = counters["keys"]
    result = _measure(run_ticks, 75, int(seconds * 50))
    result.update(calls=count, keys=counters["keys"] - before, engine_lost=0, engine_late=0, wrong=0,
                  send_errors=0)
    return result


def _peer(targets: list[list[Any]], seconds: float, first_port: int) -> dict[str, float]:
    _pin(0)
    from engine.testing.rtp_load import run_peer

    return run_peer(len(targets), first_port, [(h, p) for h, p in targets], seconds)


def _spawn(kind: str, count: int, seconds: float) -> dict[str, Any]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    first_port = str(_free_range(count))
    command = [sys.executable, "-m", "benchmarks.bench_rtp", kind, str(count), str(seconds), first_port]
    engine = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert engine.stdout is not None
        first = engine.stdout.readline()
        if not first:
            raise RuntimeError(f"{kind} trial with {count} calls failed: {engine.stderr.read()[-800:]}")
        targets = json.loads(first)["targets"]
        peer = subprocess.run([sys.executable, "-m", "benchmarks.bench_rtp", "peer", json.dumps(targets),
                               str(seconds + 2.5), first_port], capture_output=True, text=True, env=env,
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
    return (f"p50 {r['p50_ms']:.2f} ms, max {r['max_ms']:.1f} ms, missed {r['missed']}/{r['ticks']} ticks; "
            f"peer got {r['peer_received']} (lost {r['peer_lost']}, out of order {r['peer_out_of_order']}); "
            f"engine lost {r['engine_lost']}, late {r['engine_late']}; {r['keys']} keys; CPU "
            f"{r['cpu_share']:.0%} of one core; peer late ticks {r['peer_peer_late_ticks']}")


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


def run(quick: bool) -> list[Row]:
    """Grow N until a trial does not hold, for the hub and for the baseline; then the sipp set-up rate."""
    if os.geteuid() != 0 or (hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) < 2):
        return [Row(BENCH, "concurrent RTP calls", None, "calls", note="needs root (raw sockets) and 2 cores")]
    seconds = 3.0 if quick else 15.0
    sizes = [1000, 2000] if quick else [1000, 2000, 3000, 4000, 5000, 6000]
    base_sizes = [400] if quick else [400, 600, 800, 1000, 1200]
    rows: list[Row] = []
    base_held = 0
    base_first: dict[str, Any] | None = None
    first: dict[str, Any] | None = None
    for count in base_sizes:
        r = _spawn("baseline", count, seconds)
        base_first = base_first or r
        ok = _holds(r)
        rows.append(Row(BENCH, f"baseline {count} calls: p99 send lateness", r["p99_ms"], "ms",
                        target="< 5 ms, 0 lost or late", met=ok, note=_note(r)))
        if not ok:
            break
        base_held = count
    held = 0
    for count in sizes:
        r = _spawn("engine", count, seconds)
        first = first or r
        ok = _holds(r)
        rows.append(Row(BENCH, f"{count} calls: p99 send lateness", r["p99_ms"], "ms", target="< 5 ms, 0 lost or late",
                        met=ok, note=_note(r)))
        if not ok:
            break
        held = count
    base_cpu = base_first["cpu_share"] * 0.02 / base_first["calls"] if base_first else None
    hub_cpu = first["cpu_share"] * 0.02 / first["calls"] if first else None
    if first and hub_cpu:
        rows.append(Row(BENCH, f"CPU per call per tick at {first['calls']} calls (process, kernel included)",
                        hub_cpu * 1e6, "µs", baseline="one asyncio datagram endpoint per call",
                        baseline_value=base_cpu * 1e6 if base_cpu else None,
                        note=f"hub receive {first['cpu_receive_ms']:.2f} ms + media loop {first['cpu_loop_ms']:.2f} ms"
                             f" + hub send {first['cpu_send_ms']:.2f} ms per tick (media thread)"))
        rows.append(Row(BENCH, "calls one core carries at that CPU cost (extrapolated, not held)",
                        round(0.02 / hub_cpu), "calls", baseline="one asyncio datagram endpoint per call",
                        baseline_value=round(0.02 / base_cpu) if base_cpu else None,
                        note="20 ms / CPU per call per tick: what a core free of other load would carry"))
    rows.append(Row(BENCH, "largest N of two-way RTP calls held (one core)", held, "calls", target=">= 2000 (aim 5000)",
                    met=held >= 2000, baseline="one asyncio datagram endpoint per call", baseline_value=base_held,
                    note=f"{seconds:g} s per trial, speech + in-band key detection on every call"))
    calls = 400 if quick else 4000
    out = subprocess.run([sys.executable, "-m", "benchmarks.bench_rtp", "setup", str(calls), "200"],
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


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    what = sys.argv[1]
    if what == "peer":
        print(json.dumps(_peer(json.loads(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))))
    elif what == "setup":
        print(json.dumps(_setup_rate(int(sys.argv[2]), int(sys.argv[3]))))
    elif what == "engine":
        print(json.dumps(_engine_trial(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))))
    else:
        print(json.dumps(_baseline_trial(int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))))
    sys.stdout.flush()
