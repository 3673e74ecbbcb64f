"""A call's picture by the numbers: requests one after another each up to its own ``multrpt``; long waveforms."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np

from engine.admission import check_request, prepare
from engine.audio.library import VoiceLibrary
from engine.config import default_config
from engine.core.timeline import Program
from engine.testing.alsa import APP, VOICES
from engine.testing.server import FakeSpeaker
from engine.web.call_book import light_program
from engine.web.picture import events_by_request, request_spans, waveform_points


def program_of(orders: list[dict]) -> Program:
    library = VoiceLibrary(Path(VOICES))
    body = httpx.Request("POST", "/", json={"appId": APP, "callId": "p", "orders": orders}).read()
    checked, app = check_request(body, default_config(), library)
    return prepare(checked, library, FakeSpeaker(), app.voice)


def test_a_request_ending_where_the_next_starts_leaves_the_next_its_own_spans() -> None:
    first = light_program(program_of([{"playFlag": 1, "voiceStr": "welcome.wav"}]))
    second = light_program(program_of([{"playFlag": 1, "voiceStr": "beep.wav", "playTime": 2, "spaceTime": 1}]))
    end = first.samples_without_keys  # the first multrpt falls on the second request's start sample
    events = [(end, {"event": "multrpt", "result": "complete"}),
              (end + second.samples_without_keys, {"event": "multrpt", "result": "complete"}),
              (end + second.samples_without_keys, {"event": "messagerpt"})]
    shares = events_by_request(events, 2)
    assert shares == [events[:1], events[1:2]]
    spans, loops, _timers = request_spans(end, second, shares[1], [])
    assert [(s.kind, s.start, s.end) for s in spans] == [
        ("play", end, end + 4000), ("gap", end + 4000, end + 12000), ("play", end + 12000, end + 16000)]
    assert loops == [end]
    # what the first request's events alone would have given the second: nothing (the old way of reading them)
    assert request_spans(end, second, events, [])[0] == []


def test_a_long_waveform_is_drawn_as_its_envelope_and_a_short_one_sample_for_sample() -> None:
    audio = np.random.default_rng(1).integers(-30000, 30000, 100_003).astype(np.int16)
    t, y = waveform_points(audio, columns=1000)
    assert len(t) == len(y) == 2000
    edges = np.linspace(0, len(audio), 1001).astype(np.int64)
    for k in (0, 1, 500, 999):  # each stretch's minimum then maximum, at the stretch's middle
        stretch = audio[edges[k] : edges[k + 1]]
        assert (y[2 * k], y[2 * k + 1]) == (stretch.min(), stretch.max())
        assert t[2 * k] == t[2 * k + 1] == (edges[k] + edges[k + 1]) / 2
    assert (y.min(), y.max()) == (audio.min(), audio.max())
    short = audio[:4000]
    t, y = waveform_points(short, columns=1000)
    assert t.tolist() == list(range(4000)) and y.tolist() == short.tolist()
