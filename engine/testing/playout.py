"""What a page played, accounted frame by frame against what the engine sent (the softphone page's capture).

The page's capture (``window.phone.stopCapture()``, see ``engine/web/static/worklet.js``) holds every sample its
AudioWorklet played, where each frame started in it, each frame its playout buffer skipped (with its samples),
each underflow and the silence it inserted before playing resumed, and the buffer's counts when the capture
started and ended. :func:`account` walks the frames from the first one started in the capture to the last one
that fits in it: each frame is either played, sample for sample, exactly where the previous one ended (or where
a silence the page reported ended), or skipped where it would have started; no other sample is allowed, and
the adjustments found must be exactly the ones the page counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.format import SAMPLES_PER_FRAME

_N = SAMPLES_PER_FRAME


@dataclass(frozen=True)
class Playout:
    """The accounting of one capture: frames played exactly, skipped, the underflows and the silence they inserted.

    ``first_seq``/``last_seq``: the frames walked (inclusive); ``inserted_samples``: silence after underflows.
    """

    first_seq: int
    last_seq: int
    played: int
    skipped: int
    underflows: int
    inserted_samples: int


def _delta(capture: dict[str, Any], name: str) -> int:
    return int(capture["end"][name]) - int(capture["start"][name])


def account(capture: dict[str, Any], frame_of: Callable[[int], np.ndarray]) -> Playout:
    """Account for every sample of ``capture`` between its first and last whole frame; AssertionError if one is off.

    ``frame_of(seq)``: the 160 samples the engine sent as frame ``seq`` (int16 values).
    """
    captured = np.asarray(capture["captured"], dtype=np.int64)
    starts = {int(seq): int(at) for seq, at in capture["played"] if int(at) + _N <= len(captured)}
    skips = {int(s["seq"]): s for s in capture["skipped"]}
    gaps = {int(g["at"]): int(g["samples"]) for g in capture["gaps"] if int(g["at"]) >= 0}
    assert starts, "no whole frame was played in the capture"
    first, last = min(starts), max(starts)
    position = starts[first]
    used_gaps: list[int] = []
    skipped = 0
    for seq in range(first, last + 1):
        want = np.asarray(frame_of(seq), dtype=np.int64)
        if seq in skips:
            skip = skips[seq]
            assert int(skip["at"]) == position, f"frame {seq} was skipped at {skip['at']}, not at {position}"
            np.testing.assert_array_equal(np.asarray(skip["frame"], dtype=np.int64), want, f"skipped frame {seq}")
            skipped += 1
            continue
        assert seq in starts, f"frame {seq} was neither played nor skipped"
        at = starts[seq]
        if at != position:
            assert gaps.get(position) == at - position, \
                f"frame {seq} starts at {at}, {at - position} samples after {position}: no silence reported there"
            assert not captured[position:at].any(), f"the silence before frame {seq} is not silent"
            used_gaps.append(position)
        np.testing.assert_array_equal(captured[at : at + _N], want, f"frame {seq} at {at}")
        position = at + _N
    inside = [at for at in gaps if starts[first] <= at < position]
    assert sorted(used_gaps) == sorted(inside), f"silences reported at {inside}, found at {used_gaps}"
    underflows = [int(at) for at in capture["underflows"]]
    assert sorted(used_gaps) == sorted(u for u in underflows if starts[first] <= u < position), \
        f"underflows at {underflows}, silences at {used_gaps}"
    # what the page counted over the capture is what was reported in it
    assert _delta(capture, "skipped") == len(capture["skipped"]), "a skip was counted and not reported"
    assert _delta(capture, "underflows") == len(underflows), "an underflow was counted and not reported"
    assert _delta(capture, "inserted") == sum(int(g["samples"]) for g in capture["gaps"])
    assert int(capture["end"]["samples"]) == len(captured), "blocks of the capture were lost"
    return Playout(first, last, last - first + 1 - skipped, skipped, len(used_gaps), sum(gaps[at] for at in used_gaps))
