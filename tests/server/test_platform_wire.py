"""Every answer is the contract's JSON; the wire's leniencies where real clients differ; upload; /docs offline."""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from engine.config import DEMO_APP_ID
from engine.testing.media_files import write_silence
from engine.testing.platform import NUMERIC_APP, OTHER_APP, Platform, platform_server
from engine.testing.server import wait_events

CONTRACT_KEYS = {"code", "msg"}


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("wire")
    voices = root / "voices"
    voices.mkdir()
    for name in ("beep.wav", "welcome.wav"):
        (voices / name).write_bytes((repo_root / "voices" / name).read_bytes())
    with platform_server(root, voices, max_upload_bytes=200_000) as live:
        yield live


def _raw(platform: Platform, path: str, body: bytes, content_type: str = "application/json") -> dict[str, object]:
    answer = platform.client.post(path, content=body, headers={"Content-Type": content_type})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("application/json")
    return answer.json()


@pytest.mark.parametrize(("method", "path", "words"), [
    ("GET", "/no/such/path", "no such endpoint: /no/such/path"),
    ("POST", "/ipcc/call/noSuchCall", "no such endpoint"),
    ("GET", "/ipcc/call/outCall", "method GET not allowed"),
    ("DELETE", "/ipcc/status", "method DELETE not allowed"),
    ("GET", "/ipcc/events", "callId"),
])
def test_unknown_paths_wrong_methods_and_query_errors_answer_the_contracts_json(
        platform: Platform, method: str, path: str, words: str) -> None:
    answer = platform.client.request(method, path)
    assert answer.status_code == 200
    body = answer.json()
    assert CONTRACT_KEYS <= set(body) and "detail" not in body
    assert body["code"] == "108100" and words in body["msg"]


@pytest.mark.parametrize(("name", "body", "field"), [
    ("lone surrogate", b'{"appId":"%s","callId":"c","orders":[{"playFlag":0,"voiceStr":"a","data":"\\udc80"}]}',
     "orders[0].data"),
    ("200k-deep nesting", b'{"appId":"x","a":' + b"[" * 200_000 + b"]" * 200_000 + b"}", "body: nests 200001"),
    ("huge integer string", b'{"appId":"%s","callId":"c","orders":[{"playFlag":0,"voiceStr":"a","playTime":"'
     + b"9" * 5000 + b'"}]}', "orders[0].playTime: must be <= 2147483647"),
    ("huge integer number", b'{"appId":"%s","callId":"c","playtime":' + b"9" * 5000 + b',"orders":[]}',
     "body: holds an integer of more than 4300 digits"),
    ("duplicate key", b'{"appId":"%s","callId":"a","callId":"b","orders":[]}', "callId: appears twice"),
    ("duplicate key in another case", b'{"appId":"%s","callId":"a","CALLID":"b","orders":[]}', "CALLID: appears"),
    ("NaN", b'{"appId":"%s","callId":"c","playtime":NaN}', "body: not valid JSON"),
])
def test_hostile_bodies_get_108100_naming_the_field(platform: Platform, caplog: pytest.LogCaptureFixture,
                                                    name: str, body: bytes, field: str) -> None:
    call_id = platform.dial("null")
    raw = body.replace(b"%s", DEMO_APP_ID.encode()).replace(b'"callId":"c"', f'"callId":"{call_id}"'.encode())
    with caplog.at_level(logging.ERROR):
        answer = _raw(platform, "/ipcc/call/multOrders", raw)
    assert answer["code"] == "108100" and answer["msg"].startswith(field), answer["msg"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]  # no traceback, no internal failure
    platform.post("disConnect", callId=call_id)


def test_a_json_key_limit_is_enforced(platform: Platform) -> None:
    body = json.dumps({"appId": DEMO_APP_ID, **{f"k{i}": i for i in range(10_001)}}).encode()
    assert _raw(platform, "/ipcc/call/outCall", body)["msg"].startswith("body: has more than 10000 keys")


def test_app_id_as_a_json_integer_is_its_decimal_string(platform: Platform) -> None:
    answer = platform.client.post("/ipcc/call/outCall", json={"appId": int(NUMERIC_APP), "called": "null"}).json()
    assert answer["code"] == "000000" and answer["appid"] == NUMERIC_APP
    mult = {"appId": int(NUMERIC_APP), "callId": answer["callId"], "orders": [{"playFlag": 0, "voiceStr": "x"}]}
    assert platform.client.post("/ipcc/call/multOrders", json=mult).json()["code"] == "000000"
    assert platform.post("disConnect", appId=NUMERIC_APP, callId=answer["callId"])["code"] == "000000"


