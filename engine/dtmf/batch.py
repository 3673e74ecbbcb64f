"""Whole buffers decoded many at once: :func:`detect_keys` of each, batched across buffers of similar length.

A :class:`~engine.dtmf.detector.BatchDtmfDetector` gives every channel the events a single detector would, so
buffers side by side in one batch, each padded with silence, give :func:`detect_keys`'s events exactly; the batch
shares numpy's cost per call, which dominates for short buffers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.dtmf.analysis import SUB_SAMPLES, WINDOW_SAMPLES
from engine.dtmf.detector import BatchDtmfDetector
from engine.dtmf.event import KeyEvent, clamped

#: Silence after each buffer, as :func:`~engine.dtmf.channel.detect_keys` flushes it.
FLUSH_SAMPLES = WINDOW_SAMPLES + SUB_SAMPLES
#: Samples (rows × padded length) of one batch: bounds its memory (about 16 bytes per sample while analysed).
MAX_BATCH_SAMPLES = 1 << 20
#: Buffers in one batch are at most this much longer than its shortest (bounds the padding's cost).
MAX_LENGTH_RATIO = 1.25


def detect_keys_many(buffers: Sequence[np.ndarray]) -> list[list[KeyEvent]]:
    """:func:`~engine.dtmf.channel.detect_keys` of each 1-D int16 buffer, equal to it, computed in batches.

    Buffers are grouped by length (see :data:`MAX_BATCH_SAMPLES`, :data:`MAX_LENGTH_RATIO`); a buffer longer than
    one batch is decoded alone, as a batch of one.
    """
    order = sorted(range(len(buffers)), key=lambda i: len(buffers[i]))
    found: list[list[KeyEvent]] = [[] for _ in buffers]
    first = 0
    while first < len(order):
        shortest = len(buffers[order[first]])
        end = first + 1
        while end < len(order):
            longest = len(buffers[order[end]])
            if longest > MAX_LENGTH_RATIO * shortest + FLUSH_SAMPLES or \
                    (end - first + 1) * (longest + FLUSH_SAMPLES) > MAX_BATCH_SAMPLES:
                break
            end += 1
        group = order[first:end]
        for index, events in zip(group, _detect_batch([buffers[i] for i in group]), strict=True):
            found[index] = events
        first = end
    return found


def _detect_batch(buffers: list[np.ndarray]) -> list[list[KeyEvent]]:
    """The keys of ``buffers`` (sorted by length), side by side in one detector, each padded with silence."""
    width = len(buffers[-1]) + FLUSH_SAMPLES
    rows = np.zeros((len(buffers), width), dtype=np.int16)
    for row, samples in zip(rows, buffers, strict=True):
        row[:len(samples)] = samples
    found: list[list[KeyEvent]] = [[] for _ in buffers]
    for row, event in BatchDtmfDetector(len(buffers)).process(rows):
        found[row].append(event)
    return [clamped(events, len(samples)) for events, samples in zip(found, buffers, strict=True)]
