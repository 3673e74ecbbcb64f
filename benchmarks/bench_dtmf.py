"""DTMF detector speed and latency, beside a plain per-channel Goertzel baseline measured in the same run.

Traffic: "IVR caller" audio — strings of 1–6 digits (80 ms tones, 80 ms gaps, −10 dBm0) separated by 1–6 s
of line noise at about −58 dBm0 (about one key per second per channel: busier than real callers). The worst
case has every channel inside a tone (200 ms tones, 40 ms gaps) at once. CPU time (``time.process_time``,
medians) with the process pinned to one core and one BLAS thread.

Rows: one channel fed 20 ms frames one at a time (× real time), one channel's whole 60 s buffer
(``detect_keys``), channels per core for batched ticks of (N, 160) frames (IVR traffic and the worst case:
``N · 20 ms / CPU time of one tick``, with the tick time against N as a series), and the median latency.
"""

from __future__ import annotations

import os

# One BLAS thread: the figures are per core, and a second BLAS thread pinned to the same core only spins.
# (Effective when this module is imported before numpy, as the benchmark runner's subprocess does.)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.common import Row, median_cpu_seconds  # noqa: E402
from engine.dtmf.channel import DtmfDetector, detect_keys
from engine.dtmf.detector import BatchDtmfDetector
from engine.dtmf.tones import KEYS, dtmf_sequence, dtmf_tone
from engine.format import FRAME_MS, SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, to_int16

BENCH = "dtmf"
ASTERISK_BLOCK_SAMPLES = 102
_FREQS_HZ = np.array([697, 770, 852, 941, 1209, 1336, 1477, 1633], dtype=np.float64)


class GoertzelBaseline:
    """Asterisk-style detector, written plainly.

    Per channel: 102-sample blocks, the Goertzel recurrence (vectorised over the 8 frequencies, a Python loop over
    samples), a key when the same strongest pair passes level and twist in two blocks in a row.
    """

    def __init__(self, channels: int) -> None:
        self.coef = 2 * np.cos(2 * np.pi * _FREQS_HZ / SAMPLE_RATE_HZ)
        self.buffers = [np.zeros(0) for _ in range(channels)]
        self.last = [-1] * channels
        self.hits = [0] * channels

    def _block(self, x: np.ndarray) -> int:
        s1 = np.zeros(8)
        s2 = np.zeros(8)
        for v in x:
            s0 = v + self.coef * s1 - s2
            s2, s1 = s1, s0
        power = s1 * s1 + s2 * s2 - self.coef * s1 * s2
        lo, hi = int(np.argmax(power[:4])), int(np.argmax(power[4:]))
        energy = float(x @ x)
        ok = (power[lo] + power[4 + hi]) > 0.5 * energy * len(x) / 2 and energy > 1e4 * len(x)
        ok = ok and 0.16 < power[4 + hi] / max(power[lo], 1e-9) < 2.5
        return lo * 4 + hi if ok else -1

    def process(self, frames: np.ndarray) -> int:
        keys = 0
        for c in range(frames.shape[0]):
            buf = np.concatenate([self.buffers[c], frames[c].astype(np.float64)])
            while len(buf) >= ASTERISK_BLOCK_SAMPLES:
                key = self._block(buf[:ASTERISK_BLOCK_SAMPLES])
                buf = buf[ASTERISK_BLOCK_SAMPLES:]
                self.hits[c] = self.hits[c] + 1 if key == self.last[c] and key >= 0 else 0
                self.last[c] = key
                keys += self.hits[c] == 1
            self.buffers[c] = buf
        return keys


def ivr_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """Digit strings in line noise, int16, ``seconds`` long."""
    rng = np.random.default_rng(seed)
    total = int(seconds * SAMPLE_RATE_HZ)
    parts, length = [], 0
    while length < total:
        for part in (rng.normal(0, 20, int(rng.uniform(1, 6) * SAMPLE_RATE_HZ)),
                     dtmf_sequence("".join(rng.choice(list(KEYS), int(rng.integers(1, 7)))), 80, 80, -10)):
            parts.append(part)
            length += len(part)
    x = np.concatenate(parts)[:total]
    return to_int16(x + rng.normal(0, 20, total))


def _frames(x: np.ndarray) -> np.ndarray:
    return x[: len(x) // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME].reshape(-1, SAMPLES_PER_FRAME)


def _fed_frames_realtime(make: Callable[[], object], x: np.ndarray, repeats: int) -> float:
    """× real time (CPU) of a fresh single-channel detector ``make()`` fed ``x`` one 20 ms frame at a time."""
    frames = _frames(x)
    rows = [f[None, :] for f in frames] if isinstance(make(), GoertzelBaseline) else list(frames)

    def feed() -> None:
        det = make()
        for frame in rows:
            det.process(frame)  # type: ignore[attr-defined]

    return len(frames) * FRAME_MS / 1000 / median_cpu_seconds(feed, repeats=repeats)


def _latency_ms(cases: int) -> float:
    rng = np.random.default_rng(1)
    out = []
    for i in range(cases):
        onset = int(rng.integers(240, 720))
        tone = dtmf_tone(KEYS[i % 16], 80, float(rng.uniform(-26, -3)), low_phase=rng.uniform(0, 6.3),
                         high_phase=rng.uniform(0, 6.3))
        events = detect_keys(to_int16(np.concatenate([np.zeros(onset), tone, np.zeros(480)])))
        out += [(ev.detected_sample - onset) * 1000 / SAMPLE_RATE_HZ for ev in events]
    return statistics.median(out)


def _batch_ticks(source: np.ndarray, channels: int, ticks: int, seed: int) -> list[np.ndarray]:
    """``ticks`` consecutive (channels, 160) frames, each channel reading ``source`` at a random offset."""
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, len(source) - SAMPLES_PER_FRAME * (ticks + 1), channels)
    idx = offsets[:, None] + np.arange(SAMPLES_PER_FRAME * ticks)[None, :]
    stream = source[idx]
    return [np.ascontiguousarray(stream[:, k * SAMPLES_PER_FRAME:(k + 1) * SAMPLES_PER_FRAME])
            for k in range(ticks)]


