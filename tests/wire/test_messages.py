"""Answers never show an absolute path of this machine, only what the client sent."""

from __future__ import annotations

import pytest

from engine.errors import SpeechError
from engine.wire.messages import without_paths
from engine.wire.request import error_response


@pytest.mark.parametrize(("message", "sent", "shown"), [
    ("x: /srv/ipcc/voices/a.wav: not audio", "", "x: …/a.wav: not audio"),
    ("cannot open '/home/op/.cache/ipcc-engine/tts/k.wav' (denied)", "", "cannot open '…/k.wav' (denied)"),
    ("voiceStr: '/etc/passwd' is absolute", '{"voiceStr": "/etc/passwd"}', "voiceStr: '/etc/passwd' is absolute"),
    ("state folder /var/lib/ipcc/state/ is not writable", "", "state folder …/state is not writable"),
    ("orders[0].voiceStr: 'apps/a/x.wav' 1/2 done", "", "orders[0].voiceStr: 'apps/a/x.wav' 1/2 done"),
    ("no such endpoint", "", "no such endpoint"),
])
def test_absolute_paths_the_client_did_not_send_are_cut_to_their_name(message: str, sent: str, shown: str) -> None:
    assert without_paths(message, sent) == shown


def test_an_engine_error_naming_a_library_path_answers_without_it() -> None:
    error = SpeechError("espeak-ng failed: /usr/lib/x86_64-linux-gnu/libespeak-ng.so.1: cannot open shared object")
    answer = error_response(error, {"appId": "a", "callId": "c"}, '{"appId": "a"}')
    assert answer["msg"] == "espeak-ng failed: …/libespeak-ng.so.1: cannot open shared object"
    assert (answer["code"], answer["appId"], answer["callId"]) == (error.code, "a", "c")
