"""Posts naming calls that do not exist (``108105``): how fast they are refused and that they leave nothing.

The volume behind ``tests/server/test_app.py::test_unknown_calls_leave_no_state`` (300 posts there): the
server is ``ipcc-engine serve`` in its own process; this process sends 10,000 posts (2,000 with ``--quick``)
round robin to ``multOrders``, ``stoPlay`` and ``disConnect``, each with a new unknown ``callId``, over 8
keep-alive connections. Each must be answered ``108105`` (no such call) or, past the application's request
rate (the guard's token bucket), ``108102``: both are right and leave nothing. Before and after,
``/ipcc/status`` gives the live-call registry, the media thread's calls and the events kept per call: the state
the posts left must be 0. The server's resident memory is read
from ``/proc``. Baseline, in the same run: as many posts of the same bodies to the bare
FastAPI/uvicorn route (:mod:`benchmarks.floor_server`, its one ``multOrders`` route).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.bench_http import _connect, _exchange, _free_port, _request, _start, _stop
from benchmarks.common import Row
from engine.errors import BUSY, UNKNOWN_CALL

BENCH = "ghosts"
APP = "bench-app"
PATHS = ("/ipcc/call/multOrders", "/ipcc/call/stoPlay", "/ipcc/call/disConnect")
CONNECTIONS = 8
#: The right answers to a post naming an unknown call: no such call, or over the application's request rate.
FINE_CODES = (UNKNOWN_CALL, BUSY)


def _bodies(port: int, count: int) -> list[bytes]:
    order = {"playFlag": 0, "voiceStr": "OK.", "data": "bench"}
    return [_request(port, PATHS[i % len(PATHS)], {"appId": APP, "callId": f"ghost-{i}", "orders": [order]})
            for i in range(count)]


async def _send(port: int, requests: list[bytes]) -> tuple[float, Counter[str]]:
    """Send every request once over :data:`CONNECTIONS` connections; (seconds, answers by code)."""
    codes: Counter[str] = Counter()

    async def worker(index: int) -> None:
        reader, writer = await _connect(port)
        for request in requests[index::CONNECTIONS]:
            codes[json.loads(await _exchange(reader, writer, request)).get("code", "")] += 1
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(CONNECTIONS)))
    return time.perf_counter() - start, codes


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _state(port: int) -> int:
    """Live calls, held requests, queued commands, media-thread calls and calls with kept events, summed."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ipcc/status", timeout=10) as answer:
        status = json.load(answer)
    return sum(status["calls"].values()) + status["delivery"]["calls_kept"]


def _engine(tmp: str, count: int) -> dict[str, Any]:
    config = Path(tmp) / "bench.toml"
    config.write_text(f'[[applications]]\nappId = "{APP}"\n')
    port = _free_port()
    server = _start([sys.executable, "-m", "engine.cli", "serve", "--port", str(port), "--config", str(config),
                     "--state", f"{tmp}/state", "--recordings", f"{tmp}/rec", "--cache", f"{tmp}/cache",
                     "--log-level", "warning"], port)
    try:
        requests = _bodies(port, count)
        asyncio.run(_send(port, requests[:200]))  # warm-up
        state, rss = _state(port), _rss_mib(server.pid)
        seconds, codes = asyncio.run(_send(port, requests))
        return {"rate": count / seconds, "codes": codes, "state": _state(port) - state,
                "rss": _rss_mib(server.pid) - rss}
    finally:
        _stop(server)


def _floor(count: int) -> dict[str, float]:
    port = _free_port()
    server = _start([sys.executable, "-m", "benchmarks.floor_server", str(port)], port)
    try:
        requests = [r for r in _bodies(port, count) if PATHS[0].encode() in r[:40]] * len(PATHS)
        asyncio.run(_send(port, requests[:200]))
        rss = _rss_mib(server.pid)
        seconds, _ = asyncio.run(_send(port, requests))
        return {"rate": len(requests) / seconds, "rss": _rss_mib(server.pid) - rss}
    finally:
        _stop(server)


def run(quick: bool) -> list[Row]:
    """Refusal rate, state left and memory growth, beside the bare stack's."""
    count = 2000 if quick else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        engine = _engine(tmp, count)
    floor = _floor(count)
    base = "bare FastAPI/uvicorn route (parse JSON, fixed answer)"
    note = f"{count} posts to multOrders/stoPlay/disConnect, {CONNECTIONS} keep-alive connections"
    codes = engine["codes"]
    fine = sum(codes[code] for code in FINE_CODES)
    return [
        Row(BENCH, "unknown-call posts refused (108105)", engine["rate"], "requests/s", baseline=base,
            baseline_value=floor["rate"], note=f"{note}; answers by code {dict(codes)}"),
        Row(BENCH, "state left by the unknown-call posts", engine["state"], "entries", target="0",
            met=engine["state"] == 0 and fine == count,
            note="live calls, held requests, commands, media calls, calls with kept events (/ipcc/status); "
                 f"{fine} of {count} posts answered 108105 (no such call) or 108102 (the application's "
                 "request rate), the two right answers"),
        Row(BENCH, "server memory growth over the posts", engine["rss"], "MiB", baseline=base,
            baseline_value=floor["rss"], note="VmRSS after minus before"),
    ]


if __name__ == "__main__":
    for row in run(quick="--full" not in sys.argv):
        print(row)
