"""The platform's call events: ``callstatrpt``, ``calldisconnectrpt``, ``callbillrpt``, ``playoverrpt``, ...

Also ``incomingcall``.

Their fields are tabled in the README ("Call events"); a test checks every body the server sends against those
tables. Times are the vendor's ``yyyyMMddHHmmssSSS`` local time; durations are whole seconds, rounded up (a
call connected for 0.2 s bills 1 s; one never connected bills 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from engine.format import samples_to_seconds
from engine.wire.events import vendor_timestamp

#: ``ansCode`` of ``callstatrpt``: the outcome of a call attempt.
ANSWERED = 0
BUSY = 1
NO_ANSWER = 2
REJECTED = 3
UNREACHABLE = 4
FAILED = 5

#: ``reason`` of ``calldisconnectrpt``.
REASON_APP = "disconnect"
"""The application hung up (``disConnect``)."""
REASON_REMOTE = "remote"
"""The far end hung up (a speaker or phone that went away)."""
REASON_TRANSFER = "transfer"
"""The call was moved to another number (``transfer``)."""
REASON_NOTIFIED = "notified"
"""A ``callNotifyV2`` call played its voices."""
REASON_ERROR = "error"
"""The engine failed on the call."""
REASON_SHUTDOWN = "shutdown"
"""The engine stopped."""
REASON_TIMEOUT = "timeout"
"""The call reached its maximum lifetime, or its idle timeout (the server's limits)."""
REASON_NOT_CONNECTED = "notconnected"
"""The attempt was never answered (busy, no answer, rejected, unreachable, failed)."""
RESTART = "restart"
"""The call was live when the engine stopped without hanging it up (``kill -9``, a crash)."""

_HUNG_UP_BY = {REASON_APP: "app", REASON_REMOTE: "callee", REASON_NOT_CONNECTED: "callee"}


@dataclass
class CallInfo:
    """What the events say about one call.

    ``direction``: ``out`` (``outCall``, ``callNotifyV2``, a transfer's new leg) or ``in``. ``recording``: the
    recording's path inside the recordings folder ("" when the endpoint records nothing). ``started``: when
    the attempt began; ``answered``: when it connected (None: never).
    """

    app_id: str
    call_id: str
    caller: str
    called: str
    started: datetime
    direction: str = "out"
    data: str = ""
    recording: str = ""
    answered: datetime | None = None
    transferred_from: str = ""


def _ids(info: CallInfo, event: str) -> dict[str, Any]:
    return {"event": event, "appId": info.app_id, "callId": info.call_id, "caller": info.caller,
            "called": info.called, "dir": info.direction}


def whole_seconds(samples: int) -> int:
    """``samples`` of call time as billable whole seconds, rounded up."""
    return math.ceil(samples_to_seconds(samples))


def call_stat_report(info: CallInfo, ans_code: int, moment: datetime) -> dict[str, Any]:
    """``callstatrpt``: the outcome of the call attempt (``ansCode``, :data:`ANSWERED` ...)."""
    return {**_ids(info, "callstatrpt"), "serviceId": "", "ansCode": ans_code, "origCallId": info.transferred_from,
            "data": info.data, "timeStamp": vendor_timestamp(moment)}


def call_disconnect_report(info: CallInfo, reason: str, connected_samples: int, moment: datetime) -> dict[str, Any]:
    """``calldisconnectrpt``: who hung up and why, the recording (``fileName``, also ``flieName``), the duration."""
    return {**_ids(info, "calldisconnectrpt"), "reason": reason, "hangUpBy": _HUNG_UP_BY.get(reason, "engine"),
            "fileName": info.recording, "flieName": info.recording, "date": vendor_timestamp(info.started),
            "duration": whole_seconds(connected_samples) if info.answered else 0, "data": info.data,
            "timeStamp": vendor_timestamp(moment)}


def restart_disconnect_report(app_id: str, call_id: str, moment: datetime) -> dict[str, Any]:
    """``calldisconnectrpt`` of a call found live in the journal after a crash: reason :data:`RESTART`.

    The journal keeps only the ids, so the numbers, the recording and the duration are empty (0).
    """
    info = CallInfo(app_id, call_id, caller="", called="", started=moment)
    return call_disconnect_report(info, RESTART, 0, moment)


def call_bill_report(info: CallInfo, connected_samples: int, moment: datetime) -> dict[str, Any]:
    """``callbillrpt``: start, answer and end times and the billable seconds.

    ``endTime`` is the answer time plus the call's exact played duration (its sample count); ``answerTime`` is
    "" and ``duration`` 0 for a call never answered.
    """
    answered = info.answered
    end = answered + timedelta(seconds=samples_to_seconds(connected_samples)) if answered else moment
    return {**_ids(info, "callbillrpt"), "startTime": vendor_timestamp(info.started),
            "answerTime": vendor_timestamp(answered) if answered else "", "endTime": vendor_timestamp(end),
            "duration": whole_seconds(connected_samples) if answered else 0, "data": info.data,
            "timeStamp": vendor_timestamp(moment)}


def play_over_report(app_id: str, call_id: str, data: str, result: str, moment: datetime) -> dict[str, Any]:
    """``playoverrpt``: a ``/play`` request finished (``result``: as its ``multrpt``: complete, stopped, ...)."""
    return {"event": "playoverrpt", "appId": app_id, "callId": call_id, "data": data, "result": result,
            "timeStamp": vendor_timestamp(moment)}


def incoming_call_report(info: CallInfo, moment: datetime) -> dict[str, Any]:
    """``incomingcall``: a call arrived for the application (answer it with ``reply``)."""
    return {"event": "incomingcall", "appId": info.app_id, "callId": info.call_id, "caller": info.caller,
            "called": info.called, "timeStamp": vendor_timestamp(moment)}
