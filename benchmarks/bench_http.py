"""multOrders requests per second on one server process, and their latency.

The server is ``ipcc-engine serve`` in its own process (real TTS, cached after the first request); the load
generator is this process: a minimal asyncio HTTP/1.1 client over keep-alive loopback connections (a
general-purpose client would measure itself). 2000 calls on the ``null`` endpoint share the requests round
robin, each request a short spoken prompt ("OK.", about 0.3 s), and the media thread plays the 2000 calls
meanwhile. At 2000 requests/s each call gets 1 request/s (0.3 s of audio per second), so the calls' queues
stay short, as in real use. (It was 500 calls before: 4 requests/s of 0.3 s prompts is 1.2 s of
audio per second per call, so every queue grew without bound — ~23,000 queued requests by the end, a heap
a real server never holds. Same targets.)

* throughput: 8 connections sending back to back (closed loop) for the duration, counting the accepted
  answers (``000000``) only; the application's request rate limit is lifted (``requestsPerSecond``), so that
  this measures the server, not its limiter (refusals are counted and shown);
* latency at a fixed rate: 2000 requests/s spread over 16 connections on a schedule (open loop), latency
  counted from each request's scheduled moment, so a stalled server is not hidden.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import Row

BENCH = "http"
APP = "bench-app"
ROOT = Path(__file__).resolve().parent.parent
CALLS = 2000  # 1 request/s per call at the fixed rate (see the module docstring)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(port: int, path: str, body: dict) -> bytes:
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bytes:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return await reader.readexactly(length)


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def _load(port: int, requests: list[bytes], connections: int, seconds: float,
                rate: float | None) -> tuple[list[float], int, float]:
    """Send ``requests`` round robin; return latencies (s), refused answers, elapsed seconds."""
    latencies: list[float] = []
    refused = 0
    start = time.perf_counter() + 0.05
    end = start + seconds

    async def worker(index: int) -> None:
        nonlocal refused
        reader, writer = await _connect(port)
        k = 0
        while True:
            if rate is None:
                scheduled = time.perf_counter()
            else:
                scheduled = start + (k * connections + index) / rate
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            if scheduled >= end:
                break
            answer = await _exchange(reader, writer, requests[(k * connections + index) % len(requests)])
            latencies.append(time.perf_counter() - scheduled)
            if b'"000000"' not in answer:
                refused += 1
            k += 1
        writer.close()

    await asyncio.gather(*(worker(i) for i in range(connections)))
    return latencies, refused, time.perf_counter() - start


def _post(port: int, path: str, body: dict) -> dict:
    async def one() -> bytes:
        reader, writer = await _connect(port)
        answer = await _exchange(reader, writer, _request(port, path, body))
        writer.close()
        return answer

    return json.loads(asyncio.run(one()))


def _start(argv: list[str], port: int) -> subprocess.Popen:
    """Start a server process and wait until it accepts connections on ``port``.

    Its stderr goes to a temporary file, not a pipe nobody reads (a server logging 64 KiB would block on a full pipe).
    """
    errors = tempfile.TemporaryFile()
    server = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=errors)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                errors.seek(0)
                tail = errors.read()[-2000:].decode(errors="replace")
                raise RuntimeError(f"the server did not start: {' '.join(argv)}\n{tail}") from None
            time.sleep(0.1)


def _stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        server.kill()


def _measure(port: int, requests: list[bytes], seconds: float) -> dict[str, float]:
    """Throughput (closed loop, 8 connections) and latency at 2000 requests/s (open loop, 16 connections)."""
    asyncio.run(_load(port, requests, 4, 1.0, None))  # warm-up: speech synthesized and cached
    fixed, refused_fixed, _ = asyncio.run(_load(port, requests, 16, seconds, 2000.0))
    lat, refused, elapsed = asyncio.run(_load(port, requests, 8, seconds, None))
    p50, p99 = (float(v) * 1000 for v in np.percentile(fixed, [50, 99]))
    t50, t99 = (float(v) * 1000 for v in np.percentile(lat, [50, 99]))
    return {"throughput": (len(lat) - refused) / elapsed, "t50": t50, "t99": t99, "p50": p50, "p99": p99,
            "refused": refused, "refused_fixed": refused_fixed, "fixed_count": len(fixed)}


def _engine(tmp: str, seconds: float) -> dict[str, float]:
    config = Path(tmp) / "bench.toml"
    config.write_text(f'[[applications]]\nappId = "{APP}"\nqueueLimit = 1000000\n'
                      'requestsPerSecond = 1000000\nrequestBurst = 1000000\n')
    port = _free_port()
    server = _start([sys.executable, "-m", "engine.cli", "serve", "--port", str(port), "--config", str(config),
                     "--state", f"{tmp}/state", "--recordings", f"{tmp}/rec", "--cache", f"{tmp}/cache",
                     "--log-level", "warning"], port)
    try:
        calls = [_post(port, "/ipcc/call/outCall", {"appId": APP, "called": "null"})["callId"]
                 for _ in range(CALLS)]
        return _measure(port, _requests(port, calls), seconds)
    finally:
        _stop(server)


def _floor(seconds: float) -> dict[str, float]:
    port = _free_port()
    server = _start([sys.executable, "-m", "benchmarks.floor_server", str(port)], port)
    try:
        return _measure(port, _requests(port, [f"call-{i}" for i in range(CALLS)]), seconds)
    finally:
        _stop(server)


def _requests(port: int, calls: list[str]) -> list[bytes]:
    order = {"playFlag": 0, "voiceStr": "OK.", "data": "bench"}
    return [_request(port, "/ipcc/call/multOrders", {"appId": APP, "callId": c, "orders": [order]}) for c in calls]


def run(quick: bool) -> list[Row]:
    """Measure the engine's server and, as the baseline, the bare stack's floor, in the same run."""
    seconds = 2.5 if quick else 15.0
    with tempfile.TemporaryDirectory() as tmp:
        engine = _engine(tmp, seconds)
    floor = _floor(seconds)
    base = "bare FastAPI/uvicorn route (parse JSON, fixed answer)"
    note = f"{seconds:g} s, server and load generator in separate processes, {os.cpu_count()} cores"
    return [
        Row(BENCH, "multOrders throughput (8 connections, closed loop)", engine["throughput"], "requests/s",
            baseline=base, baseline_value=floor["throughput"], target=">= 2000", met=engine["throughput"] >= 2000,
            note=f"{note}; latency p50 {engine['t50']:.2f} ms p99 {engine['t99']:.2f} ms; "
                 f"refused {engine['refused']:g}"),
        Row(BENCH, "multOrders p50 latency at 2000 requests/s", engine["p50"], "ms", baseline=base,
            baseline_value=floor["p50"], note=note),
        Row(BENCH, "multOrders p99 latency at 2000 requests/s", engine["p99"], "ms", baseline=base,
            baseline_value=floor["p99"], target="< 20 ms", met=engine["p99"] < 20,
            note=f"{engine['fixed_count']:g} requests, refused {engine['refused_fixed']:g}"),
    ]


if __name__ == "__main__":
    for row in run(quick="--full" not in sys.argv):
        print(row)
