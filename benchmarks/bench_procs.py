"""Two-way RTP calls held behind one SIP address with 1 and with 2 media worker processes (``[sip] mediaProcesses``).

Each trial runs the real server in a child process (HTTP, SIP, the event log; no callback URL, so that no
receiver shares the server's process; ``mediaProcesses = P``, one shared RTP port per worker) and a peer in another:
it sets N calls up through the server's one SIP address (INVITE with its stream's port in the SDP, 200 OK,
ACK: a minimal client on one UDP socket), then streams them from the raw load peer
(:mod:`engine.testing.rtp_load`: N streams, each pressing 5 in-band every 2 s) to the RTP port each call's
answer named. Every call plays speech and collects one key; the application (here a request hook in the
server, as a callback's ``multOrders`` would) queues the same menu again after each ``multrpt``. Measured
after a warm-up, over the same window in every process: each worker's send lateness (p99/max), its missed
frames, packets the peer never got or got out of order, packets the workers got late or lost, keys (every
call must collect one), and the CPU of the server's main process, each worker and the peer. N holds by
:mod:`benchmarks.bench_rtp`'s rule (p99 < 5 ms, 0 missed, lost or late) and a key on every call.

Nothing is pinned: on this 2-core machine the peer, the main process and the workers share both cores, and
the rows say how the CPU was split. ``IPCC_BENCH_REALTIME=1`` (as :mod:`benchmarks.bench_rtp`) sets ``[sip]
mediaPriority``: the workers' RTP sender threads ``SCHED_FIFO``. Needs root (raw sockets) and 2 cores.
``python -m benchmarks.bench_procs engine P`` and ``peer N SIP_PORT SECONDS FIRST_PORT`` are the children.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_rtp import HOLD_P99_S, _free_port
from benchmarks.common import Row
from benchmarks.rtp_trials import REALTIME_PRIORITY, realtime_requested

BENCH = "procs"
WARM_S = 2.0
MENU = "Please press five."
ENGINE_COMMAND = [sys.executable, "-m", "benchmarks.bench_procs", "engine"]  # the server's child process


def _server(processes: int) -> tuple[Any, Any, Any]:
    """The live server (HTTP, SIP, ``processes`` media workers) without a callback URL: the events go to its log."""
    from engine.config import DEMO_APP_ID, load_config
    from engine.server.app import ServerSettings, create_app
    from engine.server.sip_glue import attach_sip
    from engine.testing.server import CALM_GUARD, LiveServer, wait_for

    folder = Path(tempfile.mkdtemp(prefix="ipcc-bench-procs-"))
    welcome = {"appId": DEMO_APP_ID, "callId": "x", "orders": [
        {"playFlag": 0, "voiceStr": MENU, "getkey": 1, "maxRevCnt": 1, "playTime": 3, "spaceTime": 1}]}
    (folder / "welcome.json").write_text(json.dumps(welcome))
    (folder / "engine.toml").write_text(
        f'[[applications]]\nappId = "{DEMO_APP_ID}"\n\n[[numbers]]\nnumber = "10086"\nappId = "{DEMO_APP_ID}"\n'
        f'welcome = "welcome.json"\n\n[sip]\nmediaProcesses = {processes}\nrtpPorts = "shared"\nmaxCalls = 8192\n'
        f'mediaPriority = {REALTIME_PRIORITY if realtime_requested() else 0}\n'
        '\n[limits]\ncalls = 10000\n')
    settings = ServerSettings(config=load_config(folder / "engine.toml"), recordings=folder / "recordings",
                              state_dir=folder / "state", cache=folder / "cache", guard=CALM_GUARD)
    app = create_app(settings)
    live = LiveServer(app)
    glue = attach_sip(app.state.engine, "127.0.0.1:0")
    wait_for(lambda: glue.welcomes_ready or None, 60, "the menu to be synthesised")
    return live, glue, glue.welcomes.program(folder / "welcome.json", DEMO_APP_ID)


def _engine_child(processes: int) -> None:
    """(Child.) The server with ``processes`` media workers; ``clear``, ``report``, ``quit`` on stdin."""
    from engine.config import DEMO_APP_ID
    from engine.errors import EngineError

    live, glue, program = _server(processes)
    board = glue.engine.board
    keys: dict[str, int] = {}

    def again(call: Any, report: Any) -> None:  # the application: the menu once more after each multrpt
        if report.digits == "5":
            keys[call.call_id] = keys.get(call.call_id, 0) + 1
        if not call.hung_up:
            with contextlib.suppress(EngineError):  # the call ended meanwhile
                board.submit(DEMO_APP_ID, call.call_id, program, again)

    glue.welcomes.play = lambda _path, app_id, call_id: board.submit(app_id, call_id, program, again)
    print(json.dumps({"sip_port": glue.phone.address[1]}), flush=True)
    marks: dict[str, Any] = {}
    for line in sys.stdin:
        if line.strip() == "clear":
            for worker in glue.workers.workers:
                worker.send("clear")
            keys.clear()
            times = os.times()
            marks = {"cpu_s": times.user + times.system, "at": time.monotonic(),
                     "ticks": [w.stats.get("ticks", 0) for w in glue.workers.workers]}
        elif line.strip() == "report":
            seen = [w.stats.get("ticks", 0) for w in glue.workers.workers]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(
                    w.stats.get("ticks", 0) <= t for w, t in zip(glue.workers.workers, seen, strict=True)):
                time.sleep(0.05)  # a fresh stats report from every worker (one a second)
            times = os.times()
            span = time.monotonic() - marks["at"]
            print(json.dumps({"workers": glue.workers.stats(), "span_s": span,
                              "main_cpu_s": times.user + times.system - marks["cpu_s"],
                              "keyed_calls": len(keys), "keys": sum(keys.values()),
                              "live": len(board.live_calls()), "main_missed": board.pacer.missed}), flush=True)
        elif line.strip() == "quit":
            break
    glue.close()
    live.close()


def _offer(host: str, port: int) -> bytes:
    return (f"v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101"
            "\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\na=sendrecv\r\n").encode()


def _set_up(count: int, sip_port: int, peer_port: int, batch: int = 50) -> list[tuple[str, int]]:
    """INVITE ``count`` calls (``batch`` at a time), ACK each 200; the RTP address each answer names.

    Call ``i`` offers the address the load peer's stream ``i`` sends from (``127.1.x.y:peer_port``).
    """
    from engine.net.sip_message import parse_message
    from engine.testing.rtp_load import stream_address
    from engine.testing.sip_client import SipClient

    client = SipClient(("127.0.0.1", sip_port))
    targets: list[tuple[str, int] | None] = [None] * count
    try:
        for start in range(0, count, batch):
            waiting = set(range(start, min(count, start + batch)))
            for i in waiting:
                client.request("INVITE", f"bench-{i}", 1, _offer(*stream_address(i, peer_port)))
            client.sock.settimeout(30)
            while waiting:
                message = parse_message(client.sock.recv(65536))
                i = int(message.get("call-id").removeprefix("bench-"))
                if message.status != 200 or i not in waiting:
                    continue
                body = message.body.decode()
                host = body.split("c=IN IP4 ")[1].split()[0]
                targets[i] = (host, int(body.split("m=audio ")[1].split()[0]))
                client.request("ACK", f"bench-{i}", 1, to_tag=client.to_tag(message))
                waiting.discard(i)
    finally:
        client.close()
    return [t for t in targets if t is not None]


def _peer_child(count: int, sip_port: int, seconds: float, peer_port: int) -> None:
    """(Child.) Set the calls up, say so, stream ``seconds``; print the counts and this process's CPU."""
    from engine.testing.rtp_load import run_peer

    started = time.monotonic()
    targets = _set_up(count, sip_port, peer_port)
    print(json.dumps({"set_up": len(targets), "set_up_s": time.monotonic() - started}), flush=True)
    before = os.times()
    result = run_peer(count, peer_port, targets, seconds)
    after = os.times()
    print(json.dumps({**result, "cpu_s": after.user + after.system - before.user - before.system}), flush=True)


