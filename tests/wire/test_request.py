"""The request contract, rule by rule: one table, each row a body and the code and field it must get."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from engine.admission import check_request
from engine.audio.library import VoiceLibrary
from engine.config import DEMO_APP_ID, default_config
from engine.core.orders import PlayKind
from engine.errors import EngineError, RequestError
from engine.wire.request import decode_body, error_response, parse_mult_orders, parse_play, response

VENDOR = Path(__file__).resolve().parents[2] / "engine" / "data" / "vendor-example.json"


def base() -> dict:
    return {"appId": DEMO_APP_ID, "callId": "c1", "orders": [{"playFlag": 0, "voiceStr": "hello"}]}


def with_order(**fields) -> dict:
    body = base()
    body["orders"][0].update(fields)
    return body


def two_orders(first: dict, second: dict) -> dict:
    body = base()
    body["orders"] = [first, second]
    return body


GOOD = {"playFlag": 0, "voiceStr": "hi"}

# (id, body (dict, or raw str/bytes), expected code, a word the message must contain)
CASES = [
    ("not json", "{nope", "108100", "body"),
    ("not object", "[1, 2]", "108100", "body"),
    ("empty body", "", "108100", "body"),
    ("bad utf8", b"\xff\xfe{", "108100", "body"),
    ("appId missing", {"callId": "c", "orders": [GOOD]}, "108100", "appId"),
    ("appId boolean", {"appId": True, "callId": "c", "orders": [GOOD]}, "108100", "appId"),
    ("appId number is its decimal string", {"appId": 5, "callId": "c", "orders": [GOOD]}, "108101", "appId"),
    ("appId empty", {"appId": "", "callId": "c", "orders": [GOOD]}, "108100", "appId"),
    ("callId missing", {"appId": DEMO_APP_ID, "orders": [GOOD]}, "108100", "callId"),
    ("unknown app", {"appId": "nope", "callId": "c", "orders": [GOOD]}, "108101", "appId"),
    ("orders missing", {"appId": DEMO_APP_ID, "callId": "c"}, "108100", "orders"),
    ("orders not list", {"appId": DEMO_APP_ID, "callId": "c", "orders": {}}, "108100", "orders"),
    ("orders empty", {"appId": DEMO_APP_ID, "callId": "c", "orders": []}, "108100", "orders"),
    ("33 orders", {"appId": DEMO_APP_ID, "callId": "c", "orders": [GOOD] * 33}, "108100", "orders"),
    ("order not object", {"appId": DEMO_APP_ID, "callId": "c", "orders": [5]}, "108100", "orders[0]"),
    ("playtime 0", {**base(), "playtime": 0}, "108100", "playtime"),
    ("playtime negative string", {**base(), "playtime": "-1"}, "108100", "playtime"),
    ("playtime float", {**base(), "playtime": 1.5}, "108100", "playtime"),
    ("playtime bool", {**base(), "playtime": True}, "108100", "playtime"),
    ("playtime word", {**base(), "playtime": "two"}, "108100", "playtime"),
    ("playtime too big", {**base(), "playtime": 2**31}, "108100", "playtime"),
    ("playFlag missing", {**base(), "orders": [{"voiceStr": "x"}]}, "108100", "orders[0].playFlag"),
    ("playFlag 2", with_order(playFlag=2), "108100", "orders[0].playFlag"),
    ("playFlag string 3", with_order(playFlag="3"), "108100", "orders[0].playFlag"),
    ("voiceStr missing", {**base(), "orders": [{"playFlag": 0}]}, "108100", "orders[0].voiceStr"),
    ("voiceStr empty", with_order(voiceStr=""), "108100", "orders[0].voiceStr"),
    ("voiceStr blank", with_order(voiceStr="   "), "108100", "orders[0].voiceStr"),
    ("voiceStr number", with_order(voiceStr=12), "108100", "orders[0].voiceStr"),
    ("voiceStr 1001 chars", with_order(voiceStr="a" * 1001), "108100", "orders[0].voiceStr"),
    ("voiceStr 10 MB", with_order(voiceStr="a" * 10_000_000), "108100", "orders[0].voiceStr"),
    ("playTime 0", with_order(playTime=0), "108100", "orders[0].playTime"),
    ("spaceTime negative", with_order(spaceTime=-1), "108100", "orders[0].spaceTime"),
    ("getkey 2", with_order(getkey=2), "108100", "orders[0].getkey"),
    ("getkey not last", two_orders({**GOOD, "getkey": 1}, GOOD), "108100", "orders[0].getkey"),
    ("maxRevCnt negative", with_order(getkey=1, maxRevCnt=-3), "108100", "orders[0].maxRevCnt"),
    ("key2End ##", with_order(getkey=1, key2End="##"), "108100", "orders[0].key2End"),
    ("key2End Z", with_order(getkey=1, key2End="Z"), "108100", "orders[0].key2End"),
    ("key2End number", with_order(getkey=1, key2End=0), "108100", "orders[0].key2End"),
    ("key2End 12", with_order(getkey=1, key2End="12"), "108100", "orders[0].key2End"),
    ("totalTime negative", with_order(getkey=1, totalTime="-5"), "108100", "orders[0].totalTime"),
    ("data not string", with_order(data=5), "108100", "orders[0].data"),
    ("data 1025 chars", with_order(data="d" * 1025), "108100", "orders[0].data"),
    ("duplicate key after trim", with_order(**{"data": "a", " data ": "b"}), "108100", "orders[0].data"),
    ("file absolute", with_order(playFlag=1, voiceStr="/etc/passwd"), "108100", "orders[0].voiceStr"),
    ("file escapes", with_order(playFlag=1, voiceStr="../../x.wav"), "108100", "orders[0].voiceStr"),
    ("file escapes inside", with_order(playFlag=1, voiceStr="sub/../../etc/passwd"), "108100", "voiceStr"),
    ("file missing", with_order(playFlag=1, voiceStr="nope.wav"), "108100", "orders[0].voiceStr"),
    ("file not audio", with_order(playFlag=1, voiceStr="text.wav"), "108100", "orders[0].voiceStr"),
    ("file NUL", with_order(playFlag=1, voiceStr="a\x00b.wav"), "108100", "orders[0].voiceStr"),
    ("file is folder", with_order(playFlag=1, voiceStr="sub"), "108100", "orders[0].voiceStr"),
]


@pytest.fixture
def library(tmp_path: Path) -> VoiceLibrary:
    root = tmp_path / "voices"
    (root / "sub").mkdir(parents=True)
    (root / "text.wav").write_text("this is not audio\n" * 10)
    (tmp_path / "secret.wav").write_bytes(b"RIFF")
    return VoiceLibrary(root)


@pytest.mark.parametrize(("name", "body", "code", "field"), CASES, ids=[c[0] for c in CASES])
def test_each_rule_gets_its_code_and_names_the_field(library, name, body, code, field):
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    with pytest.raises(EngineError) as caught:
        check_request(raw, default_config(), library)
    assert caught.value.code == code
    assert field in str(caught.value)
    assert len(str(caught.value)) < 300  # a 10 MB value is never echoed back
    sent = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")  # what the client sent is quoted back
    answer = error_response(caught.value, body if isinstance(body, dict) else None, sent)
    assert answer["code"] == code and answer["msg"] == str(caught.value)


def test_vendor_example_is_accepted_verbatim():
    fields = decode_body(VENDOR.read_bytes())
    request, app = check_request(fields, default_config(), VoiceLibrary())
    assert app.app_id == DEMO_APP_ID
    assert request.loops == 2 and len(request.orders) == 3
    first, second, menu = request.orders
    assert first.kind is PlayKind.SPEECH and first.plays == 3 and first.data == " userdata1 "
    assert second.kind is PlayKind.FILE and second.source == "filepath"
    assert first.collect is None and second.collect is None  # getkey 0: the collection fields are unused
    assert menu.collect is not None
    assert menu.collect.max_keys == 1 and menu.collect.end_key == "0"
    assert menu.collect.inter_key_samples == 5 * 8000 and menu.collect.total_samples == 30 * 8000
    assert menu.gap_samples == 5 * 8000 and menu.data == " userdata3 "


def test_wire_quirks_numbers_as_strings_trimmed_keys_nulls_and_unknown_fields():
    body = {" appId ": DEMO_APP_ID, "callId": "c", "playtime": "3", "extra": [1], "orders": [
        {"playFlag": "1", "voiceStr": "beep.wav", " playTime": "2", "spaceTime": 1.0, "getkey": "1",
         "maxRevCnt": None, "key2End": "", "totalTime": "0", "whatever": {}}]}
    request = parse_mult_orders(decode_body(json.dumps(body)))
    order = request.orders[0]
    assert request.loops == 3 and order.plays == 2 and order.gap_samples == 8000
    assert order.collect is not None and order.collect.end_key is None and order.collect.max_keys == 0


def test_key2end_zero_means_the_key_zero():
    order = parse_mult_orders(with_order(getkey=1, key2End="0")).orders[0]
    assert order.collect is not None and order.collect.end_key == "0"


def test_play_body_is_a_one_order_request():
    request = parse_play({"appId": "a", "callId": "c", "playFlag": 0, "voiceStr": "hi", "getkey": 1,
                          "maxRevCnt": 2})
    assert len(request.orders) == 1 and request.orders[0].collect is not None
    assert request.orders[0].collect.max_keys == 2


def test_response_repeats_ids_in_lower_case():
    answer = response("000000", "ok", "A", "C")
    assert answer == {"code": "000000", "msg": "ok", "appId": "A", "callId": "C", "appid": "A", "callid": "C"}


def test_request_error_is_a_value_error_with_the_contract_code():
    error = RequestError("orders", "bad")
    assert isinstance(error, ValueError) and error.code == "108100" and error.field == "orders"


def test_decoding_does_not_mutate_the_input():
    body = base()
    before = copy.deepcopy(body)
    parse_mult_orders(body)
    assert body == before
