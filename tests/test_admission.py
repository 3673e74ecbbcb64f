"""admit = check -> prepare -> limit: the order of checks lives once, and the playing time is known before playing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.admission import admit, program_seconds
from engine.audio.library import VoiceLibrary
from engine.config import default_config
from engine.core.timeline import Program
from engine.errors import BAD_REQUEST, UNKNOWN_APP, UNKNOWN_CALL, EngineError, UnknownCallError
from engine.tts.synthesizer import synthesizer

APP = "247e35ff320a4142a105024055c367cf"


def _body(play_time: int = 1, loops: int = 1, **order: object) -> bytes:
    orders = [{"playFlag": 1, "voiceStr": "beep.wav", "playTime": play_time, "spaceTime": 1, **order}]
    return json.dumps({"appId": APP, "callId": "c", "playtime": loops, "orders": orders}).encode()


@pytest.fixture(scope="module")
def parts() -> tuple:
    return default_config(), VoiceLibrary(), synthesizer()


def test_admit_gives_the_program_with_its_audio(parts):
    program = admit(_body(play_time=2), *parts)
    assert isinstance(program, Program) and len(program.prompts) == 1 and len(program.prompts[0]) == 4000
    assert program.samples_without_keys == 2 * 4000 + 8000  # two beeps of 0.5 s and the 1 s gap between
    assert program_seconds(program) == 2.0


def test_playtime_2147483647_is_refused_by_the_limit_naming_it(parts):
    with pytest.raises(EngineError) as caught:
        admit(_body(play_time=2**31 - 1, loops=2**31 - 1), *parts, max_seconds=3600, limit_name="--max-seconds")
    assert caught.value.code == BAD_REQUEST
    assert "over --max-seconds 3600" in str(caught.value) and str(caught.value).startswith("request: plays ")


def test_the_order_of_checks(parts):
    def no_such_call(app_id: str, call_id: str) -> None:
        raise UnknownCallError(f"callId: {call_id!r} is not a live call")

    unknown_app = json.dumps({"appId": "nobody", "callId": "c", "orders": "not a list"})
    with pytest.raises(EngineError) as caught:  # the application before the orders
        admit(unknown_app, *parts, check_call=no_such_call)
    assert caught.value.code == UNKNOWN_APP
    with pytest.raises(EngineError) as caught:  # the call before the orders
        admit(_body(play_time="x"), *parts, check_call=no_such_call)
    assert caught.value.code == UNKNOWN_CALL
    with pytest.raises(EngineError) as caught:  # the orders before the limit
        admit(_body(play_time="x"), *parts, max_seconds=0)
    assert caught.value.code == BAD_REQUEST and "playTime" in str(caught.value)


def test_a_preparer_replaces_how_the_media_is_made(parts):
    def silent(request, library, speaker, voice) -> Program:
        return Program(request, tuple(np.zeros(800, np.int16) for _ in request.orders))

    program = admit(_body(), *parts, preparer=silent)
    assert len(program.prompts[0]) == 800 and not program.prompts[0].any()
