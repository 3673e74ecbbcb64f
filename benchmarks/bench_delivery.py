"""Event delivery: events per second to a fast local receiver, and restart time against history.

Throughput: :class:`~engine.server.delivery.Delivery` (log, then send: several calls at once, each call in
order) posting ``N`` events of 1000 calls to an acknowledging receiver in another process
(``python -m engine.testing.receivers``), timed from the first ``publish`` until the last acknowledgement.
Baseline: a plain sequential ``httpx.Client`` poster (no log) to the same receiver in the same run.

Restart: opening the state folder (``Delivery(...)``, before start) over a log of ``N`` unacknowledged
events (so no segment can be removed), for two sizes. Baseline: reading and parsing every record, as the
engine did before the segmented log (the whole history at every start-up).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.common import Row, median_seconds
from engine.server.delivery import DEFAULT_CONCURRENCY, Delivery, RetryPolicy
from engine.server.event_log import EventLog

BENCH = "delivery"
EVENT = {"event": "multrpt", "appId": "a" * 32, "callId": "c" * 32, "result": "complete",
         "timeStamp": "20240506070809123"}


def _receiver() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, "-m", "engine.testing.receivers"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def _throughput(url: str, count: int, workdir: Path) -> float:
    delivery = Delivery(workdir, {"app": url}, RetryPolicy(timeout_s=10))
    delivery.start()
    start = time.perf_counter()
    for n in range(count):
        delivery.publish("app", f"call-{n % 1000}", {**EVENT, "n": n})
    while delivery.stats()["delivered"] < count:
        time.sleep(0.005)
    seconds = time.perf_counter() - start
    delivery.close()
    return count / seconds


def _sequential_httpx(url: str, count: int) -> float:
    with httpx.Client() as client:
        start = time.perf_counter()
        for n in range(count):
            client.post(url, json={**EVENT, "n": n})
        return count / (time.perf_counter() - start)


def _history(folder: Path, count: int) -> None:
    log = EventLog(folder / "events")
    for first in range(1, count + 1, 1000):
        log.append({"seq": seq, "appId": "app", "callId": f"call-{seq % 1000}", "event": EVENT}
                   for seq in range(first, min(count, first + 999) + 1))
    log.close()


def _full_scan_s(folder: Path) -> None:
    for path in sorted((folder / "events").glob("*.log")):
        with path.open("rb") as file:
            for line in file:
                json.loads(line[9:])


def _restart_s(folder: Path) -> float:
    def once() -> None:
        Delivery(folder, {"app": "http://127.0.0.1:9/down"}).log.close()

    return median_seconds(once, repeats=3)


def run(quick: bool) -> list[Row]:
    """Rows: throughput beside the sequential poster; restart time at two history sizes beside a full scan."""
    count = 5000 if quick else 50_000
    sizes = (20_000, 200_000) if quick else (100_000, 1_000_000)
    rows = []
    process, url = _receiver()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp:
            baseline = _sequential_httpx(url, min(count, 5000))
            value = _throughput(url, count, Path(tmp) / "throughput")
        rows.append(Row(BENCH, f"{count} events of 1000 calls to a fast local receiver (concurrency "
                               f"{DEFAULT_CONCURRENCY} per application) [log + send]", value, "events/s",
                        "sequential httpx poster, no log", baseline, ">= 2000", value >= 2000,
                        note="receiver in another process, loopback; each call's events in order"))
    finally:
        assert process.stdin is not None
        process.stdin.close()
        process.wait(30)
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp:
            _history(Path(tmp), size)
            restart = _restart_s(Path(tmp))
            scan = median_seconds(lambda tmp=tmp: _full_scan_s(Path(tmp)), repeats=1)
            megabytes = sum(p.stat().st_size for p in Path(tmp).rglob("*.log")) / 1e6
        rows.append(Row(BENCH, f"restart over {size:,} unacknowledged events ({megabytes:.0f} MB of log)",
                        restart, "s", "read and parse every record (the old start-up)", scan,
                        "independent of history", None, note="opens one segment and two small files"))
    return rows


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(row)
