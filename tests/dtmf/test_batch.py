"""Whole buffers decoded many at once equal :func:`detect_keys` of each, whatever their lengths and grouping."""

from __future__ import annotations

import numpy as np
import pytest

import engine.dtmf.batch
from engine.dtmf.batch import detect_keys_many
from engine.dtmf.channel import detect_keys
from engine.testing.dtmf_cases import recording


@pytest.mark.parametrize("max_batch_samples", [1 << 20, 30000])
def test_batched_buffers_equal_detect_keys_of_each(monkeypatch: pytest.MonkeyPatch, max_batch_samples: int) -> None:
    monkeypatch.setattr(engine.dtmf.batch, "MAX_BATCH_SAMPLES", max_batch_samples)
    rng = np.random.default_rng(40)
    buffers = [np.zeros(0, np.int16), np.zeros(17, np.int16)]
    for _ in range(120):
        seconds = float(rng.choice([0.25, 0.3, 0.5, 1.2, 4.0]))
        keys = "".join(rng.choice(list("0123456789*#ABCD"), int(rng.integers(0, int(seconds * 5) + 1))))
        samples, starts = recording(rng, seconds, keys, level_dbm0=float(rng.uniform(-26, -3)))
        cut = starts[-1] + int(rng.integers(250, 300)) if keys and rng.random() < 0.3 else len(samples)
        buffers.append(samples[:cut])  # some end inside their last tone
    many = detect_keys_many(buffers)
    each = [detect_keys(b) for b in buffers]
    assert many == each
    assert sum(map(len, each)) > 150 and any(e.detected_sample == len(b) for b, ev in zip(buffers, each, strict=True)
                                             for e in ev)
