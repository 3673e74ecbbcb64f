"""A body parsed once (engine.wire.parsed): the same fields and errors as decoding the text, never a second parse."""

from __future__ import annotations

import codecs
import json

import pytest

from engine.errors import RequestError
from engine.wire.body import JsonLimits
from engine.wire.parsed import DEFAULT_LIMITS, ParsedText, parse_once
from engine.wire.request import decode_body, ids_of

BODY = {"appId": "app-1", "callId": "call-9", "orders": [{"playFlag": 0, "voiceStr": "你好"}]}


def test_the_fields_are_those_of_the_text_and_taken_from_the_one_parse() -> None:
    raw = json.dumps(BODY, ensure_ascii=False).encode()
    text = parse_once(raw, "application/json; charset=utf-8", DEFAULT_LIMITS)
    assert isinstance(text, ParsedText) and text == raw.decode()
    fields = decode_body(text)
    assert fields == decode_body(raw.decode()) and fields["orders"][0]["voicestr"] == "你好"
    assert decode_body(text) is fields  # the one decoding, not a second
    assert ids_of(text) == ids_of(raw) == {"appId": "app-1", "callId": "call-9"}


def test_other_limits_decode_on_their_own() -> None:
    nested = b'{"appId": "a", "x": [[[[1]]]]}'
    text = parse_once(nested, None, JsonLimits(max_depth=3))
    assert text is not None
    with pytest.raises(RequestError, match="depth|nest"):
        decode_body(text, JsonLimits(max_depth=3))
    assert decode_body(text)["x"] == [[[[1]]]]  # the default limits: parsed again, within them
    assert ids_of(text) == ids_of(nested) == {"appId": "a", "callId": ""}


@pytest.mark.parametrize("raw", [b"{", b"[1, 2]", b'{"callId": "a", "callid": "b"}', b'{"a": "\\udc80"}'])
def test_a_refused_body_raises_what_its_text_raises(raw: bytes) -> None:
    text = parse_once(raw, None, DEFAULT_LIMITS)
    assert text is not None
    with pytest.raises(RequestError) as plain:
        decode_body(raw.decode())
    for _ in range(2):  # every decoding raises it again
        with pytest.raises(RequestError) as once:
            decode_body(text)
        assert (once.value.field, str(once.value)) == (plain.value.field, str(plain.value))
    assert ids_of(text) == ids_of(raw)


@pytest.mark.parametrize(("raw", "content_type"), [
    (codecs.BOM_UTF8 + b'{"appId": "a"}', None),  # a BOM: the action skips it, the ids do not
    ('{"appId": "中"}'.encode("gbk"), "application/json; charset=GBK"),
    ('{"appId": "é"}'.encode("latin-1"), None),  # not UTF-8: read as ISO-8859-1 by the action only
    (b'{"appId": "a"}', "application/json; charset=koi8-r"),  # refused by the action, in its order
])
def test_bodies_the_ids_and_the_action_read_differently_are_not_parsed_once(raw: bytes,
                                                                            content_type: str | None) -> None:
    assert parse_once(raw, content_type, DEFAULT_LIMITS) is None