def _trial(count: int, processes: int, seconds: float) -> dict[str, Any]:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    log = tempfile.TemporaryFile()
    engine = subprocess.Popen([*ENGINE_COMMAND, str(processes)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    try:
        assert engine.stdin is not None and engine.stdout is not None
        first = engine.stdout.readline()
        if not first:
            log.seek(0)
            raise RuntimeError(f"the server did not start: {log.read()[-800:]!r}")
        sip_port = json.loads(first)["sip_port"]
        peer_port = _free_port()
        peer = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_procs", "peer", str(count), str(sip_port),
                                 str(seconds + WARM_S + 0.5), str(peer_port)], stdout=subprocess.PIPE, text=True,
                                env=env)
        assert peer.stdout is not None
        set_up = json.loads(peer.stdout.readline())
        time.sleep(WARM_S)  # the streams run: the warm-up, then the measured window
        engine.stdin.write("clear\n")
        engine.stdin.flush()
        peer_out, _ = peer.communicate(timeout=seconds * 4 + 120)
        engine.stdin.write("report\n")
        engine.stdin.flush()
        report = json.loads(engine.stdout.readline())
        engine.stdin.write("quit\n")
        engine.stdin.flush()
        engine.wait(60)
    finally:
        if engine.poll() is None:
            engine.kill()
    return {**report, **set_up, "peer": json.loads(peer_out.strip().splitlines()[-1]), "calls": count,
            "processes": processes}


