"""The browser phone: mouth-to-ear latency, underflows over a long call, pages one server feeds in real time.

Chromium (Debian's, headless, via Playwright) opens ``/phone`` pages of a live server in this process; each
page's call plays the voice library's prompts in a loop.

* Latency: from the moment the media thread hands frame ``n`` to the call's sink (``time.time()``) to the moment
  the page's AudioWorklet outputs its first sample (the worklet's context time, mapped to the page's clock by
  ``getOutputTimestamp``; both clocks are this machine's). Baseline, same run: the frame's arrival on the page
  (the WebSocket alone, without the jitter buffer and the audio output). Split by stage: engine → the socket's
  worker, the worker → the worklet's output (the hand-off, the playout buffer, the block and the context's
  base/output latency as Chromium reports them), the buffer's target and its adjustments. Twice: the page's
  default (the adaptive buffer starting at 60 ms) and starting at 100 ms (``?prefill=5``, the former start).
* Underflows over a 60 s call (quick: 10 s) on one page, after the start-up second; from here on the server is
  ``ipcc-engine serve`` in its own process (as deployed), the latency's server ran in this one (to read its
  frames' times).
* Pages: 1, 2, 4, 8 pages at once (quick: 1, 2, 4), each for 10 s (quick: 5 s); a page is fed in real time
  when it had no underflow and the server dropped none of its frames. The largest such count is the figure.
* The calls page's picture of a finished call at its bound (the first 5 minutes of a recording: what one picture
  request costs at most), beside the picture of a 10 s call, each drawn from a stereo recording on disk.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import Row, median_seconds
from engine.server.app import ServerSettings, create_app
from engine.testing.alsa import APP, VOICES
from engine.testing.browser import chromium, chromium_available, open_phone, serve_process, wait_page
from engine.testing.server import FakeSpeaker, LiveServer
from engine.web.call_book import CallRecord
from engine.web.calls_api import PICTURE_MAX_SAMPLES, draw_record

BENCH = "browser"
LOOP = [{"playFlag": 1, "voiceStr": "welcome.wav"}, {"playFlag": 1, "voiceStr": "menu.flac", "playTime": 50,
                                                     "spaceTime": 1}]


def _page_call(context: Any, url: str, extra: str = "") -> tuple[Any, str]:
    page, call_id = open_phone(context, url, APP, extra=extra)
    answer = httpx.post(f"{url}/ipcc/call/multOrders",
                        json={"appId": APP, "callId": call_id, "orders": LOOP}).json()
    assert answer["code"] == "000000", answer
    return page, call_id


def _latency(context: Any, server: LiveServer, seconds: float, extra: str = "") -> dict[str, Any]:
    """Per frame (after the first second): engine → page arrival, page arrival → worklet output, and the buffer."""
    page, call_id = _page_call(context, server.url, extra)
    wait_page(page, f"window.phone.frames > {int(seconds * 50)}", timeout_s=seconds + 30)
    out_at = dict(page.evaluate("Array.from(window.phone.outputAt.entries())"))
    arrived_at = dict(page.evaluate("Array.from(window.phone.arrivedAt.entries())"))
    state = page.evaluate("({base: window.phone.ctx.baseLatency, output: window.phone.ctx.outputLatency, "
                          "target: window.phone.target, adjust: window.phone.adjust, "
                          "underflows: window.phone.underflows})")
    written = dict(server.app.state.web_registry.live[call_id].written_at)
    page.close()
    steady = [seq for seq in written if seq > 50 and seq in out_at and seq in arrived_at]
    return {"ear": [out_at[seq] - written[seq] * 1000 for seq in steady],
            "wire": [arrived_at[seq] - written[seq] * 1000 for seq in steady],
            "page": [out_at[seq] - arrived_at[seq] for seq in steady], **state}


def _latency_row(what: str, got: dict[str, Any]) -> Row:
    ear, wire, page = got["ear"], got["wire"], got["page"]
    p50 = statistics.median(ear)
    adjust = got["adjust"]
    return Row(BENCH, what, p50, "ms", "frame arrival on the page (WebSocket only)", statistics.median(wire),
               "<= 120 ms", p50 <= 120,
               note=f"{len(ear)} frames; p95 {_percentile(ear, 0.95):.0f} ms; by stage (p50): engine → page "
                    f"{statistics.median(wire):.1f} ms (p95 {_percentile(wire, 0.95):.0f}), page → worklet output "
                    f"{statistics.median(page):.1f} ms (p95 {_percentile(page, 0.95):.0f}), of which the "
                    f"context's base/output latency {got['base'] * 1000:.0f}/{got['output'] * 1000:.0f} ms; "
                    f"buffer target at the end {got['target'] / 8:.0f} ms; underflows {got['underflows']}, "
                    f"grown {adjust['grown']}, decayed {adjust['decayed']}, frames skipped {adjust['skipped']}, "
                    f"silence inserted {adjust['inserted'] / 8:.0f} ms")


def _underflows(context: Any, url: str, seconds: float) -> tuple[int, int]:
    """(underflows, frames dropped by the server) over ``seconds`` after a steady second."""
    page, _call_id = _page_call(context, url)
    wait_page(page, "window.phone.frames > 50")
    before = page.evaluate("window.phone.underflows")
    frames = page.evaluate("window.phone.frames")
    wait_page(page, f"window.phone.frames > {frames + int(seconds * 50)}", timeout_s=seconds + 30)
    after = page.evaluate("window.phone.underflows")
    dropped = page.evaluate("window.phone.dropped")  # the server's count, in its status messages
    page.close()
    return after - before, dropped


def _pages(context: Any, url: str, count: int, seconds: float) -> tuple[int, int]:
    """(pages fed in real time, underflows in all) with ``count`` pages at once for ``seconds``."""
    calls = [_page_call(context, url) for _ in range(count)]
    for page, _ in calls:
        wait_page(page, "window.phone.frames > 50")
    before = [page.evaluate("window.phone.underflows") for page, _ in calls]
    dropped_before = [page.evaluate("window.phone.dropped") for page, _ in calls]
    start = calls[0][0].evaluate("window.phone.frames")
    wait_page(calls[0][0], f"window.phone.frames > {start + int(seconds * 50)}", timeout_s=seconds + 30)
    fed = underflows = 0
    for (page, _cid), u0, d0 in zip(calls, before, dropped_before, strict=True):
        lost = page.evaluate("window.phone.underflows") - u0
        dropped = page.evaluate("window.phone.dropped") - d0
        underflows += lost
        fed += lost == 0 and dropped == 0
    for page, _ in calls:
        page.close()
    return fed, underflows


def _picture_row(folder: Path, quick: bool) -> Row:
    """Draw time of the picture of a finished call at its bound, beside a 10 s call's (recordings of noise)."""
    import numpy as np

    from engine.media.sinks import write_wav

    def record(name: str, samples: int) -> CallRecord:
        noise = np.random.default_rng(0).integers(-8000, 8000, (2, samples), dtype=np.int16)
        write_wav(folder / f"{name}.wav", noise[0], noise[1])
        return CallRecord(APP, name, "wav", recording=f"{name}.wav", samples=samples, ended=True)

    folder.mkdir(parents=True, exist_ok=True)
    longest, short = record("longest", PICTURE_MAX_SAMPLES), record("short", 10 * 8000)
    repeats = 1 if quick else 3
    value = median_seconds(lambda: draw_record(longest, folder), repeats=repeats)
    baseline = median_seconds(lambda: draw_record(short, folder), repeats=repeats)
    return Row(BENCH, "calls page: picture of a finished call at its bound (first 5 min of its recording)",
               value * 1000, "ms", "the picture of a 10 s call", baseline * 1000,
               note=f"median of {repeats}; PNG {len(draw_record(longest, folder)) // 1024} KiB, drawn once per call")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(quick: bool) -> list[Row]:
    """Rows: latency (p50, p95) beside the WebSocket arrival, underflows over a long call, pages fed."""
    if not chromium_available():
        return [Row(BENCH, "browser phone", None, "", note="needs Debian's chromium and playwright")]
    long_s = 10.0 if quick else 60.0
    counts = (1, 2, 4) if quick else (1, 2, 4, 8)
    trial_s = 5.0 if quick else 10.0
    seconds = 5.0 if quick else 20.0
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-browser-") as tmp:
        settings = ServerSettings(voices=Path(VOICES), recordings=Path(tmp) / "rec", state_dir=Path(tmp) / "state")
        server = LiveServer(create_app(settings, speaker=FakeSpeaker()))
        server.app.state.web_registry.clock = time.time
        try:
            with chromium() as context:
                rows.append(_latency_row("mouth-to-ear latency p50: engine frame → AudioWorklet output "
                                         "(adaptive buffer, starts at 60 ms)", _latency(context, server, seconds)))
                rows.append(_latency_row("mouth-to-ear latency p50, buffer starting at 100 ms (?prefill=5, the "
                                         "former fixed start)", _latency(context, server, seconds, "&prefill=5")))
            server.close()  # the rest against `serve` in its own process
            with serve_process(Path(tmp) / "serve", "--voices", VOICES) as url, chromium() as context:
                lost, dropped = _underflows(context, url, long_s)
                rows.append(Row(BENCH, f"underflows over a {long_s:.0f} s call (one page)", lost, "underflows",
                                target="0", met=lost == 0 and dropped == 0, note=f"frames dropped {dropped}"))
                held = 0
                notes = []
                for count in counts:
                    fed, underflows = _pages(context, url, count, trial_s)
                    notes.append(f"{count}: {fed} fed, {underflows} underflows")
                    if fed == count:
                        held = count
                    else:
                        break
                rows.append(Row(BENCH, "pages one server feeds in real time (no underflow, no drop)", held, "pages",
                                target=">= 2 (several)", met=held >= 2,
                                note=f"{trial_s:.0f} s per trial; " + "; ".join(notes)))
        finally:
            server.close()
        rows.append(_picture_row(Path(tmp) / "pictures", quick))
    return rows