def _tick_seconds(det: object, ticks: list[np.ndarray], warmup: int = 2) -> float:
    """Median CPU seconds of ``det.process(tick)`` over ``ticks`` after the first ``warmup`` (state built)."""
    times = []
    for i, tick in enumerate(ticks):
        start = time.process_time()
        det.process(tick)  # type: ignore[attr-defined]
        if i >= warmup:
            times.append(time.process_time() - start)
    return statistics.median(times)


def _capacity(source: np.ndarray, channels: int, ticks: int, seed: int) -> tuple[float, float]:
    """(channels per core in real time, CPU ms per tick) of ``BatchDtmfDetector(channels)`` on ``source``."""
    t_tick = _tick_seconds(BatchDtmfDetector(channels), _batch_ticks(source, channels, ticks, seed))
    return channels * FRAME_MS / 1000 / t_tick, t_tick * 1000


def _baseline_capacity(source: np.ndarray, channels: int, seed: int) -> float:
    """Channels per core of the plain Goertzel baseline, looping over ``channels`` channels."""
    t_tick = _tick_seconds(GoertzelBaseline(channels), _batch_ticks(source, channels, 4, seed), warmup=1)
    return channels * FRAME_MS / 1000 / t_tick


def run(quick: bool) -> list[Row]:
    """Measure; ``quick`` keeps the module to about 20 s."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    repeats = 3 if quick else 7
    rows: list[Row] = []

    audio = ivr_audio(60.0)
    rt = _fed_frames_realtime(DtmfDetector, audio[: int((20 if quick else 60) * SAMPLE_RATE_HZ)], repeats)
    base_rt = _fed_frames_realtime(lambda: GoertzelBaseline(1), audio[: 4 * SAMPLE_RATE_HZ], 1)
    rows.append(Row(BENCH, "single channel fed 20 ms frames one at a time (IVR audio; CPU)", rt, "× real time",
                    "plain Goertzel (102-sample blocks)", base_rt, "≥ 2000×", rt >= 2000,
                    note=f"{1e6 * FRAME_MS / 1000 / rt:.1f} µs per frame on average"))

    t_file = median_cpu_seconds(lambda: detect_keys(audio), repeats=repeats)
    base = GoertzelBaseline(1)
    piece = audio[: 4 * SAMPLE_RATE_HZ]
    t_base = median_cpu_seconds(lambda: base.process(piece[None, :]), repeats=1)
    rows.append(Row(BENCH, f"single channel whole buffer: detect_keys on 60 s of IVR audio took {t_file * 1000:.1f} ms"
                           " CPU", 60.0 / t_file, "× real time", "plain Goertzel (102-sample blocks)", 4.0 / t_base,
                    note=f"{len(detect_keys(audio))} keys"))

    lat = _latency_ms(48 if quick else 160)
    rows.append(Row(BENCH, "median latency (detected − onset), 80 ms tones −26…−3 dBm0", lat, "ms",
                    target="≤ 40 ms", met=lat <= 40))

    traffic = ivr_audio(120.0, seed=3)
    busy = to_int16(np.tile(dtmf_sequence("159#", 200, 40, -10), 3))
    channels, ticks = 20000, 8 if quick else 20
    capacity, tick_ms = _capacity(traffic, channels, ticks, seed=4)
    base_capacity = _baseline_capacity(traffic, 40 if quick else 100, seed=4)
    rows.append(Row(BENCH, f"batched, IVR traffic: channels per core in real time ({channels} × 160 tick: "
                           f"{tick_ms:.1f} ms CPU)", capacity, "channels", "plain Goertzel, loop over channels",
                    base_capacity, "≥ 20 000", capacity >= 20000, note="N · 20 ms / CPU time of one tick (median)"))
    worst, worst_ms = _capacity(busy, channels, 6 if quick else 12, seed=5)
    base_worst = _baseline_capacity(busy, 40 if quick else 100, seed=5)
    rows.append(Row(BENCH, f"batched worst case, every channel in a tone ({channels} × 160 tick: {worst_ms:.1f} ms "
                           "CPU)", worst, "channels", "plain Goertzel, loop over channels", base_worst))

    counts = [1, 10, 100, 1000, 5000, 20000] if quick else [1, 3, 10, 30, 100, 300, 1000, 3000, 10000, 20000, 40000]
    series = {"ivr": [_capacity(traffic, n, 8, seed=6)[1] for n in counts],
              "all in tones": [_capacity(busy, n, 6, seed=7)[1] for n in counts]}
    rows.append(Row(BENCH, f"batched tick time against channels (IVR traffic; at {counts[-1]}: "
                           f"{series['ivr'][-1]:.1f} ms)", series["ivr"][-1], "ms per tick",
                    series={"x": counts, "y": {"IVR traffic": series["ivr"], "all in tones": series["all in tones"]},
                            "xlabel": "channels", "ylabel": "CPU ms per 20 ms tick", "logx": True, "logy": True,
                            "hline": FRAME_MS}))
    return rows


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
