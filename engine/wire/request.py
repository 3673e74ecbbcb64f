"""The wire: the request bodies of the IPCC endpoints and their responses.

This is the only module that knows the wire's spellings (``playtime``, ``playTime``, ``key2End``,
``" data "``). Keys are matched after trimming white space; integers arrive as JSON numbers or decimal
strings; unknown fields are ignored; ``null`` in an optional field means "absent". Everything else that does
not fit the contract raises :class:`RequestError` (``108100``) naming the field and the rule.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from engine.core.orders import DTMF_KEYS, KeyCollection, MultOrders, Order, PlayKind
from engine.errors import EngineError, RequestError
from engine.format import seconds_to_samples

MAX_ORDERS = 32
MAX_TEXT_CHARS = 1000
MAX_DATA_CHARS = 1024
#: The contract's integers are the vendor's (Java) ints: larger values are refused, not wrapped or clamped.
MAX_INT = 2**31 - 1
_DECIMAL = re.compile(r"-?[0-9]+")
_SHOWN_CHARS = 40


def _show(value: Any) -> str:
    """A short, safe rendering of a bad value for an error message (a 10 MB string is not echoed)."""
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, bytes) else repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def decode_body(body: bytes | str) -> dict[str, Any]:
    """Parse a request body into a dict whose keys are trimmed of white space.

    Raises ``RequestError`` when the body is not JSON, not an object, or has a key twice after trimming.
    """
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError("body", f"not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise RequestError("body", f"must be a JSON object, got {type(value).__name__}")
    return _trim_keys(value, "")


def _trim_keys(obj: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = key.strip()
        if name in out:
            raise RequestError(f"{where}{name}", "appears twice (after trimming white space from keys)")
        out[name] = value
    return out


def _integer(obj: Mapping[str, Any], name: str, where: str, default: int | None, minimum: int) -> int:
    """Read an int field (JSON number or decimal string) that must be ``>= minimum``."""
    field = f"{where}{name}"
    value = obj.get(name)
    if value is None:
        if default is None:
            raise RequestError(field, "is required")
        return default
    if isinstance(value, bool):
        raise RequestError(field, f"must be an integer, got {_show(value)}")
    if isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DECIMAL.fullmatch(value):
        number = int(value)
    else:
        raise RequestError(field, f"must be an integer, got {_show(value)}")
    if number < minimum:
        raise RequestError(field, f"must be >= {minimum}, got {number}")
    if number > MAX_INT:
        raise RequestError(field, f"must be <= {MAX_INT}, got {number}")
    return number


def _flag(obj: Mapping[str, Any], name: str, where: str, default: int | None) -> int:
    number = _integer(obj, name, where, default, 0)
    if number not in (0, 1):
        raise RequestError(f"{where}{name}", f"must be 0 or 1, got {number}")
    return number


def _string(obj: Mapping[str, Any], name: str, where: str, required: bool, max_chars: int | None = None) -> str:
    field = f"{where}{name}"
    value = obj.get(name)
    if value is None:
        if required:
            raise RequestError(field, "is required")
        return ""
    if not isinstance(value, str):
        raise RequestError(field, f"must be a string, got {_show(value)}")
    if required and not value.strip():
        raise RequestError(field, "must not be empty")
    if max_chars is not None and len(value) > max_chars:
        raise RequestError(field, f"must be at most {max_chars} characters, got {len(value)}")
    return value


def read_ids(body: Mapping[str, Any]) -> tuple[str, str]:
    """``appId`` and ``callId`` of a decoded body (both required, non-empty strings)."""
    return _string(body, "appId", "", True), _string(body, "callId", "", True)


def _key_collection(obj: Mapping[str, Any], where: str, gap_samples: int) -> KeyCollection:
    end_key = _string(obj, "key2End", where, False)
    if end_key and (len(end_key) != 1 or end_key not in DTMF_KEYS):
        raise RequestError(f"{where}key2End", f"must be one of 0-9 * # A-D or empty, got {_show(end_key)}")
    return KeyCollection(
        max_keys=_integer(obj, "maxRevCnt", where, 0, 0),
        end_key=end_key or None,
        inter_key_samples=gap_samples,
        total_samples=seconds_to_samples(_integer(obj, "totalTime", where, 0, 0)),
    )


def parse_order(raw: Any, where: str, last: bool) -> Order:
    """One order of ``orders`` (``where`` is its field path prefix, e.g. ``orders[2].``)."""
    if not isinstance(raw, dict):
        raise RequestError(where.rstrip("."), f"must be a JSON object, got {_show(raw)}")
    obj = _trim_keys(raw, where)
    kind = PlayKind(_flag(obj, "playFlag", where, None))
    source = _string(obj, "voiceStr", where, True, MAX_TEXT_CHARS)
    plays = _integer(obj, "playTime", where, 1, 1)
    gap_samples = seconds_to_samples(_integer(obj, "spaceTime", where, 0, 0))
    getkey = _flag(obj, "getkey", where, 0)
    # The collection fields are checked on every order (the vendor example sends them everywhere), used on getkey.
    collect = _key_collection(obj, where, gap_samples)
    if getkey and not last:
        raise RequestError(f"{where}getkey", "only the last order may collect keys")
    data = _string(obj, "data", where, False, MAX_DATA_CHARS)
    return Order(kind, source, plays, gap_samples, collect if getkey else None, data)


def parse_mult_orders(body: Mapping[str, Any]) -> MultOrders:
    """A decoded ``multOrders`` body → :class:`MultOrders`; raises ``RequestError`` naming the broken rule."""
    app_id, call_id = read_ids(body)
    loops = _integer(body, "playtime", "", 1, 1)
    raw_orders = body.get("orders")
    if raw_orders is None:
        raise RequestError("orders", "is required")
    if not isinstance(raw_orders, list):
        raise RequestError("orders", f"must be an array, got {_show(raw_orders)}")
    if not 1 <= len(raw_orders) <= MAX_ORDERS:
        raise RequestError("orders", f"must hold 1 to {MAX_ORDERS} orders, got {len(raw_orders)}")
    last = len(raw_orders) - 1
    orders = tuple(parse_order(raw, f"orders[{i}].", i == last) for i, raw in enumerate(raw_orders))
    return MultOrders(app_id=app_id, call_id=call_id, orders=orders, loops=loops)


def parse_play(body: Mapping[str, Any]) -> MultOrders:
    """A ``play`` body (one order's fields plus ``appId``/``callId``) → a one-order :class:`MultOrders`."""
    app_id, call_id = read_ids(body)
    return MultOrders(app_id=app_id, call_id=call_id, orders=(parse_order(dict(body), "", True),), loops=1)


def response(code: str, msg: str, app_id: str = "", call_id: str = "", **extra: Any) -> dict[str, Any]:
    """The response body: ``code``, ``msg`` and the ids, also as the lower-case ``appid``/``callid``."""
    return {"code": code, "msg": msg, "appId": app_id, "callId": call_id, "appid": app_id, "callid": call_id,
            **extra}


def ids_of(body: bytes | str) -> dict[str, str]:
    """``appId``/``callId`` of a raw body, for echoing in a refusal ("" where absent, not strings, or not JSON)."""
    try:
        fields = decode_body(body)
    except RequestError:
        fields = {}
    return {k: v if isinstance(v := fields.get(k), str) else "" for k in ("appId", "callId")}


def error_response(error: EngineError, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The response for ``error``, echoing the ids of ``body`` when they are strings."""
    app_id = body.get("appId") if body else ""
    call_id = body.get("callId") if body else ""
    return response(error.code, str(error), app_id if isinstance(app_id, str) else "",
                    call_id if isinstance(call_id, str) else "")
