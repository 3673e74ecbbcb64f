"""DTMF detector speed and latency, beside a plain per-channel Goertzel baseline measured in the same run.

Traffic: "IVR caller" audio — strings of 1–6 digits (80 ms tones, 80 ms gaps, −10 dBm0) separated by 1–6 s
of line noise at about −58 dBm0 (about one key per second per channel: busier than real callers). CPU time
(``time.process_time``) with the process pinned to one core and one BLAS thread.

Batched capacity is extrapolated: the CPU time of one (N, 160) tick at N = 20 000 gives channels per core
held in real time as ``N · 20 ms / tick time``.
"""

from __future__ import annotations

import os

# One BLAS thread: the figures are per core, and a second BLAS thread pinned to the same core only spins.
# (Effective when this module is imported before numpy, as the benchmark runner's subprocess does.)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.common import Row, median_cpu_seconds  # noqa: E402
from engine.dtmf import BatchDtmfDetector, DtmfDetector, detect_keys
from engine.format import FRAME_MS, SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, to_int16
from engine.tones import KEYS, dtmf_sequence, dtmf_tone

BENCH = "dtmf"
ASTERISK_BLOCK_SAMPLES = 102
_FREQS_HZ = np.array([697, 770, 852, 941, 1209, 1336, 1477, 1633], dtype=np.float64)


class GoertzelBaseline:
    """Asterisk-style detector, written plainly: per channel, 102-sample blocks, the Goertzel recurrence
    (vectorised over the 8 frequencies, a Python loop over samples), a key when the same strongest pair
    passes level and twist in two blocks in a row."""

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


def _single_realtime(x: np.ndarray, repeats: int) -> float:
    frames = x[: len(x) // SAMPLES_PER_FRAME * SAMPLES_PER_FRAME].reshape(-1, SAMPLES_PER_FRAME)

    def feed() -> None:
        det = DtmfDetector()
        for frame in frames:
            det.process(frame)

    return len(x) / SAMPLE_RATE_HZ / median_cpu_seconds(feed, repeats=repeats)


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


def _tick_seconds(det: object, ticks: list[np.ndarray]) -> float:
    start = time.process_time()
    for tick in ticks:
        det.process(tick)  # type: ignore[attr-defined]
    return (time.process_time() - start) / len(ticks)


def _batch_ticks(source: np.ndarray, channels: int, ticks: int, seed: int) -> list[np.ndarray]:
    """``ticks`` consecutive (channels, 160) frames, each channel reading ``source`` at a random offset."""
    rng = np.random.default_rng(seed)
    offsets = rng.integers(0, len(source) - SAMPLES_PER_FRAME * (ticks + 1), channels)
    idx = offsets[:, None] + np.arange(SAMPLES_PER_FRAME * ticks)[None, :]
    stream = source[idx]
    return [np.ascontiguousarray(stream[:, k * SAMPLES_PER_FRAME:(k + 1) * SAMPLES_PER_FRAME])
            for k in range(ticks)]


def run(quick: bool) -> list[Row]:
    """Measure; ``quick`` keeps the module to about 15 s."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    seconds = 20.0 if quick else 60.0
    audio = ivr_audio(seconds)
    rows: list[Row] = []

    rt = _single_realtime(audio, 1 if quick else 3)
    base_frames = audio[: int(4 * SAMPLE_RATE_HZ)].reshape(-1, SAMPLES_PER_FRAME)
    base = GoertzelBaseline(1)
    base_rt = 4.0 / (_tick_seconds(base, [f[None, :] for f in base_frames]) * len(base_frames))
    rows.append(Row(BENCH, f"single channel, 20 ms frames, {seconds:.0f} s IVR audio", rt, "× real time",
                    "plain Goertzel (102-sample blocks)", base_rt, "≥ 2000×", rt >= 2000))

    keys_audio = ivr_audio(60.0, seed=2)
    t_file = median_cpu_seconds(lambda: detect_keys(keys_audio), repeats=1 if quick else 3)
    rows.append(Row(BENCH, "detect_keys on a 60 s file", t_file, "s", note=f"{len(detect_keys(keys_audio))} keys"))

    lat = _latency_ms(48 if quick else 160)
    rows.append(Row(BENCH, "median latency (detected − onset), 80 ms tones −26…−3 dBm0", lat, "ms",
                    target="≤ 40 ms", met=lat <= 40))

    channels = 20000
    ticks = _batch_ticks(ivr_audio(120.0, seed=3), channels, 6 if quick else 20, seed=4)
    det = BatchDtmfDetector(channels)
    det.process(ticks[0])
    t_tick = _tick_seconds(det, ticks[1:])
    capacity = channels * FRAME_MS / 1000 / t_tick
    base_channels = 40 if quick else 100
    base_ticks = [t[:base_channels] for t in ticks[:3]]
    base_det = GoertzelBaseline(base_channels)
    base_capacity = base_channels * FRAME_MS / 1000 / _tick_seconds(base_det, base_ticks)
    rows.append(Row(BENCH, f"batched: channels per core in real time (tick of {channels} × 160 took "
                           f"{t_tick * 1000:.1f} ms; IVR traffic)", capacity, "channels",
                    "plain Goertzel, loop over channels", base_capacity, "≥ 20 000", capacity >= 20000,
                    note="extrapolated from the CPU time of one tick"))

    # worst case: every channel inside a tone at once
    tone = to_int16(np.tile(dtmf_sequence("159#", 200, 40, -10), 3))
    busy = _batch_ticks(tone, channels, 4, seed=5)
    det = BatchDtmfDetector(channels)
    det.process(busy[0])
    t_busy = _tick_seconds(det, busy[1:])
    rows.append(Row(BENCH, f"batched worst case: all {channels} channels in tones (tick {t_busy * 1000:.1f} ms)",
                    channels * FRAME_MS / 1000 / t_busy, "channels", note="extrapolated from one tick"))
    return rows


if __name__ == "__main__":
    for row in run(quick=True):
        print(row)
