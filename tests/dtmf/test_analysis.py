"""The one-channel fast path (``features_row``, ``BatchDtmfDetector.process_one``) against the general one."""

from __future__ import annotations

import numpy as np
import pytest

from engine.dtmf import analysis as dtmf_analysis
from engine.dtmf import floats as dtmf_floats
from engine.dtmf.channel import DtmfDetector
from engine.dtmf.detector import BatchDtmfDetector, KeyEvent
from engine.dtmf.tones import KEYS, dtmf_sequence, dtmf_tone
from engine.format import dbm0_to_peak, to_int16
from engine.testing.dtmf_cases import random_tone


def _hard_signal(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` int16 samples near the detector's thresholds.

    Tones at the gate's level, noise at the strict and gate fractions, off-frequency pairs, onsets and drop-outs inside
    the blocks, speech-like harmonics.
    """
    kind = int(rng.integers(5))
    if kind == 4:  # harmonics of a voice-like fundamental
        t = np.arange(n)
        f0 = rng.uniform(80, 400)
        x = sum(rng.uniform(0, 1) * np.sin(2 * np.pi * f0 * k * t / 8000 + rng.uniform(0, 6.3)) for k in range(1, 9))
        return to_int16(x / 3 * dbm0_to_peak(float(rng.uniform(-45, 0))))
    key = str(rng.choice(list(KEYS)))
    level = float(rng.uniform(-41, -34)) if kind == 0 else float(rng.uniform(-35, 0))
    tone = random_tone(rng, key, n / 8, level_dbm0=level, twist_db=float(rng.uniform(-9, 13)),
                       freq_offset=float(rng.choice([0.0, rng.uniform(-0.045, 0.045)])))
    if kind == 1:  # an onset or drop-out anywhere
        cut = int(rng.integers(0, n))
        tone[cut:] = 0 if rng.integers(2) else tone[cut:]
        tone[:cut] = 0 if not rng.integers(2) else tone[:cut]
    noise = rng.normal(0, 1, n) * np.sqrt(np.mean(tone**2) * float(rng.uniform(0.2, 1.6)))
    return to_int16(tone + (noise if kind in (2, 3) else 0.05 * noise))


def _same(got: dtmf_floats.Lists | None, want: dtmf_floats.Lists | None) -> bool:
    if got is None or want is None:
        return got is want
    return got[:2] == want[:2] and all(np.array_equal(a, b, equal_nan=True) for a, b in zip(got, want, strict=True))


def test_features_row_equals_gate_and_features_lists_to_the_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(30)
    exact_calls = []
    exact = dtmf_floats.features_row_exact
    monkeypatch.setattr(dtmf_floats, "features_row_exact", lambda b: exact_calls.append(1) or exact(b))
    gated = 0
    for i in range(4000):
        subs = int(rng.integers(1, 9))
        blocks = _hard_signal(rng, (subs + 2) * 40).astype(np.float32).reshape(-1, 40)
        if i % 3 == 0:  # a window's energy within a hair of the gate
            energy = dtmf_analysis.block_energy(blocks)
            scale = np.sqrt(dtmf_analysis.GATE_ENERGY / max(float(np.max(energy[1:] + energy[:-1])), 1.0))
            blocks = np.round(blocks * scale * float(rng.uniform(0.9999, 1.0001))).astype(np.float32)
        got, want = dtmf_floats.features_row(blocks), exact(blocks)
        assert _same(got, want), i
        gated += want is not None
    assert gated > 2000
    assert 0 < len(exact_calls) < 400  # the float32 path decides the close calls, and only those
    monkeypatch.setattr(dtmf_floats, "_LOW", 0.5)  # every gated window too close to call: all fall back
    monkeypatch.setattr(dtmf_floats, "_HIGH", 1.5)
    for _ in range(200):
        blocks = _hard_signal(rng, 240).astype(np.float32).reshape(-1, 40)
        assert _same(dtmf_floats.features_row(blocks), exact(blocks))


def _inside(tone: np.ndarray, noise: np.ndarray, c: float, strict: bool) -> bool:
    """Whether the second window of ``tone + c · noise`` (240 samples) is strict (or gated)."""
    f = dtmf_floats.features_row_exact(to_int16(tone + c * noise).astype(np.float32).reshape(-1, 40))
    return f is not None and (f[1][1] == dtmf_analysis.STRICT if strict else f[0][1] >= 0)


def test_features_row_at_the_edges_of_the_gate_and_of_strict() -> None:
    """Signals either side of the gate (45 %) and strict (75 %) edges get the float32 path's features.

    Noise is added to a tone until a window just leaves the gate or strict: the pairs of signals either side of each
    edge are found by bisection.
    """
    rng = np.random.default_rng(32)
    cases = 0
    for i in range(120):
        tone = random_tone(rng, str(rng.choice(list(KEYS))), 30, level_dbm0=float(rng.uniform(-30, -5)))
        noise = rng.normal(0, 1, 240) * np.sqrt(np.mean(tone**2))
        strict = bool(i % 2)
        low, high = 0.0, 3.0
        if not _inside(tone, noise, low, strict) or _inside(tone, noise, high, strict):
            continue
        for _ in range(50):
            mid = (low + high) / 2
            low, high = (mid, high) if _inside(tone, noise, mid, strict) else (low, mid)
        for c in (low, high):
            blocks = to_int16(tone + c * noise).astype(np.float32).reshape(-1, 40)
            assert _same(dtmf_floats.features_row(blocks), dtmf_floats.features_row_exact(blocks))
            cases += 1
    assert cases > 150


def test_frames_fed_one_at_a_time_equal_the_general_path() -> None:
    """The fast path and the general one, alternating, give the events of the general path alone.

    The fast path takes whole sub-blocks with nothing pending; they alternate as the sizes of the pieces go. They also
    give the events of the same channel batched beside others.
    """
    rng = np.random.default_rng(31)
    parts = []
    for key in rng.choice(list(KEYS), 40):
        parts += [to_int16(dtmf_tone(str(key), float(rng.choice([20, 30, 45, 80])), float(rng.uniform(-34, -3)),
                                     float(rng.uniform(-8, 12)), float(rng.uniform(-0.03, 0.03)))),
                  _hard_signal(rng, int(rng.integers(40, 1200)))]
    x = np.concatenate(parts + [to_int16(dtmf_sequence("0123456789ABCD*#", 45, 45, -20)), np.zeros(400, np.int16)])
    x = to_int16(x + rng.normal(0, 20, len(x)))

    def events(det: DtmfDetector | BatchDtmfDetector, sizes: list[int]) -> list[tuple[str, int, int]]:
        out: list[KeyEvent] = []
        pos = i = 0
        while pos < len(x):
            piece = x[pos:pos + sizes[i % len(sizes)]]
            out += det.process(piece) if isinstance(det, DtmfDetector) else [e for _, e in det.process(piece[None])]
            pos, i = pos + len(piece), i + 1
        return [(e.key, e.start_sample, e.detected_sample) for e in out]

    general = events(BatchDtmfDetector(1), [160])
    assert len(general) > 25
    for sizes in ([160], [40], [320], [80, 160, 40], [160, 7, 153, 160, 33, 7], [400, 160, 41, 39]):
        assert events(DtmfDetector(), sizes) == general, sizes
    beside = BatchDtmfDetector(3)
    audio = np.stack([x[::-1], x, np.roll(x, 1234)])
    batched = [(e.key, e.start_sample, e.detected_sample)
               for start in range(0, len(x), 160) for c, e in beside.process(audio[:, start:start + 160]) if c == 1]
    assert batched == general
