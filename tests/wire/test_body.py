"""Bodies from bytes to fields: charsets, bounded JSON, case-insensitive keys, duplicates, surrogates."""

from __future__ import annotations

import pytest

from engine.errors import RequestError
from engine.wire.body import Fields, JsonLimits, charset_of, decode_text, nesting_depth, parse_json
from engine.wire.request import decode_body, ids_of, parse_order, parse_play


def test_fields_match_trimmed_and_case_insensitively_and_keep_the_spelling() -> None:
    fields = Fields([(" getKey ", 1), ("callId", "c")])
    assert fields["GETKEY"] == fields.get("getkey") == 1 and "CallID" in fields
    assert fields.unknown(["callid"]) == ["getKey"]
    with pytest.raises(RequestError, match="^Data: appears twice"):
        Fields([("data", 1), ("Data", 2)])


@pytest.mark.parametrize(("content_type", "codec"), [(None, None), ("application/json", None),
                                                     ("application/json; charset=GBK", "gb18030"),
                                                     ('text/plain; charset="ISO-8859-1"', "latin-1"),
                                                     ("application/json;charset=utf-8", "utf-8")])
def test_the_charset_comes_from_the_content_type(content_type: str | None, codec: str | None) -> None:
    assert charset_of(content_type) == codec


def test_bytes_decode_by_charset_with_utf8_default_and_latin1_fallback() -> None:
    assert decode_text("您好".encode("gbk"), "application/json; charset=gbk") == "您好"
    assert decode_text("\ufeff{}".encode()) == "{}"  # a BOM is skipped
    assert decode_text("café".encode("latin-1")) == "café"  # no charset, not UTF-8: ISO-8859-1
    with pytest.raises(RequestError, match="^body: is not UTF-8"):
        decode_text(b"\xff", "application/json; charset=utf-8")
    with pytest.raises(RequestError, match="^Content-Type"):
        decode_text(b"{}", "application/json; charset=koi8-r")


def test_nesting_depth_ignores_brackets_inside_strings() -> None:
    assert nesting_depth('{"a": "[[[[{{{{", "b": [[1]]}') == 3
    assert nesting_depth('"\\"[[["') == 0
    assert nesting_depth("[" * 100_000 + "]" * 100_000) == 100_000


def test_limits_are_applied_before_and_while_parsing() -> None:
    with pytest.raises(RequestError, match="nests 4 levels deep; at most 3"):
        parse_json('{"a": [[{}]]}', JsonLimits(max_depth=3))
    with pytest.raises(RequestError, match="more than 8 keys"):
        parse_json('{"a": [' + ",".join(f'{{"k{i}": {i}}}' for i in range(9)) + "]}", JsonLimits(max_keys=8))
    assert parse_json('{"a": [[{}]]}', JsonLimits(max_depth=4)) == {"a": [[{}]]}


def test_huge_integers_are_refused_without_a_traceback_and_constants_are_not_json() -> None:
    with pytest.raises(RequestError, match="^body: holds an integer of more than 4300 digits"):
        parse_json('{"n": ' + "9" * 5000 + "}")
    with pytest.raises(RequestError, match=r"^playTime: must be <= 2147483647, got an integer of more than 40"):
        parse_order(decode_body('{"playFlag": 0, "voiceStr": "x", "playTime": ' + "9" * 4000 + "}"), "", True)
    with pytest.raises(RequestError, match="^playTime: must be <= 2147483647, got an integer of 5000 digits"):
        parse_order(decode_body('{"playFlag": 0, "voiceStr": "x", "playTime": "' + "9" * 5000 + '"}'), "", True)
    with pytest.raises(RequestError, match="not valid JSON"):
        parse_json('{"n": Infinity}')


@pytest.mark.parametrize(("text", "field"), [('{"data": "\\udc80"}', "data"),
                                             ('{"orders": [{"data": "ok"}, {"data": "\\ud800x"}]}', "orders[1].data"),
                                             ('{"orders": [{"a": 1, "A": 2}]}', "orders[0].A")])
def test_surrogates_and_duplicates_are_refused_naming_the_field(text: str, field: str) -> None:
    with pytest.raises(RequestError) as caught:
        parse_json(text)
    assert caught.value.field == field


def test_refusals_echo_only_printable_ids() -> None:
    assert ids_of('{"appId": "\\udc80", "callId": "c"}') == {"appId": "", "callId": ""}  # not text: not JSON here
    assert ids_of('{"appId": 12, "callId": "c"}') == {"appId": "12", "callId": "c"}
    assert ids_of(b"[") == {"appId": "", "callId": ""}


def test_play_takes_flag_for_playflag_but_not_both() -> None:
    request = parse_play(decode_body('{"appId": "a", "callId": "c", "flag": 1, "voiceStr": "x.wav"}'))
    assert request.orders[0].kind.value == 1
    with pytest.raises(RequestError, match="^flag: give playFlag or flag"):
        parse_play(decode_body('{"appId": "a", "callId": "c", "flag": 1, "playFlag": 1, "voiceStr": "x"}'))