def test_field_names_match_case_insensitively_after_trimming(platform: Platform) -> None:
    call_id = platform.dial("null", keys="2@0.2")
    body = {" APPID ": DEMO_APP_ID, "callid": call_id, "Orders": [
        {"PlayFlag": 0, "VOICESTR": "tone:0.6", "GetKey": 1, "maxrevcnt": 1, " Data": "ci"}]}
    assert platform.client.post("/ipcc/call/multOrders", json=body).json()["code"] == "000000"
    events = wait_events(platform.client, call_id, 2)
    assert events[0]["dtmfCode"] == "2" and events[0]["data"] == "ci"
    platform.post("disConnect", callId=call_id)


@pytest.mark.parametrize(("charset", "text"), [("GBK", "您的短信剩余15条"), ("GB18030", "按1号键"),
                                                ("ISO-8859-1", "café"), (None, "Ünïcode"), ("utf-8", "ok ✓")])
def test_bodies_are_decoded_by_their_charset(platform: Platform, charset: str | None, text: str) -> None:
    call_id = platform.dial("null")
    body = json.dumps({"appId": DEMO_APP_ID, "callId": call_id, "orders": [
        {"playFlag": 0, "voiceStr": "tone:0.1", "getkey": 1, "totalTime": 1, "data": text}]}, ensure_ascii=False)
    codec = {"GBK": "gbk", "GB18030": "gb18030", "ISO-8859-1": "latin-1", None: "latin-1"}.get(charset, "utf-8")
    content_type = "application/json" + (f"; charset={charset}" if charset else "")
    assert _raw(platform, "/ipcc/call/multOrders", body.encode(codec), content_type)["code"] == "000000"
    assert wait_events(platform.client, call_id, 1)[0]["data"] == text
    platform.post("disConnect", callId=call_id)


def test_an_unknown_charset_is_refused_naming_the_header(platform: Platform) -> None:
    answer = _raw(platform, "/ipcc/call/outCall", b"{}", "application/json; charset=EBCDIC")
    assert answer["code"] == "108100" and answer["msg"].startswith("Content-Type")


def test_unknown_fields_are_ignored_and_logged_once_per_application(platform: Platform,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="engine.wire.request"):
        for app in (DEMO_APP_ID, DEMO_APP_ID, OTHER_APP):
            call_id = platform.dial("null", appId=app)
            body = {"appId": app, "callId": call_id, "vendorExtra": 1, "orders": [{"playFlag": 0, "voiceStr": "x"}]}
            assert platform.client.post("/ipcc/call/multOrders", json=body).json()["code"] == "000000"
    noted = [r.getMessage() for r in caplog.records if "vendorExtra" in r.getMessage()]
    assert len(noted) == 2 and any(DEMO_APP_ID in m for m in noted) and any(OTHER_APP in m for m in noted)


def _upload(platform: Platform, content: bytes, part_name: str = "prompt.wav", app: str = DEMO_APP_ID,
            **extra: str) -> dict[str, object]:
    answer = platform.client.post("/ipcc/manager/file", data={"appId": app, **extra},
                                  files={"file": (part_name, content, "audio/wav")})
    assert answer.status_code == 200
    return answer.json()


def test_an_uploaded_prompt_plays_for_its_application_only(platform: Platform, repo_root: Path) -> None:
    wav = (repo_root / "voices" / "beep.wav").read_bytes()
    answer = _upload(platform, wav, "my-beep.wav")
    assert answer["code"] == "000000" and answer["fileInfo"] == f"apps/{DEMO_APP_ID}/my-beep.wav"
    stored = platform.root / "voices" / str(answer["fileInfo"])
    assert stored.read_bytes() == wav
    assert stat.S_IMODE(os.stat(stored).st_mode) == 0o600 and stat.S_IMODE(os.stat(stored.parent).st_mode) == 0o700
    call_id = platform.dial("null")
    order = {"playFlag": 1, "voiceStr": answer["fileInfo"]}
    assert platform.post("multOrders", callId=call_id, orders=[order])["code"] == "000000"
    other = platform.dial("null", appId=OTHER_APP)
    refused = platform.post("multOrders", appId=OTHER_APP, callId=other, orders=[order])
    assert refused["code"] == "108100" and refused["msg"].startswith("orders[0].voiceStr")
    sneaky = {"playFlag": 1, "voiceStr": f"apps/{OTHER_APP}/../{DEMO_APP_ID}/my-beep.wav"}
    assert platform.post("multOrders", appId=OTHER_APP, callId=other, orders=[sneaky])["code"] == "108100"
    assert _upload(platform, wav, "renamed.wav", filename="given.wav")["fileInfo"] == f"apps/{DEMO_APP_ID}/given.wav"
    assert _upload(platform, wav, "mine.wav", app=OTHER_APP)["fileInfo"] == f"apps/{OTHER_APP}/mine.wav"
    assert stored.read_bytes() == wav  # the other application wrote only into its own folder


