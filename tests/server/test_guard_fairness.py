"""Per-application fairness: live calls, request rate, preparation share, calls' lifetime and idle timeout.

Recordings (``wav:NAME``) measure when a call ended, to the sample: its WAV holds exactly the frames it lived.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import soundfile as sf

from engine.config import DEMO_APP_ID, Application, Config
from engine.format import SAMPLES_PER_FRAME, seconds_to_samples
from engine.media.pacer import ScaledClock
from engine.server.app import ServerSettings, create_app
from engine.server.limits import AppLimits, GuardSettings
from engine.testing.guard import HoldingSpeaker, release
from engine.testing.server import LiveServer, wait_events, wait_for

LIFETIME_S = 3.0
IDLE_S = 1.0
FEW_CALLS = "few-calls-app"
SLOW_RATE = "slow-rate-app"
GREEDY = "greedy-app"
T = TypeVar("T")


def _serve(root: Path, voices: Path, guard: GuardSettings, speed: float) -> LiveServer:
    apps = {app: Application(app) for app in (DEMO_APP_ID, FEW_CALLS, SLOW_RATE, GREEDY)}
    settings = ServerSettings(config=Config(apps), voices=voices, recordings=root / "rec", state_dir=root / "state",
                              guard=guard)
    live = LiveServer(create_app(settings, speaker=HoldingSpeaker(), clock=ScaledClock(speed)))
    live.root = root  # type: ignore[attr-defined]
    return live


@pytest.fixture(scope="module")
def timed(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[LiveServer]:
    """Short lifetimes on a clock 10x real time."""
    guard = GuardSettings(call_lifetime_s=LIFETIME_S, call_idle_s=IDLE_S)
    live = _serve(tmp_path_factory.mktemp("timed"), repo_root / "voices", guard, 10)
    yield live
    live.close()


@pytest.fixture(scope="module")
def fair(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[LiveServer]:
    """Per-application limits, default lifetimes."""
    guard = GuardSettings(apps={FEW_CALLS: AppLimits(calls=2), SLOW_RATE: AppLimits(requests_per_s=0.001, burst=3),
                                GREEDY: AppLimits(preparing=2, preparing_queue=1)},
                          preparing_wait_s=60)  # generous: a waiting request must outlive a loaded machine's steps
    live = _serve(tmp_path_factory.mktemp("fair"), repo_root / "voices", guard, 1)
    yield live
    live.close()


@pytest.fixture(scope="module")
def impatient(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[LiveServer]:
    """One preparation slot for GREEDY and a short wait for it."""
    guard = GuardSettings(apps={GREEDY: AppLimits(preparing=1)}, preparing_wait_s=0.5)
    live = _serve(tmp_path_factory.mktemp("impatient"), repo_root / "voices", guard, 1)
    yield live
    live.close()


def _client(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30)


@pytest.fixture()
def timed_client(timed: LiveServer) -> Iterator[httpx.Client]:
    with _client(timed) as http:
        yield http


@pytest.fixture()
def client(fair: LiveServer) -> Iterator[httpx.Client]:
    with _client(fair) as http:
        yield http


def _out_call(client: httpx.Client, called: str = "null", app: str = DEMO_APP_ID) -> dict[str, str]:
    return client.post("/ipcc/call/outCall", json={"appId": app, "called": called}).json()


def _mult(client: httpx.Client, app: str, call_id: str, text: str, **order: object) -> dict[str, str]:
    body = {"appId": app, "callId": call_id, "orders": [{"playFlag": 0, "voiceStr": text, **order}]}
    return client.post("/ipcc/call/multOrders", json=body).json()


def _recorded_frames(server: LiveServer, name: str) -> int:
    engine = server.app.state.engine
    wait_for(lambda: f"{DEMO_APP_ID}/{name}.wav" not in engine.endpoints.names_in_use, 30, f"{name}.wav closed")
    return sf.info(str(server.root / "rec" / DEMO_APP_ID / f"{name}.wav")).frames  # type: ignore[attr-defined]


def test_a_call_ends_at_its_maximum_lifetime_to_the_frame(timed: LiveServer, timed_client: httpx.Client) -> None:
    server, client = timed, timed_client
    call = _out_call(client, "wav:lifetime")
    assert call["code"] == "000000"
    assert _mult(client, DEMO_APP_ID, call["callId"], "tone:1", playTime=100)["code"] == "000000"  # 100 s
    events = wait_events(client, call["callId"], 1, 30)
    assert events[-1]["event"] == "multrpt" and events[-1]["result"] == "hangup"
    assert _recorded_frames(server, "lifetime") == seconds_to_samples(LIFETIME_S)
    assert _mult(client, DEMO_APP_ID, call["callId"], "tone:1")["code"] == "108105"
    assert client.get("/ipcc/status").json()["guard"]["calls_ended"]["lifetime"] >= 1


def test_an_idle_call_ends_after_the_idle_timeout_to_the_frame(timed: LiveServer, timed_client: httpx.Client) -> None:
    server, client = timed, timed_client
    call = _out_call(client, "wav:idle")
    assert call["code"] == "000000"
    assert _recorded_frames(server, "idle") == seconds_to_samples(IDLE_S)  # never asked anything: idle from its start
    assert _mult(client, DEMO_APP_ID, call["callId"], "tone:1")["code"] == "108105"


def test_a_request_restarts_the_idle_timeout(timed: LiveServer, timed_client: httpx.Client) -> None:
    server, client = timed, timed_client
    call = _out_call(client, "wav:busy")
    assert _mult(client, DEMO_APP_ID, call["callId"], "tone:1.5")["code"] == "000000"  # longer than IDLE_S
    frames = _recorded_frames(server, "busy")
    # the request's 1.5 s, then IDLE_S of silence after its multrpt (+ the frames before it started)
    assert frames >= seconds_to_samples(1.5 + IDLE_S)
    assert frames < seconds_to_samples(LIFETIME_S)
    assert frames % SAMPLES_PER_FRAME == 0


def test_one_application_cannot_take_every_call_slot(client: httpx.Client) -> None:
    first, second = _out_call(client, app=FEW_CALLS), _out_call(client, app=FEW_CALLS)
    assert first["code"] == second["code"] == "000000"
    third = _out_call(client, app=FEW_CALLS)
    assert third["code"] == "108102" and "appId" in third["msg"] and "2 live calls" in third["msg"]
    other = _out_call(client)
    assert other["code"] == "000000"  # another application still gets calls
    client.post("/ipcc/call/disConnect", json={"appId": FEW_CALLS, "callId": first["callId"]})
    assert _out_call(client, app=FEW_CALLS)["code"] == "000000"  # a slot given back is free again


def test_requests_over_an_applications_rate_answer_108102(client: httpx.Client) -> None:
    call = _out_call(client, app=SLOW_RATE)  # token 1 of a burst of 3
    assert call["code"] == "000000"
    body = {"appId": SLOW_RATE, "callId": call["callId"]}
    answers = [client.post("/ipcc/call/stoPlay", json=body).json() for _ in range(4)]
    assert [a["code"] for a in answers] == ["000000", "000000", "108102", "108102"]
    assert "requests/s" in answers[-1]["msg"] and answers[-1]["appId"] == SLOW_RATE
    assert _out_call(client)["code"] == "000000"  # other applications are not slowed


def test_one_application_cannot_take_the_speech_worker(fair: LiveServer, client: httpx.Client) -> None:
    server = fair
    engine = server.app.state.engine
    greedy = _out_call(client, app=GREEDY)["callId"]
    results: list[dict[str, str]] = []

    def post(text: str) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            results.append(_mult(http, GREEDY, greedy, text))

    held = [threading.Thread(target=post, args=("hold:speech",)) for _ in range(2)]
    waiting = threading.Thread(target=post, args=("tone:0.5",))
    try:
        for thread in held:
            thread.start()
        wait_for(lambda: engine.guard.slots.in_preparation().get(GREEDY) == 2, 30, "two syntheses held")
        waiting.start()  # the third waits for a slot (on the event loop), it is not refused
        wait_for(lambda: engine.guard.slots.waiting().get(GREEDY) == 1, 30, "a third request waiting")
        fourth = _mult(client, GREEDY, greedy, "tone:0.5")  # the queue (1 here) is full: refused at once
        assert fourth["code"] == "108102" and "1 waiting" in fourth["msg"] and fourth["appId"] == GREEDY, fourth
        demo = _out_call(client)["callId"]
        assert _mult(client, DEMO_APP_ID, demo, "tone:0.5")["code"] == "000000"  # while GREEDY's are held
        guard = client.get("/ipcc/status").json()["guard"]
        assert guard["preparing_by_app"] == {GREEDY: 2} and guard["waiting_by_app"] == {GREEDY: 1}
        assert f'ipcc_guard_waiting_by_app{{app="{GREEDY}"}} 1.0' in client.get("/metrics").text
    finally:
        release("speech")
        for thread in [*held, waiting]:
            if thread.ident is not None:  # started
                thread.join(90)
    assert [r["code"] for r in results] == ["000000", "000000", "000000"]  # the waiting one got a slot
    wait_for(lambda: engine.guard.slots.in_preparation() == {}, 30, "every slot given back")


def test_a_request_waits_for_a_slot_no_longer_than_the_bound_then_gets_108102(impatient: LiveServer) -> None:
    engine = impatient.app.state.engine
    results: list[dict[str, str]] = []
    with _client(impatient) as client:
        greedy = _out_call(client, app=GREEDY)["callId"]

        def post() -> None:
            with _client(impatient) as http:
                results.append(_mult(http, GREEDY, greedy, "hold:impatient"))

        holder = threading.Thread(target=post)
        holder.start()
        try:
            wait_for(lambda: engine.guard.slots.in_preparation().get(GREEDY) == 1, 30, "the only slot held")
            late = _mult(client, GREEDY, greedy, "tone:0.5")
            assert late["code"] == "108102" and late["appId"] == GREEDY and late["callId"] == greedy
            assert late["msg"] == ("appId: waited 0.5 s for one of this application's 1 preparation slots "
                                   "(speech, files)")
            assert engine.guard.slots.waiting() == {}  # the refused one left the queue
            refusals = client.get("/ipcc/status").json()["guard"]["refusals"]
            assert refusals.get("108102", 0) >= 1
        finally:
            release("impatient")
            holder.join(90)
        assert [r["code"] for r in results] == ["000000"]
        wait_for(lambda: engine.guard.slots.in_preparation() == {}, 30, "the slot given back")
        assert _mult(client, GREEDY, greedy, "tone:0.7")["code"] == "000000"
