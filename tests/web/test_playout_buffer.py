"""The page's adaptive playout buffer (``worklet.js``), run in a real browser, block by block, time given.

The worklet's own source is loaded into a page with the two names an AudioWorklet scope provides
(``AudioWorkletProcessor``, ``registerProcessor``) and its ``PlayerProcessor`` is driven directly: frames posted
as the socket's worker posts them, 128-sample blocks rendered as the audio thread renders them. Frames are
numbered ramps, so every output sample says which frame and sample it came from.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.testing.browser import chromium, chromium_available
from engine.testing.playout import Playout, account

pytestmark = pytest.mark.skipif(not chromium_available(), reason="needs Debian's chromium and playwright")
WORKLET = Path(__file__).parents[2] / "engine" / "web" / "static" / "worklet.js"
FRAME = 160
BLOCK = 128
LOUD = 2**23  # 0.5 of full scale, as played back
SCOPE = """
var currentTime = 0, sampleRate = 8000;
class AudioWorkletProcessor {
  constructor() { this.posted = []; this.port = {postMessage: (m) => this.posted.push(m)}; }
}
function registerProcessor() {}
"""
# drive(options, plan): plan is a list of [blocks, framesPerBlock] steps; frame k holds 0.5 + (k*1000 + i + 1) / 2**24
# (i: its sample; exact in float32, loud), or 0 where `quiet` lists it; played back as integers (x * 2**24).
# Returns what was played, the skips, the final counts and the capture as the page's stopCapture() gives it.
DRIVE = """([options, plan, quiet]) => {
  const p = new PlayerProcessor({processorOptions: options});
  p.capture = true;
  const played = [], targets = [];
  let seq = 0, credit = 0;
  for (const [blocks, perBlock] of plan) {
    for (let b = 0; b < blocks; b++) {
      for (credit += perBlock; credit >= 1; credit -= 1, seq++) {
        const frame = new Float32Array(160);
        if (!quiet.includes(seq)) for (let i = 0; i < 160; i++) frame[i] = 0.5 + (seq * 1000 + i + 1) / 2 ** 24;
        p.port.onmessage({data: {seq, frame}});
      }
      const out = new Float32Array(128);
      p.process([], [[out]]);
      currentTime += 128 / 8000;
      for (const x of out) played.push(Math.round(x * 2 ** 24));
      targets.push(p.buffer.target);
    }
  }
  const skips = p.posted.filter((m) => m.skip).map((m) => [m.skip.seq, m.skip.at]);
  const ints = (frame) => Array.from(frame, (x) => Math.round(x * 2 ** 24));
  const of = (kind) => p.posted.filter((m) => m[kind] !== undefined);
  const capture = {
    captured: played, played: of("starts").flatMap((m) => m.starts.map((s) => [s[0], s[2]])),
    skipped: of("skip").map((m) => ({seq: m.skip.seq, at: m.skip.at, frame: ints(m.skip.frame)})),
    gaps: of("gap").map((m) => m.gap), underflows: of("underflowAt").map((m) => m.at),
    start: {underflows: 0, skipped: 0, inserted: 0}, end: {...p.buffer.counts, samples: played.length}};
  return {played, skips, targets, counts: p.buffer.counts, target: p.buffer.target, buffered: p.buffer.buffered,
          capture};
}"""


@pytest.fixture(scope="module")
def page() -> Iterator[Any]:
    with chromium() as context:
        page = context.new_page()
        page.add_script_tag(content=SCOPE + WORKLET.read_text())
        yield page


def drive(page: Any, options: dict[str, int], plan: list[tuple[int, float]], quiet: tuple[int, ...] = ()) -> Any:
    return page.evaluate(DRIVE, [options, plan, list(quiet)])


def frame_of(seq: int, quiet: tuple[int, ...] = ()) -> np.ndarray:
    """Frame ``seq`` as :data:`DRIVE` makes it, played back as integers."""
    return np.zeros(FRAME, np.int64) if seq in quiet else LOUD + seq * 1000 + np.arange(FRAME) + 1


def frames_of(played: list[int]) -> list[tuple[int, int]]:
    """Each non-silent output sample as (frame, sample in frame)."""
    return [((x - LOUD - 1) // 1000, (x - LOUD - 1) % 1000) for x in played if x]


def in_order(heard: list[tuple[int, int]], skipped: set[int] | frozenset[int] = frozenset()) -> list[tuple[int, int]]:
    """What ``heard`` must be: every sample of every frame but ``skipped``, in order, as long as ``heard``."""
    expected = [(k, i) for k in range(len(heard) // FRAME + len(skipped) + 1) if k not in skipped for i in range(FRAME)]
    return expected[: len(heard)]


def test_it_starts_at_its_target_and_plays_every_sample_in_order(page: Any) -> None:
    got = drive(page, {"prefill": 480}, [(200, BLOCK / FRAME)])
    first = next(i for i, x in enumerate(got["played"]) if x)
    assert first == 3 * BLOCK  # 3 frames (480 samples) are queued by the 4th block: it is the first played
    heard = frames_of(got["played"])
    assert heard == in_order(heard)
    assert got["counts"] == {"underflows": 0, "grown": 0, "decayed": 0, "skipped": 0, "inserted": 0}
    assert account(got["capture"], frame_of) == Playout(0, 156, 157, 0, 0, 0)  # (25600 - 384) / 160 whole frames


def test_an_underflow_deepens_the_target_to_cover_the_stall_and_the_same_stall_passes(page: Any) -> None:
    # steady, then 6 blocks (768 samples) without a frame, then the late frames at once, three times over
    steady = BLOCK / FRAME
    plan = [(50, steady), (6, 0), (1, 6 * steady)] * 3 + [(50, steady)]
    got = drive(page, {"prefill": 480, "calmSamples": 10**9, "windowSamples": 10**9}, plan)
    assert got["counts"]["underflows"] == 1  # the first stall only: the target grew to cover it
    assert got["counts"]["grown"] == 2  # a frame when it ran dry, then the stall's gap when the late frame came
    assert 768 + FRAME <= got["target"] <= 768 + 3 * FRAME  # the gap (blocks of 128, in frames) and a frame
    heard = frames_of(got["played"])
    assert heard == in_order(heard)  # nothing lost
    # every sample accounted for: the frames in order, and the one silence the underflow inserted, as reported
    playout = account(got["capture"], frame_of)
    [gap] = got["capture"]["gaps"]
    assert (playout.underflows, playout.skipped, playout.inserted_samples) == (1, 0, gap["samples"])
    assert gap["samples"] == got["counts"]["inserted"] > 0
    assert got["played"][gap["at"] - 1] != 0 and not any(got["played"][gap["at"] : gap["at"] + gap["samples"]])


def test_the_accounting_finds_a_sample_off_a_silence_not_reported_and_a_frame_lost(page: Any) -> None:
    steady = BLOCK / FRAME
    got = drive(page, {"prefill": 480, "calmSamples": 10**9, "windowSamples": 10**9},
                [(50, steady), (6, 0), (1, 6 * steady), (50, steady)])
    capture = got["capture"]
    account(capture, frame_of)  # as reported: every sample accounted for
    off = dict(capture, captured=list(capture["captured"]))
    off["captured"][1000] += 1
    with pytest.raises(AssertionError, match="frame 3 at 864"):
        account(off, frame_of)
    with pytest.raises(AssertionError, match="no silence reported there"):
        account(dict(capture, gaps=[]), frame_of)
    with pytest.raises(AssertionError, match="frame 20 was neither played nor skipped"):
        account(dict(capture, played=[s for s in capture["played"] if s[0] != 20]), frame_of)
    with pytest.raises(AssertionError, match="an underflow was counted and not reported"):
        account(dict(capture, end=dict(capture["end"], underflows=2)), frame_of)


def test_growth_stops_at_its_bound(page: Any) -> None:
    plan = [(50, BLOCK / FRAME), (20, 0)] * 6  # stalls of 2560 samples, longer than the bound
    got = drive(page, {"prefill": 480, "maxTarget": 1120, "calmSamples": 10**9}, plan)
    assert got["counts"]["underflows"] == 6
    assert got["counts"]["grown"] == 2  # 480 → 640 (ran dry) → 1120 (the gap, bounded), then held
    assert max(got["targets"]) == got["target"] == 1120
    heard = frames_of(got["played"])
    assert heard == in_order(heard)


def test_a_calm_decays_the_target_to_its_floor_and_no_lower(page: Any) -> None:
    got = drive(page, {"prefill": 960, "minTarget": 320, "calmSamples": 8000, "windowSamples": 10**9},
                [(1000, BLOCK / FRAME)])
    assert got["counts"]["decayed"] == 4  # 960 → 320, one frame per calm second
    assert got["target"] == 320
    assert min(got["targets"]) == 320


def test_a_buffer_above_its_target_skips_the_next_quiet_frame_and_only_that(page: Any) -> None:
    # 1440 samples arrive at once (9 frames), then real time: a whole window at least a frame over the 480 target
    plan = [(1, 9.0), (300, BLOCK / FRAME)]
    options = {"prefill": 480, "windowSamples": 1600, "maxWaitSamples": 10**9, "calmSamples": 10**9}
    got = drive(page, options, plan, quiet=(40, 41))
    assert [seq for seq, _ in got["skips"]] == [40]
    skip_at = got["skips"][0][1]
    # frame 41 (quiet) plays where 40 was cut, then frame 42
    assert got["played"][skip_at : skip_at + FRAME] == [0] * FRAME
    assert got["played"][skip_at + FRAME] == LOUD + 42 * 1000 + 1
    heard = frames_of(got["played"])
    assert heard == in_order(heard, {40, 41})  # 41 is silent: not in `heard`, but played
    assert got["counts"]["skipped"] == 1 and got["counts"]["underflows"] == 0
    playout = account(got["capture"], lambda seq: frame_of(seq, (40, 41)))
    assert (playout.skipped, playout.underflows) == (1, 0)


def test_without_a_quiet_frame_it_skips_one_frame_after_waiting(page: Any) -> None:
    plan = [(1, 12.0), (400, BLOCK / FRAME)]
    options = {"prefill": 480, "windowSamples": 1600, "maxWaitSamples": 3200, "calmSamples": 10**9}
    got = drive(page, options, plan)
    assert got["counts"]["skipped"] >= 1 and got["counts"]["underflows"] == 0
    heard = frames_of(got["played"])
    skipped = {seq for seq, _ in got["skips"]}
    assert heard == in_order(heard, skipped)
    assert got["buffered"] >= 480  # never skipped below its target


def test_after_a_decay_frames_are_skipped_until_the_level_meets_the_lower_target(page: Any) -> None:
    options = {"prefill": 960, "minTarget": 320, "calmSamples": 8000, "windowSamples": 1600, "maxWaitSamples": 1}
    got = drive(page, options, [(1000, BLOCK / FRAME)])
    assert got["target"] == 320 and got["counts"]["decayed"] == 4
    # a frame per decayed frame but one: a steady level dips below where it started by up to a frame and a block
    assert got["counts"]["skipped"] == 3 and got["counts"]["underflows"] == 0
    assert abs(got["buffered"] - 320) <= FRAME + BLOCK  # the level met the lower target
    heard = frames_of(got["played"])
    assert heard == in_order(heard, {seq for seq, _ in got["skips"]})
