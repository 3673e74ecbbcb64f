"""The server's fast path: requests whose speech is all in the memory cache are queued on the event loop.

A cache miss or a file order still goes through the prepare pool, and the loop keeps answering meanwhile (shown by
what answers while a synthesis is held at a gate, never by a duration). Also the
delivery worker's batched wake-ups (no event lost) and :meth:`Synthesizer.cached`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from engine.config import DEMO_APP_ID, Application, Config
from engine.media.pacer import ScaledClock
from engine.server.app import ServerSettings, create_app
from engine.server.delivery import Delivery
from engine.server.event_log import EventLog
from engine.testing.server import FakeSpeaker, LiveServer, wait_events, wait_for

SMALL_APP = "small-queue-app"
SLOW = "tone:0.3 slow"  # a miss whose synthesis waits for the test's gate


class CachingSpeaker(FakeSpeaker):
    """A fake speaker with a memory cache: ``cached`` answers hits only, ``synthesize`` fills the cache.

    Records the thread of every call; the text ``SLOW`` blocks in ``synthesize`` until ``gate`` is set.
    """

    def __init__(self) -> None:
        self.memory: dict[str, np.ndarray] = {}
        self.gate = threading.Event()
        self.synthesized: list[tuple[str, str]] = []  # (text, thread name)
        self.looked_up: list[tuple[str, str]] = []

    def cached(self, text: str, settings: object = None) -> np.ndarray | None:
        self.looked_up.append((text, threading.current_thread().name))
        return self.memory.get(text)

    def synthesize(self, text: str, settings: object = None) -> np.ndarray:
        self.synthesized.append((text, threading.current_thread().name))
        if text == SLOW:
            assert self.gate.wait(20), "the test never opened the gate"
        samples = super().synthesize(text.split()[0], settings)
        self.memory[text] = samples
        return samples


@pytest.fixture()
def speaker() -> CachingSpeaker:
    return CachingSpeaker()


@pytest.fixture()
def client(tmp_path: Path, repo_root: Path, speaker: CachingSpeaker) -> Iterator[httpx.Client]:
    config = Config({DEMO_APP_ID: Application(DEMO_APP_ID, queue_limit=100),
                     SMALL_APP: Application(SMALL_APP, queue_limit=0)})
    settings = ServerSettings(config=config, voices=repo_root / "voices", recordings=tmp_path / "rec",
                              state_dir=tmp_path / "state")
    live = LiveServer(create_app(settings, speaker=speaker, clock=ScaledClock(25)))
    try:
        with httpx.Client(base_url=live.url, timeout=10) as http:
            yield http
    finally:
        live.close()


def _out_call(client: httpx.Client, app: str = DEMO_APP_ID) -> str:
    return client.post("/ipcc/call/outCall", json={"appId": app, "called": "null"}).json()["callId"]


def _mult(client: httpx.Client, call_id: str, *orders: dict[str, object], app: str = DEMO_APP_ID) -> dict:
    return client.post("/ipcc/call/multOrders", json={"appId": app, "callId": call_id, "orders": list(orders)}).json()


def _speech(text: str) -> dict[str, object]:
    return {"playFlag": 0, "voiceStr": text}


def test_a_miss_goes_through_the_pool_and_a_hit_stays_on_the_event_loop(client: httpx.Client,
                                                                         speaker: CachingSpeaker) -> None:
    call_id = _out_call(client)
    assert _mult(client, call_id, _speech("tone:0.1"))["code"] == "000000"  # miss: synthesized in the pool
    assert [(text, name.startswith("ipcc-prepare")) for text, name in speaker.synthesized] == [("tone:0.1", True)]
    assert _mult(client, call_id, _speech("tone:0.1"))["code"] == "000000"  # hit: no synthesis at all
    assert client.post("/ipcc/call/play", json={"appId": DEMO_APP_ID, "callId": call_id,
                                                **_speech("tone:0.1")}).json()["code"] == "000000"
    assert len(speaker.synthesized) == 1
    assert not any(name.startswith("ipcc-prepare") for _text, name in speaker.looked_up)
    events = wait_events(client, call_id, 3)
    assert [e["result"] for e in events] == ["complete"] * 3


def test_a_file_order_goes_through_the_pool_even_when_its_speech_is_cached(client: httpx.Client,
                                                                          speaker: CachingSpeaker) -> None:
    call_id = _out_call(client)
    assert _mult(client, call_id, _speech("tone:0.1"))["code"] == "000000"
    answer = _mult(client, call_id, _speech("tone:0.1"), {"playFlag": 1, "voiceStr": "beep.wav"})
    assert answer["code"] == "000000", answer
    assert [name.startswith("ipcc-prepare") for _text, name in speaker.synthesized] == [True, True]
    missing = _mult(client, call_id, _speech("tone:0.1"), {"playFlag": 1, "voiceStr": "nope.wav"})
    assert missing["code"] == "108100" and "nope.wav" in missing["msg"]


def test_the_event_loop_answers_while_a_synthesis_blocks_a_pool_thread(client: httpx.Client,
                                                                       speaker: CachingSpeaker) -> None:
    call_id = _out_call(client)
    assert _mult(client, call_id, _speech("tone:0.1"))["code"] == "000000"
    slow: dict[str, object] = {}
    base_url = str(client.base_url)

    def post_slow() -> None:
        with httpx.Client(base_url=base_url, timeout=30) as other:
            slow.update(_mult(other, call_id, _speech(SLOW)))

    thread = threading.Thread(target=post_slow)
    thread.start()
    try:
        wait_for(lambda: any(text == SLOW for text, _name in speaker.synthesized), what="the slow request's synthesis")
        for _ in range(20):  # cached requests and status answer while the pool thread is held at the gate
            assert _mult(client, call_id, _speech("tone:0.1"))["code"] == "000000"
            assert client.get("/ipcc/status").status_code == 200
        assert not slow, "the slow request answered before its synthesis finished"
    finally:
        speaker.gate.set()
        thread.join(20)
    assert slow["code"] == "000000"
    assert [name.startswith("ipcc-prepare") for text, name in speaker.synthesized if text == SLOW] == [True]


def test_the_fast_path_refuses_as_the_pool_does(client: httpx.Client, speaker: CachingSpeaker) -> None:
    speaker.memory["tone:0.1"] = FakeSpeaker().synthesize("tone:0.1")
    gone = _mult(client, "no-such-call", _speech("tone:0.1"))
    assert gone["code"] == "108105" and gone["callId"] == "no-such-call"
    assert _mult(client, "x", _speech("tone:0.1"), app="no-such-app")["code"] == "108101"
    call_id = _out_call(client)
    bad = _mult(client, call_id, {"playFlag": 0, "voiceStr": "tone:0.1", "playTime": 0})
    assert bad["code"] == "108100" and "orders[0].playTime" in bad["msg"]
    small = _out_call(client, SMALL_APP)
    speaker.memory["tone:60"] = FakeSpeaker().synthesize("tone:60")  # 2.4 s at 25x: still playing at the 2nd post
    codes = [_mult(client, small, _speech("tone:60"), app=SMALL_APP)["code"] for _ in range(3)]
    assert codes[0] == "000000" and "108102" in codes
    assert speaker.synthesized == []  # every one of these was answered on the fast path


def test_batched_wake_ups_lose_no_event(tmp_path: Path) -> None:
    delivery = Delivery(tmp_path, {"app": None})
    delivery.start()
    threads = [threading.Thread(target=lambda i=i: [delivery.publish("app", f"c{i}", {"n": n}) for n in range(500)])
               for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for(lambda: delivery.stats()["logged"] >= 2000, what="2000 events logged")
    delivery.publish("app", "late", {"n": -1})  # after the loop went back to sleep
    wait_for(lambda: delivery.stats()["logged"] >= 2001, what="the late event logged")
    delivery.close()
    log = EventLog(tmp_path / "events")  # the segmented event log (delivery)
    records = [record for _position, record in log.read((0, 0), 10_000)[0]]
    log.close()
    # every event once; each call's in order (publishers on four threads may interleave between the seq and the log)
    assert sorted(record["seq"] for record in records) == list(range(1, 2002))
    for i in range(4):
        assert [r["event"]["n"] for r in records if r["callId"] == f"c{i}"] == list(range(500))
