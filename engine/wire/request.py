"""The wire: the request bodies of the IPCC endpoints and their responses.

This module and its siblings in :mod:`engine.wire` are the only ones that know the wire's spellings
(``playtime``, ``playTime``, ``key2End``, ``" data "``). Bodies are decoded by :mod:`engine.wire.body`: keys
matched trimmed and case-insensitively, duplicates refused, JSON bounded. Integers arrive as JSON numbers or
decimal strings; ``appId`` may be a JSON integer (read as its decimal string); ``/play`` takes ``flag`` for
``playFlag``; unknown fields are ignored and logged once per application; ``null`` in an optional field means
"absent". Everything else that does not fit the contract raises :class:`RequestError` (``108100``) naming the
field and the rule.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from engine.core.orders import DTMF_KEYS, KeyCollection, MultOrders, Order, PlayKind
from engine.errors import EngineError, RequestError
from engine.format import seconds_to_samples
from engine.wire.body import MAX_DIGITS, Fields, JsonLimits, fields_of, fold, is_text
from engine.wire.messages import without_paths
from engine.wire.parsed import DEFAULT_LIMITS, ParsedText, parse_fields

log = logging.getLogger(__name__)

MAX_ORDERS = 32
MAX_TEXT_CHARS = 1000
MAX_DATA_CHARS = 1024
#: The contract's integers are the vendor's (Java) ints: larger values are refused, not wrapped or clamped.
MAX_INT = 2**31 - 1
_DECIMAL = re.compile(r"-?[0-9]{1,40}")
ORDER_FIELDS = ("playFlag", "voiceStr", "playTime", "spaceTime", "getkey", "maxRevCnt", "key2End", "totalTime",
                "data")
MULT_ORDERS_FIELDS = ("appId", "callId", "playtime", "orders")
PLAY_FIELDS = ("appId", "callId", "flag", *ORDER_FIELDS)
MAX_NOTED_FIELDS = 10_000
_SHOWN_CHARS = 40


def _show(value: Any) -> str:
    """A short, safe rendering of a bad value for an error message (a 10 MB string is not echoed)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**MAX_DIGITS:
        return "an integer of more than 40 digits"
    if isinstance(value, bytes):
        return repr(value)
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = type(value).__name__
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def decode_body(body: bytes | str | Mapping[str, Any], limits: JsonLimits = DEFAULT_LIMITS) -> Fields:
    """Parse a request body (bytes are UTF-8) into :class:`Fields` within ``limits``.

    Raises ``RequestError`` when the body is not JSON, not an object, over the limits, or has a key twice after
    trimming and case folding. A mapping is taken as already decoded, a :class:`ParsedText` of the same limits
    as already parsed.
    """
    if isinstance(body, Mapping):
        return fields_of(body)
    if isinstance(body, ParsedText) and body.limits == limits:
        if body.error is not None:
            raise body.error
        return body.fields  # type: ignore[return-value]  # set whenever error is None
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestError("body", f"not valid JSON (not UTF-8 at byte {exc.start})") from None
    return parse_fields(body, limits)


_FOLDED: dict[str, str] = {}  # the field names the readers below are given (code's constants), folded once


def _value(obj: Mapping[str, Any], name: str) -> Any:
    """``obj.get(name)``; for :class:`Fields` (keys stored folded) without folding ``name`` again."""
    if type(obj) is Fields:
        key = _FOLDED.get(name)
        if key is None:
            key = _FOLDED[name] = fold(name)
        return dict.get(obj, key)
    return obj.get(name)