def _figures(r: dict[str, Any]) -> dict[str, Any]:
    workers, peer, span = r["workers"], r["peer"], r["span_s"]
    return {"p99_ms": max(w["send_p99_s"] for w in workers) * 1000,
            "max_ms": max(w["send_max_s"] for w in workers) * 1000,
            "missed": sum(w["missed_since_clear"] for w in workers), "lost": sum(w["rtp_lost"] for w in workers),
            "late": sum(w["rtp_late"] for w in workers), "peer_lost": peer["lost"],
            "peer_ooo": peer["out_of_order"], "keyed": r["keyed_calls"], "main_cpu": r["main_cpu_s"] / span,
            "worker_cpu": [w["cpu_since_clear_s"] / span for w in workers], "peer_cpu": peer["cpu_s"] / span,
            "placed": [w["calls"] for w in workers]}


def _holds(f: dict[str, Any], count: int) -> bool:
    return (f["p99_ms"] < HOLD_P99_S * 1000 and f["missed"] == 0 and f["lost"] == 0 and f["late"] == 0
            and f["peer_lost"] == 0 and f["peer_ooo"] == 0 and f["keyed"] == count)


def _note(f: dict[str, Any], r: dict[str, Any]) -> str:
    cpu = " + ".join(f"{c:.0%}" for c in f["worker_cpu"])
    return (f"max {f['max_ms']:.1f} ms, missed {f['missed']}, lost {f['lost']}, late {f['late']}; peer lost "
            f"{f['peer_lost']}, out of order {f['peer_ooo']}; {f['keyed']}/{r['calls']} calls keyed "
            f"({r['keys']} keys); calls per worker {f['placed']}; CPU of a core: workers {cpu}, main process "
            f"{f['main_cpu']:.0%}, peer {f['peer_cpu']:.0%}; set-up {r['set_up_s']:.1f} s")


