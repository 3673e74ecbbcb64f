"""RunSources: the frames of quiet runs gathered by the audio they are views of, one index per source per tick."""

from __future__ import annotations

import numpy as np

from engine.core.quiet import QuietFrames
from engine.format import SAMPLES_PER_FRAME, SILENT_FRAME
from engine.media.run_sources import MIN_GATHERED, RunSources

F = SAMPLES_PER_FRAME


def _prompt(length: int, seed: int) -> np.ndarray:
    samples = np.random.default_rng(seed).integers(-9000, 9000, length).astype(np.int16)
    samples.flags.writeable = False
    return samples


def _run(audio: np.ndarray, first_sample: int, frames: int) -> QuietFrames:
    return QuietFrames(audio[first_sample : first_sample + frames * F].reshape(frames, F), audio, first_sample, F)


def _silence(frames: int) -> QuietFrames:
    return QuietFrames(np.broadcast_to(SILENT_FRAME, (frames, F)), SILENT_FRAME, 0, 0)


def test_rows_on_shared_sources_are_gathered_and_the_rest_left_to_the_caller_in_row_order() -> None:
    a, b = _prompt(60 * F + 3, 1), _prompt(40 * F, 2)
    runs: dict[int, tuple[QuietFrames, int]] = {}
    for row in range(MIN_GATHERED):
        runs[row] = (_run(a, 7 * row, 30), row % 3)  # one source, each its own offset and start tick
    for row in range(MIN_GATHERED, 2 * MIN_GATHERED):
        runs[row] = (_silence(30), 0)
    runs[40] = (_run(b, 2 * F, 30), 1)  # fewer rows than MIN_GATHERED on b
    stereo = np.zeros((40 * F, 2), dtype=np.int16)
    runs[41] = (QuietFrames(np.zeros((30, F), np.int16), stereo, 0, F), 2)  # not 1-D: never a source
    runs[42] = (QuietFrames(np.zeros((30, F), np.int16), b, 20 * F, F), 0)  # past the end of its audio: none
    sources = RunSources()
    sources.fit(50)
    for row, (quiet, start) in runs.items():
        sources.begin(row, quiet, start)
    assert len(sources) == 3  # a, the silent frame, b
    rows = np.array(sorted(runs))
    for tick in range(3, 20):
        played = np.full((50, F), 7, dtype=np.int16)
        left = sources.gather(rows, tick, played)
        assert left == [40, 41, 42]
        for row, (quiet, start) in runs.items():
            if row not in left:
                assert np.array_equal(played[row], quiet.samples[tick - start]), (row, tick)
        assert (played[left] == 7).all()  # untouched
    assert sources.gathered == 17 * 2 * MIN_GATHERED


def test_a_source_is_let_go_when_its_last_run_ends() -> None:
    a = _prompt(40 * F, 3)
    sources = RunSources()
    sources.fit(MIN_GATHERED + 1)
    for row in range(MIN_GATHERED + 1):
        sources.begin(row, _run(a, row, 20), 0)
    sources.begin(MIN_GATHERED, _silence(20), 0)  # a row's new run replaces its old one
    assert len(sources) == 2
    for row in range(MIN_GATHERED):
        sources.end(row)
    assert len(sources) == 1
    sources.end(MIN_GATHERED)
    sources.end(MIN_GATHERED)  # (twice: nothing more)
    assert len(sources) == 0
    played = np.zeros((MIN_GATHERED + 1, F), dtype=np.int16)
    assert sources.gather(np.arange(MIN_GATHERED + 1), 5, played) == list(range(MIN_GATHERED + 1))