class UnknownFields:
    """Logs each field an application sends that is not known, once per (application, body, field)."""

    def __init__(self, max_noted: int = MAX_NOTED_FIELDS) -> None:
        self._seen: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()
        self._max = max_noted
        self._known: dict[tuple[str, ...], frozenset[str]] = {}  # each list of known names (code's), folded

    def note(self, app_id: str, body: str, fields: Fields, known: Iterable[str]) -> list[str]:
        """Log the unknown fields of ``fields`` not logged before for ``app_id``; returns all unknown ones."""
        if isinstance(known, tuple):
            names = self._known.get(known)
            if names is None:
                names = self._known[known] = frozenset(fold(name) for name in known)
            if fields.keys() <= names:  # the keys of Fields are folded: all known
                return []
        unknown = fields.unknown(known)
        for name in unknown:
            key = (app_id[:64], body, name[:64])
            with self._lock:
                if key in self._seen or len(self._seen) >= self._max:
                    continue
                self._seen.add(key)
            log.info("application %r: field %r of %s is not known; ignored", key[0], key[2], body)
        return unknown


UNKNOWN_FIELDS = UnknownFields()


def _integer(obj: Mapping[str, Any], name: str, where: str, default: int | None, minimum: int) -> int:
    """Read an int field (JSON number or decimal string) that must be ``>= minimum``."""
    value = _value(obj, name)
    if value is None:
        if default is None:
            raise RequestError(f"{where}{name}", "is required")
        return default
    if type(value) is int and minimum <= value <= MAX_INT:  # the common case, before the checks of every other
        return value
    field = f"{where}{name}"
    if isinstance(value, bool):
        raise RequestError(field, f"must be an integer, got {_show(value)}")
    if isinstance(value, str) and len(value) > MAX_DIGITS and value.lstrip("-").isdigit():
        raise RequestError(field, f"must be <= {MAX_INT}, got an integer of {len(value)} digits")
    if isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, int):
        number = value
    elif isinstance(value, str) and _DECIMAL.fullmatch(value):
        number = int(value)
    else:
        raise RequestError(field, f"must be an integer, got {_show(value)}")
    if number < minimum:
        raise RequestError(field, f"must be >= {minimum}, got {_show(number)}")
    if number > MAX_INT:
        raise RequestError(field, f"must be <= {MAX_INT}, got {_show(number)}")
    return number


def _flag(obj: Mapping[str, Any], name: str, where: str, default: int | None) -> int:
    number = _integer(obj, name, where, default, 0)
    if number not in (0, 1):
        raise RequestError(f"{where}{name}", f"must be 0 or 1, got {number}")
    return number


def text_field(obj: Mapping[str, Any], name: str, limit: int | None = None, required: bool = False,
               error: type[RequestError] = RequestError, where: str = "") -> str:
    """The string ``obj[name]`` ("" when absent and not ``required``), at most ``limit`` characters (None: any).

    Refused with ``error`` (a :class:`RequestError`, ``108100``) naming the field as ``where + name``.
    """
    value = _value(obj, name)
    if value is None:
        if required:
            raise error(f"{where}{name}", "is required")
        return ""
    if type(value) is str and (limit is None or len(value) <= limit) and (not required or value.strip()):
        return value
    field = f"{where}{name}"
    if not isinstance(value, str):
        raise error(field, f"must be a string, got {_show(value)}")
    if required and not value.strip():
        raise error(field, "must not be empty")
    if limit is not None and len(value) > limit:
        raise error(field, f"must be at most {limit} characters, got {len(value)}")
    return value


def app_id_of(body: Mapping[str, Any]) -> str:
    """``appId`` of a decoded body: a required non-empty string, or a JSON integer read as its decimal string."""
    value = _value(body, "appId")
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return text_field(body, "appId", 200, required=True)


def read_ids(body: Mapping[str, Any]) -> tuple[str, str]:
    """``appId`` and ``callId`` of a decoded body (both required, non-empty strings; ``appId`` may be an int)."""
    return app_id_of(body), text_field(body, "callId", 200, required=True)


