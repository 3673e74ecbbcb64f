"""The softphone page in a real browser (Debian's Chromium via Playwright) against a live server.

What the page played is read back from its AudioWorklet (every rendered block) and compared with ``render`` of
the same request frame by frame (:func:`engine.testing.playout.account`): every frame sample for sample, but
those the page's playout buffer reports having skipped, and the silence it reports having inserted after an
underflow, nothing else; keys pressed on the page and keys in the fake
microphone's WAV come back through the in-band detector as collected keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from engine.admission import check_request, prepare
from engine.audio.library import VoiceLibrary
from engine.config import default_config
from engine.dtmf.channel import detect_keys
from engine.dtmf.tones import dtmf_tone
from engine.format import SAMPLE_RATE_HZ, SAMPLES_PER_FRAME, SILENT_FRAME, ms_to_samples, to_int16
from engine.media.render import render
from engine.testing.alsa import APP, VOICES
from engine.testing.browser import (
    chromium,
    chromium_available,
    open_phone,
    open_phones,
    serve_process,
    wait_page,
)
from engine.testing.playout import account
from engine.testing.server import FakeSpeaker, wait_events

pytestmark = pytest.mark.skipif(not chromium_available(), reason="needs Debian's chromium and playwright")
PROMPT = [{"playFlag": 1, "voiceStr": "welcome.wav"}, {"playFlag": 1, "voiceStr": "beep.wav"}]
FRAMES_PER_SECOND = SAMPLE_RATE_HZ // SAMPLES_PER_FRAME
MENU = [{"playFlag": 1, "voiceStr": "menu.flac", "getkey": 1, "maxRevCnt": 2, "spaceTime": 3, "totalTime": 20}]


@dataclass
class Server:
    url: str


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with serve_process(tmp_path / "server", "--voices", VOICES) as url:
        yield Server(url)


def rendered(orders: list[dict]) -> np.ndarray:
    library = VoiceLibrary(Path(VOICES))
    body = httpx.Request("POST", "/", json={"appId": APP, "callId": "x", "orders": orders}).read()
    request, app = check_request(body, default_config(), library)
    return render(prepare(request, library, FakeSpeaker(), app.voice)).played


def mult_orders(server: Server, call_id: str, orders: list[dict]) -> None:
    answer = httpx.post(f"{server.url}/ipcc/call/multOrders",
                        json={"appId": APP, "callId": call_id, "orders": orders}).json()
    assert answer["code"] == "000000", answer


def test_several_pages_play_their_prompt_sample_for_sample_every_adjustment_accounted(
        server: Server, tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    expected = rendered(PROMPT)  # whole frames
    length = len(expected) // SAMPLES_PER_FRAME
    with chromium() as context:
        # the page's own defaults: the adaptive playout buffer from 60 ms, growing on underflow, skipping to shrink
        pages = open_phones(context, server.url, APP, 3)
        for page, call_id in pages:
            page.evaluate("window.phone.startCapture()")
            mult_orders(server, call_id, PROMPT)
        for index, (page, _call_id) in enumerate(pages):
            wait_page(page, "window.phone.events.some((m) => m.event.event === 'multrpt')")
            first = round(page.evaluate("window.phone.requests[0]") * FRAMES_PER_SECOND)  # the request's first frame
            # the page has played the request and a few frames of the silence after it
            wait_page(page, f"window.phone.playedAt.some(([seq]) => seq >= {first + length + 3})")
            capture = page.evaluate("window.phone.stopCapture()")

            def frame_of(seq: int, first: int = first) -> np.ndarray:  # the engine's frame: the request, else silence
                k = seq - first
                return expected[k * SAMPLES_PER_FRAME : (k + 1) * SAMPLES_PER_FRAME] if 0 <= k < length else \
                    SILENT_FRAME

            # every sample the page played is the engine's, frame by frame, but where the page reports an adjustment
            playout = account(capture, frame_of)
            assert playout.first_seq < first and playout.last_seq >= first + length  # the whole request and around it
            record_property(f"page {index}", str(playout))  # a plain string: xdist sends it
            print(f"page {index}: {playout}")  # underflows and skips are the machine's load: reported, accounted
            assert capture["dropped"] == 0  # none lost on the server's side (a page more than 1 s behind)
            events = [m["event"]["event"] for m in page.evaluate("window.phone.events")]
            assert events == ["multrpt"]
            assert page.inner_text("#events").strip().endswith("multrpt result=complete")
        for index, (page, _call_id) in enumerate(pages):  # a screenshot stalls the page: after the figures
            page.screenshot(path=str(tmp_path / f"phone-{index}.png"))


def test_keypad_clicks_become_keys_collected_through_the_detector(server: Server, tmp_path: Path) -> None:
    with chromium() as context:
        page, call_id = open_phone(context, server.url, APP)
        mult_orders(server, call_id, MENU)
        wait_page(page, "document.getElementById('collecting').textContent === 'collecting'")
        page.click("#key-7")
        wait_page(page, "document.getElementById('digits').textContent === '7'")  # the detector heard it
        page.click("[id='key-#']")
        events = wait_events(httpx.Client(base_url=server.url), call_id, 2, timeout_s=20)
        page.screenshot(path=str(tmp_path / "phone-keys.png"))
    dtmf = [e for e in events if e["event"] == "ivrreportdtmf"]
    assert [(e["dtmfCode"], e["endReason"]) for e in dtmf] == [("7#", "maxRevCnt")]


def test_keys_in_the_fake_microphone_are_collected(server: Server, tmp_path: Path) -> None:
    rate = 48_000
    parts = [np.zeros(rate), dtmf_tone("4", 100, -8, sample_rate_hz=rate), np.zeros(rate // 4),
             dtmf_tone("2", 100, -8, sample_rate_hz=rate), np.zeros(3 * rate)]
    mic = tmp_path / "mic.wav"
    sf.write(mic, to_int16(np.concatenate(parts)), rate, subtype="PCM_16")
    with chromium(mic_wav=mic) as context:
        page, call_id = open_phone(context, server.url, APP)
        mult_orders(server, call_id, MENU)
        wait_page(page, "document.getElementById('collecting').textContent === 'collecting'")
        page.click("#mic")
        wait_page(page, "document.getElementById('micState').textContent === 'on'")
        events = wait_events(httpx.Client(base_url=server.url), call_id, 2, timeout_s=30)
    dtmf = [e for e in events if e["event"] == "ivrreportdtmf"]
    assert [(e["dtmfCode"], e["endReason"]) for e in dtmf] == [("42", "maxRevCnt")]


def test_the_calls_page_shows_a_finished_call_its_recording_and_picture(server: Server, tmp_path: Path) -> None:
    with chromium() as context:
        page, call_id = open_phone(context, server.url, APP)
        mult_orders(server, call_id, MENU)
        wait_page(page, "document.getElementById('collecting').textContent === 'collecting'")
        page.click("#key-5")
        page.click("#key-9")
        wait_events(httpx.Client(base_url=server.url), call_id, 2, timeout_s=20)
        page.click("#hangup")
        wait_page(page, "window.phone.ended")
        assert page.evaluate("window.phone.closeReason") == "the call ended"
        calls = context.new_page()
        calls.goto(f"{server.url}/calls?appId={APP}")
        wait_page(calls, f"document.querySelector('tr[data-call-id=\"{call_id}\"] a.show')")
        calls.click(f"tr[data-call-id=\"{call_id}\"] a.show")
        width = wait_page(calls, "document.getElementById('picture').complete && "
                                 "document.getElementById('picture').naturalWidth")
        calls.screenshot(path=str(tmp_path / "calls.png"), full_page=True)
        wav = calls.evaluate(f"""fetch(document.querySelector('tr[data-call-id="{call_id}"] a[download]').href)
                                 .then((r) => r.arrayBuffer()).then((b) => Array.from(new Uint8Array(b)))""")
    assert width == 1400
    (tmp_path / "got.wav").write_bytes(bytes(wav))
    audio, rate = sf.read(tmp_path / "got.wav", dtype="int16")
    assert rate == 8000 and audio.shape[1] == 2
    assert "".join(k.key for k in detect_keys(audio[:, 1])) == "59"  # the page's keys, in the caller's channel


def test_a_page_becomes_the_phone_of_a_browser_call_made_through_the_api(server: Server) -> None:
    answer = httpx.post(f"{server.url}/ipcc/call/outCall", json={"appId": APP, "called": "browser"}).json()
    assert answer["code"] == "000000", answer
    call_id = answer["callId"]
    with chromium() as context:
        page = context.new_page()
        page.goto(f"{server.url}/phone?appId={APP}&callId={call_id}")
        wait_page(page, "window.phone.connected && window.phone.frames > 10")
        mult_orders(server, call_id, MENU)
        wait_page(page, "document.getElementById('collecting').textContent === 'collecting'")
        page.click("#key-1")
        page.click("#key-2")
        events = wait_events(httpx.Client(base_url=server.url), call_id, 2, timeout_s=20)
        assert page.inner_text("#callId") == call_id
    assert [(e["dtmfCode"], e["endReason"]) for e in events if e["event"] == "ivrreportdtmf"] == [("12", "maxRevCnt")]


def test_the_calls_page_plays_a_finished_wav_call_and_its_message_and_shows_its_picture(server: Server,
                                                                                        tmp_path: Path) -> None:
    client = httpx.Client(base_url=server.url)
    answer = client.post("/ipcc/call/outCall", json={"appId": APP, "called": "wav:menu-call",
                                                     "keys": "3@1.0,8@1.5"}).json()
    call_id = answer["callId"]
    mult_orders(server, call_id, MENU)
    wait_events(client, call_id, 2)  # the keys, then the request's end
    left = client.post("/ipcc/call/message", json={"appId": APP, "callId": call_id, "playFlag": 1,
                                                   "voiceStr": "beep.wav", "maxTime": 3}).json()
    assert left["code"] == "000000", left
    wait_events(client, call_id, 1, kinds=("messagerpt",))
    client.post("/ipcc/call/disConnect", json={"appId": APP, "callId": call_id})
    on_disk = Path(tmp_path / "server" / "rec" / APP / "menu-call.wav")
    with chromium() as context:
        calls = context.new_page()
        calls.goto(f"{server.url}/calls?appId={APP}")
        row = f"tr[data-call-id=\"{call_id}\"]"
        wait_page(calls, f"document.querySelector('{row} a.show')", timeout_s=30)
        calls.click(f"{row} a.show")
        width = wait_page(calls, "document.getElementById('picture').complete && "
                                 "document.getElementById('picture').naturalWidth", timeout_s=60)
        # each recording plays in the page: the browser decodes it to its length
        durations = wait_page(calls, f"""(() => {{
            const audios = [...document.querySelectorAll('{row} audio')];
            audios.forEach((a) => {{ if (a.preload !== 'auto') {{ a.preload = 'auto'; a.load(); }} }});
            return audios.every((a) => a.readyState >= 1) && audios.map((a) => a.duration); }})()""")
        played = calls.evaluate(f"document.querySelector('{row} audio').play().then(() => true)")
        calls.screenshot(path=str(tmp_path / "calls-wav.png"), full_page=True)
        downloads = calls.evaluate(f"""Promise.all([...document.querySelectorAll('{row} a[download]')].map((a) =>
            fetch(a.href).then((r) => r.arrayBuffer()).then((b) => [a.download, Array.from(new Uint8Array(b))])))""")
        cells = calls.inner_text(f"{row}")
    assert width == 1400 and played
    audio, rate = sf.read(on_disk, dtype="int16")
    events = [e for e in httpx.get(f"{server.url}/ipcc/events", params={"callId": call_id, "appId": APP})
              .json()["events"] if e["event"] == "messagerpt"]
    start_ms, end_ms = events[0]["startMs"], events[0]["endMs"]
    assert durations == [len(audio) / rate, (end_ms - start_ms) / 1000]
    [(name, wav), (message_name, message)] = downloads
    assert (name, bytes(wav)) == ("menu-call.wav", on_disk.read_bytes())
    (tmp_path / "message.wav").write_bytes(bytes(message))
    cut, _ = sf.read(tmp_path / "message.wav", dtype="int16")
    assert message_name == "menu-call-message-1.wav"
    np.testing.assert_array_equal(cut, audio[ms_to_samples(start_ms) : ms_to_samples(end_ms), 1])
    assert "wav:menu-call" in cells and "ivrreportdtmf dtmfCode=38" in cells and "message 1 (maxTime" in cells
