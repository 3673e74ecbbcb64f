"""The bodies of the rest of the call API: ``callNotifyV2``, ``transfer``, ``reply`` and ``message``.

Each parser takes a decoded body (:class:`~engine.wire.body.Fields`) whose ``appId`` (and ``callId``) the
caller has already checked, and returns a domain value; a field that breaks a rule raises ``RequestError``
(``108100``) naming it.

* ``callNotifyV2``: ``voices`` is a list of 1–32 ``{voice, flag}`` (``flag`` 0: ``voice`` is text to speak,
  1: a file of the voice library), played in order, each once.
* ``transfer``: ``called`` (a phone number or an endpoint), ``fileName`` (optional: a file of the voice
  library played before the transfer), ``data``.
* ``reply``: ``ansCode`` 0 accepts an incoming call, 1 rejects it.
* ``message``: a prompt (``playFlag``, ``voiceStr``), then the caller is recorded until ``key2Stop`` (default
  ``#``) or ``maxTime`` seconds (default 60, at most 600).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.core.orders import MultOrders, Order, PlayKind
from engine.errors import RequestError
from engine.wire.body import fields_of
from engine.wire.request import (
    MAX_DATA_CHARS,
    MAX_ORDERS,
    MAX_TEXT_CHARS,
    UNKNOWN_FIELDS,
    parse_order,
    read_ids,
    text_field,
)

NOTIFY_FIELDS = ("appId", "caller", "called", "voices", "data", "timeout", "keys", "callerWav", "AiFlag")
TRANSFER_FIELDS = ("appId", "callId", "called", "fileName", "data", "caller")
REPLY_FIELDS = ("appId", "callId", "ansCode")
MESSAGE_FIELDS = ("appId", "callId", "playFlag", "voiceStr", "key2Stop", "maxTime", "data")
DEFAULT_MESSAGE_S = 60
MAX_MESSAGE_S = 600


def parse_notify(body: Mapping[str, Any], app_id: str, call_id: str) -> MultOrders:
    """``callNotifyV2``'s ``voices`` (and ``data``) → the request the new call plays."""
    fields = fields_of(body)
    UNKNOWN_FIELDS.note(app_id, "callNotifyV2", fields, NOTIFY_FIELDS)
    voices = fields.get("voices")
    if not isinstance(voices, list) or not 1 <= len(voices) <= MAX_ORDERS:
        raise RequestError("voices", f"must be a list of 1 to {MAX_ORDERS} {{voice, flag}} objects")
    data = text_field(fields, "data", MAX_DATA_CHARS)
    orders = []
    for i, raw in enumerate(voices):
        if not isinstance(raw, Mapping):
            raise RequestError(f"voices[{i}]", "must be a {voice, flag} object")
        item = fields_of(raw, f"voices[{i}].")
        order = {"playFlag": item.get("flag"), "voiceStr": item.get("voice"), "data": data}
        try:
            orders.append(parse_order(order, "", False))
        except RequestError as exc:
            name = {"playFlag": "flag", "voiceStr": "voice"}.get(exc.field, exc.field)
            raise RequestError(f"voices[{i}].{name}", str(exc).split(": ", 1)[-1]) from None
    return MultOrders(app_id=app_id, call_id=call_id, orders=tuple(orders))


@dataclass(frozen=True)
class Transfer:
    """A checked ``transfer``: move ``call_id`` to ``called`` after playing ``file_name`` (if any)."""

    app_id: str
    call_id: str
    called: str
    file_name: str = ""
    data: str = ""


def parse_transfer(body: Mapping[str, Any]) -> Transfer:
    """A decoded ``transfer`` body → :class:`Transfer`."""
    fields = fields_of(body)
    app_id, call_id = read_ids(fields)
    UNKNOWN_FIELDS.note(app_id, "transfer", fields, TRANSFER_FIELDS)
    return Transfer(app_id, call_id, text_field(fields, "called", 300, required=True).strip(),
                    text_field(fields, "fileName", MAX_TEXT_CHARS), text_field(fields, "data", MAX_DATA_CHARS))


def transfer_prompt(transfer: Transfer) -> MultOrders:
    """The request that plays a transfer's ``fileName`` once."""
    order = Order(PlayKind.FILE, transfer.file_name, data=transfer.data)
    return MultOrders(app_id=transfer.app_id, call_id=transfer.call_id, orders=(order,))


def parse_reply(body: Mapping[str, Any]) -> tuple[str, str, bool]:
    """A decoded ``reply`` body → ``(appId, callId, accept)``."""
    fields = fields_of(body)
    app_id, call_id = read_ids(fields)
    UNKNOWN_FIELDS.note(app_id, "reply", fields, REPLY_FIELDS)
    code = fields.get("ansCode")
    if isinstance(code, str) and code in ("0", "1"):
        code = int(code)
    if isinstance(code, bool) or code not in (0, 1):
        raise RequestError("ansCode", "must be 0 (accept) or 1 (reject)")
    return app_id, call_id, code == 0


def parse_message(body: Mapping[str, Any]) -> MultOrders:
    """A decoded ``message`` body → a one-order request: the prompt, then collection until ``key2Stop``."""
    fields = fields_of(body)
    app_id, call_id = read_ids(fields)
    UNKNOWN_FIELDS.note(app_id, "message", fields, MESSAGE_FIELDS)
    seconds = fields.get("maxTime", DEFAULT_MESSAGE_S)
    if isinstance(seconds, str) and seconds.isdigit() and len(seconds) < 6:
        seconds = int(seconds)
    if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= MAX_MESSAGE_S:
        raise RequestError("maxTime", f"must be whole seconds, 1-{MAX_MESSAGE_S}")
    stop = fields.get("key2Stop")
    order = {"playFlag": fields.get("playFlag"), "voiceStr": fields.get("voiceStr"), "getkey": 1,
             "key2End": "#" if stop in (None, "") else stop, "totalTime": seconds, "data": fields.get("data")}
    try:
        parsed = parse_order(order, "", True)
    except RequestError as exc:
        name = "key2Stop" if exc.field == "key2End" else exc.field
        raise RequestError(name, str(exc).split(": ", 1)[-1]) from None
    return MultOrders(app_id=app_id, call_id=call_id, orders=(parsed,))