def _key_collection(obj: Mapping[str, Any], where: str, gap_samples: int) -> KeyCollection:
    end_key = text_field(obj, "key2End", where=where)
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
    obj = fields_of(raw, where)
    kind = PlayKind(_flag(obj, "playFlag", where, None))
    source = text_field(obj, "voiceStr", MAX_TEXT_CHARS, True, where=where)
    plays = _integer(obj, "playTime", where, 1, 1)
    gap_samples = seconds_to_samples(_integer(obj, "spaceTime", where, 0, 0))
    getkey = _flag(obj, "getkey", where, 0)
    # The collection fields are checked on every order (the vendor example sends them everywhere), used on getkey.
    collect = _key_collection(obj, where, gap_samples)
    if getkey and not last:
        raise RequestError(f"{where}getkey", "only the last order may collect keys")
    data = text_field(obj, "data", MAX_DATA_CHARS, where=where)
    return Order(kind, source, plays, gap_samples, collect if getkey else None, data)


def parse_mult_orders(body: Mapping[str, Any]) -> MultOrders:
    """A decoded ``multOrders`` body → :class:`MultOrders`; raises ``RequestError`` naming the broken rule."""
    app_id, call_id = read_ids(body)
    loops = _integer(body, "playtime", "", 1, 1)
    raw_orders = _value(body, "orders")
    if raw_orders is None:
        raise RequestError("orders", "is required")
    if not isinstance(raw_orders, list):
        raise RequestError("orders", f"must be an array, got {_show(raw_orders)}")
    if not 1 <= len(raw_orders) <= MAX_ORDERS:
        raise RequestError("orders", f"must hold 1 to {MAX_ORDERS} orders, got {len(raw_orders)}")
    last = len(raw_orders) - 1
    orders = tuple(parse_order(raw, f"orders[{i}].", i == last) for i, raw in enumerate(raw_orders))
    fields = fields_of(body)
    UNKNOWN_FIELDS.note(app_id, "multOrders", fields, MULT_ORDERS_FIELDS)
    for raw in raw_orders:
        UNKNOWN_FIELDS.note(app_id, "multOrders.orders", fields_of(raw), ORDER_FIELDS)
    return MultOrders(app_id=app_id, call_id=call_id, orders=orders, loops=loops)


def parse_play(body: Mapping[str, Any]) -> MultOrders:
    """A ``play`` body (one order's fields plus ``appId``/``callId``) → a one-order :class:`MultOrders`.

    ``flag`` is read as ``playFlag`` (a published SDK's spelling); both at once are refused.
    """
    app_id, call_id = read_ids(body)
    fields = fields_of(body).copy()
    if "flag" in fields:
        if "playFlag" in fields:
            raise RequestError("flag", "give playFlag or flag, not both")
        fields["playFlag"] = fields.pop("flag")
    UNKNOWN_FIELDS.note(app_id, "play", fields, PLAY_FIELDS)
    return MultOrders(app_id=app_id, call_id=call_id, orders=(parse_order(fields, "", True),), loops=1)


def response(code: str, msg: str, app_id: str = "", call_id: str = "", **extra: Any) -> dict[str, Any]:
    """The response body: ``code``, ``msg`` and the ids, also as the lower-case ``appid``/``callid``."""
    return {"code": code, "msg": msg, "appId": app_id, "callId": call_id, "appid": app_id, "callid": call_id,
            **extra}


def ids_of(body: bytes | str | Mapping[str, Any]) -> dict[str, str]:
    """``appId``/``callId`` of a body, for echoing in a refusal ("" where absent, not strings, or not JSON)."""
    try:
        fields: Mapping[str, Any] = decode_body(body)
    except RequestError:
        fields = {}
    return {k: _echo(fields.get(k)) for k in ("appId", "callId")}


def _echo(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10**40:
        return str(value)
    return value[:200] if isinstance(value, str) and is_text(value) else ""



def error_response(error: EngineError, body: Mapping[str, Any] | None = None, sent: str = "") -> dict[str, Any]:
    """The response for ``error``, echoing the ids of ``body`` when they are strings.

    Its message never shows an absolute path the request's text ``sent`` does not hold (:func:`without_paths`).
    """
    ids = ids_of(body) if body else {"appId": "", "callId": ""}
    return response(error.code, without_paths(str(error), sent), ids["appId"], ids["callId"])