def _attempt(processes: int, count: int, seconds: float, rows: list[Row], attempt: int,
             measured: dict[int, dict[str, Any]]) -> bool:
    """One trial as a row (its figures in ``measured[processes]``); True when it holds."""
    case = f"{processes} media process(es), {count} calls" + (" (second trial)" if attempt else "")
    try:
        r = _trial(count, processes, seconds)
    except Exception as exc:  # noqa: BLE001 - a failed trial is a row, the others still run
        rows.append(Row(BENCH, case, None, "ms", note=str(exc)[:300]))
        return False
    f = measured[processes] = _figures(r)
    f["calls"] = count
    ok = _holds(f, count)
    rows.append(Row(BENCH, f"{case}: p99 send lateness", f["p99_ms"], "ms",
                    target="< 5 ms, 0 missed/lost/late, a key on every call", met=ok, note=_note(f, r)))
    return ok


def _grow(sizes: list[int], seconds: float, rows: list[Row], measured: dict[int, dict[str, Any]]) -> dict[int, int]:
    """Each size with 1 and with 2 processes in turn (the same moment of a shared machine), until each fails.

    A size that does not hold gets a second trial (another process's burst is not the design's limit); both
    are rows. Returns the largest N held per number of processes (``measured``: each one's last trial).
    """
    held = {1: 0, 2: 0}
    growing = [1, 2]
    for count in sizes:
        for processes in list(growing):
            if any(_attempt(processes, count, seconds, rows, attempt, measured) for attempt in (0, 1)):
                held[processes] = count
            else:
                growing.remove(processes)
        if not growing:
            break
    return held


def _cpu_rows(measured: dict[int, dict[str, Any]]) -> list[Row]:
    """The workers' CPU per call per tick in each configuration's last trial, and what two cores would carry."""
    if 1 not in measured or 2 not in measured:
        return []
    per_call = {p: sum(f["worker_cpu"]) * 20_000 / f["calls"] for p, f in measured.items()}  # µs per call per tick
    two = measured[2]
    return [Row(BENCH, f"media workers' CPU per call per tick at {two['calls']} calls, 2 processes", per_call[2],
                "µs", baseline=f"1 process at {measured[1]['calls']} calls", baseline_value=per_call[1],
                note=f"main process {two['main_cpu'] * 20_000 / two['calls']:.2f} µs per call per tick (SIP, "
                     "events, the menu's requests); the peer's CPU not counted"),
            Row(BENCH, "calls two cores of media workers carry at that CPU cost (extrapolated, not held)",
                round(2 * 20_000 / per_call[2]), "calls", baseline="one core, 1 process",
                baseline_value=round(20_000 / per_call[1]),
                note="20 ms / CPU per call per tick: cores free of the peer and other load")]


def run(quick: bool) -> list[Row]:
    """Grow N with 1 and with 2 media processes until neither holds; the largest N held of each."""
    if os.geteuid() != 0 or (hasattr(os, "sched_getaffinity") and len(os.sched_getaffinity(0)) < 2):
        return [Row(BENCH, "calls held by media processes", None, "calls", note="needs root and 2 cores")]
    seconds = 3.0 if quick else 10.0
    sizes = [200] if quick else [500, 750, 1000, 1250, 1500, 2000, 2500, 3000]
    rows: list[Row] = []
    measured: dict[int, dict[str, Any]] = {}
    held = _grow(sizes, seconds, rows, measured)
    rows.extend(_cpu_rows(measured))
    note = (f"{seconds:g} s per trial; calls set up through one SIP address; nothing pinned (the peer shares the "
            f"cores); {'workers sender threads SCHED_FIFO' if realtime_requested() else 'ordinary scheduling'}")
    rows.append(Row(BENCH, "largest N of two-way RTP calls held, 2 media processes", held[2], "calls",
                    baseline="1 media process", baseline_value=held[1], note=note))
    return rows


if __name__ == "__main__":
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if sys.argv[1] == "engine":
        _engine_child(int(sys.argv[2]))
    else:
        _peer_child(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5]))