@pytest.mark.parametrize(("content", "filename", "app", "field"), [
    (b"RIFF-not-audio", "x.wav", DEMO_APP_ID, "file"),
    (None, "../escape.wav", DEMO_APP_ID, "filename"),
    (None, "prompt.exe", DEMO_APP_ID, "filename"),
    (None, "x.wav", "unknown-app", "appId"),
    (b"\0" * 300_000, "big.wav", DEMO_APP_ID, "body"),
    ("long", "hours.flac", DEMO_APP_ID, "file: plays 3600.0 s"),
])
def test_uploads_are_checked(platform: Platform, repo_root: Path, tmp_path: Path, content: bytes | str | None,
                             filename: str, app: str, field: str) -> None:
    if content == "long":  # an hour of silence: a small FLAC, refused by its header before it is decoded
        sf.write(tmp_path / "hours.flac", np.zeros(3600 * 8000, dtype=np.int16), 8000)
        content = (tmp_path / "hours.flac").read_bytes()
    wav = (repo_root / "voices" / "beep.wav").read_bytes()
    answer = _upload(platform, wav if content is None else bytes(content), filename, app)
    assert answer["code"] in ("108100", "108101") and str(answer["msg"]).startswith(field), answer
    assert not list((platform.root / "voices" / "apps").rglob(".upload-*"))  # no half-written file left


def test_docs_work_offline(platform: Platform) -> None:
    page = platform.client.get("/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()
    urls = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", page.text)
    assert len(urls) >= 3 and all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    for url in urls:
        assert platform.client.get(url).status_code == 200, url
    assert "/ipcc/call/transfer" in platform.client.get("/openapi.json").json()["paths"]


def test_a_plain_httpx_client_reads_code_and_callid(platform: Platform) -> None:
    with httpx.Client(base_url=platform.server.url) as sdk:
        answer = sdk.post("/ipcc/call/outCall", json={"appId": DEMO_APP_ID, "called": "13800138000"}).json()
        assert answer["code"] == "000000" and answer["callId"]
        mult = sdk.post("/ipcc/call/multOrders", json={"appId": DEMO_APP_ID, "callId": answer["callId"],
                                                       "orders": [{"playFlag": 0, "voiceStr": "x"}]}).json()
        assert mult["code"] == "000000" and mult["callid"] == answer["callId"]
        assert sdk.post("/ipcc/call/disConnect", json={"appId": DEMO_APP_ID, "callId": answer["callId"]}).json()[
            "code"] == "000000"


ABSOLUTE = re.compile(r"(?<![\w.~-])/(?:[^\s/'\"(),:;]+/)+")


def test_a_caller_wav_is_decoded_by_the_voice_library_and_no_message_shows_an_absolute_path(
        platform: Platform, repo_root: Path) -> None:
    voices = platform.root / "voices"
    (voices / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(200))
    write_silence(voices / "long.flac", 601)  # over fileSeconds (600 s) by its header
    link = voices / "elsewhere.wav"
    if not link.exists():
        link.symlink_to(repo_root / "voices" / "beep.wav")  # a link out of this library
    cases = {"broken.wav": "is not decodable audio", "long.flac": "over the limit max_file_seconds",
             "elsewhere.wav": "a link that points outside the voice library", "missing.wav": "does not exist",
             "apps/other-app/x.wav": "not in this application's folder"}
    for name, words in cases.items():
        answer = platform.post("outCall", called="null", callerWav=name)
        assert answer["code"] == "108100" and answer["msg"].startswith("callerWav:"), (name, answer)
        assert words in answer["msg"] and repr(name) in answer["msg"], (name, answer)
        assert not ABSOLUTE.search(answer["msg"]) and str(platform.root) not in answer["msg"], answer
    library = platform.engine.library
    before = library.stats()
    calls = [platform.dial("null", callerWav="welcome.wav") for _ in range(3)]  # one decode, shared
    after = library.stats()
    assert after["decodes"] - before["decodes"] <= 1 and after["hits"] - before["hits"] >= 2
    for call_id in calls:
        assert platform.post("disConnect", callId=call_id)["code"] == "000000"


def test_speaker_endpoint_refusal_shows_no_absolute_path(platform: Platform) -> None:
    answer = platform.post("outCall", called="speaker:/dev/snd/pcmC0D0p")
    assert answer["code"] == "108100" and answer["msg"].startswith("called: speaker endpoint not available")
    assert str(platform.root) not in answer["msg"]
    assert all(path.startswith("/dev/snd") for path in ABSOLUTE.findall(answer["msg"])), answer  # the client's own
