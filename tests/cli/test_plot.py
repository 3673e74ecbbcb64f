"""``render --plot``: the call on one time axis; the spans drawn are checked by the numbers, the PNG is written."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

from engine.admission import check_request, prepare
from engine.audio.caller import ScriptedCaller, parse_key_script
from engine.audio.library import VoiceLibrary
from engine.cli.main import main
from engine.config import default_config
from engine.core.timeline import order_start_without_keys
from engine.dtmf.channel import detect_keys
from engine.media.render import render
from engine.testing.alsa import APP, ORDERS, VOICES
from engine.testing.server import FakeSpeaker
from engine.web.picture import request_spans

REQUEST = {"appId": APP, "callId": "plot", "orders": ORDERS}


def program_of(request: dict):
    library = VoiceLibrary(Path(VOICES))
    body = httpx.Request("POST", "/", json=request).read()
    checked, app = check_request(body, default_config(), library)
    return prepare(checked, library, FakeSpeaker(), app.voice)


def test_render_plot_writes_the_png(tmp_path: Path, capsys) -> None:
    request = tmp_path / "request.json"
    request.write_text(json.dumps(REQUEST))
    out = tmp_path / "call.png"
    status = main(["render", str(request), "-o", str(tmp_path / "call.wav"), "--voices", VOICES,
                   "--keys", "2@2.5", "--plot", str(out)])
    assert status == 0
    import matplotlib.image  # here: the other tests (and the other xdist workers) need no matplotlib

    image = matplotlib.image.imread(out)
    assert image.shape[:2] == (750, 1400)
    assert image[..., :3].std() > 0.05  # not a blank page
    assert sf.info(tmp_path / "call.wav").frames > 0


def test_the_spans_are_the_timeline_cut_where_the_key_was_decided() -> None:
    program = program_of(REQUEST)
    rendered = render(program, ScriptedCaller(parse_key_script("2@2.5")))
    events = [(report.at_sample, body) for report, body in zip(rendered.reports, rendered.events, strict=True)]
    keys = detect_keys(rendered.heard)
    assert [k.key for k in keys] == ["2"]
    spans, loops, timers = request_spans(0, program, events, keys)
    starts = [order_start_without_keys(program, 0, i) for i in range(len(program.request.orders))]
    plays = [s for s in spans if s.kind == "play"]
    assert [(s.order_index, s.start) for s in plays[:2]] == [(0, starts[0]), (1, starts[1])]
    assert plays[0].end - plays[0].start == len(program.prompts[0])  # a whole play, to the sample
    collect = [s for s in spans if s.kind == "collect"]
    keys_at = next(at for at, body in events if body["event"] == "ivrreportdtmf")
    assert [(c.start, c.end) for c in collect] == [(starts[2], keys_at)]
    assert plays[-1].end == keys[0].detected_sample  # the key cut the prompt
    assert loops == [0]
    assert timers == []  # maxRevCnt ended collection before any timer ran out
    assert all(s.end <= rendered.request_samples for s in spans)
    assert np.all([s.start < s.end for s in spans])


def test_without_keys_the_total_time_timer_ends_collection() -> None:
    program = program_of(REQUEST)
    rendered = render(program)
    events = [(report.at_sample, body) for report, body in zip(rendered.reports, rendered.events, strict=True)]
    spans, _loops, timers = request_spans(0, program, events, [])
    start = order_start_without_keys(program, 0, 2)
    deadline = start + program.request.orders[2].collect.total_samples
    assert timers == [(deadline, "totalTime")]
    assert [(s.start, s.end) for s in spans if s.kind == "collect"] == [(start, deadline)]
    assert events[0][0] == deadline and events[0][1]["endReason"] == "totalTime"
